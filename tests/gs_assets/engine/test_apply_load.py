"""The load engine through its public entry points: operations, lookups, validation, rejects."""

import pytest

from gs_assets.engine.pipeline import LoadError

BASE = """
connections:
  files: {type: s3, bucket: test-bucket}
jobs:
  users:
    connection: files
    source: {object: users}
    destination: user
    operation: upsert
    identifiers: [email]
    mappings:
      - {source: Name, target: name}
      - {source: Email, target: email}
      - {source: Title, target: title}
  companies:
    connection: files
    source: {object: companies}
    destination: company
    operation: %(op)s
    identifiers: [external_id]
    null_overwrites: %(nulls)s
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
      - {source: Status, target: status}
      - {source: ARR, target: arr}
      - {source: Industry, target: industry, default: Other}
    lookups:
      - target: csm
        object: user
        match: [{source: CSM, field: email}]
        on_none: %(on_none)s
        on_multiple: %(on_multiple)s
        %(default)s
      - target: parent_company
        object: company
        match: [{source: Parent, field: external_id}]
"""


def cfg(op="upsert", nulls="false", on_none="error", on_multiple="error", default=""):
    return BASE % {"op": op, "nulls": nulls, "on_none": on_none, "on_multiple": on_multiple, "default": default}


USERS = """
Name,Email,Title
Ann,ann@x.io,CSM
Bob,bob@x.io,CSM
"""


def test_upsert_inserts_then_updates_and_keeps_gsids(harness):
    h = harness(cfg())
    h.load("users", USERS)
    _, r1 = h.load("companies", """
        Id,Name,Status,ARR,Industry,CSM,Parent
        A1,Acme,Active,100,Software,ann@x.io,
        A2,Beta,Active,200,Retail,bob@x.io,A1
    """)
    assert (r1.status, r1.inserted, r1.updated, r1.rejected) == ("Success", 2, 0, 0)
    before = dict(h.rows("SELECT external_id, gsid FROM gs.company"))
    _, r2 = h.load("companies", """
        Id,Name,Status,ARR,Industry,CSM,Parent
        A1,Acme Corp,Active,100,Software,ann@x.io,
        A2,Beta,Active,200,Retail,bob@x.io,A1
        A3,Gamma,Inactive,5,,ANN@X.IO,A2
    """)
    assert (r2.inserted, r2.updated, r2.unchanged, r2.rejected) == (1, 1, 1, 0)
    after = dict(h.rows("SELECT external_id, gsid FROM gs.company"))
    assert {k: after[k] for k in before} == before, "an update never changes a GSID"
    assert all(len(g) == 36 for g in after.values())
    rows = h.rows("SELECT c.external_id, c.name, c.industry, u.email, p.external_id FROM gs.company c "
                  "LEFT JOIN gs.user u ON u.gsid = c.csm LEFT JOIN gs.company p ON p.gsid = c.parent_company ORDER BY 1")
    assert rows == [("A1", "Acme Corp", "Software", "ann@x.io", None),
                    ("A2", "Beta", "Retail", "bob@x.io", "A1"),
                    ("A3", "Gamma", "Other", "ann@x.io", "A2")]  # default industry; email lookups ignore case


def test_insert_creates_every_row(harness):
    h = harness(cfg(op="insert"))
    h.load("users", USERS)
    _, r = h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nA1,Acme,Active,1,,ann@x.io,\nA1,Acme,Active,1,,ann@x.io,\n")
    assert (r.inserted, r.rejected) == (2, 0)
    assert h.rows("SELECT count(DISTINCT gsid) FROM gs.company") == [(2,)]


def test_update_rejects_rows_with_no_match(harness):
    h = harness(cfg())
    h.load("users", USERS)
    h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nA1,Acme,Active,1,,ann@x.io,\n")
    h.cfg.jobs["companies"].operation = type(h.cfg.jobs["companies"].operation)("update")
    _, r = h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nA1,Acme 2,Active,1,,ann@x.io,\nA9,Nope,Active,1,,ann@x.io,\n")
    assert (r.status, r.updated, r.inserted, r.rejected) == ("Partial Success", 1, 0, 1)
    (line, reasons), = h.rejects(r.job_run_id)
    assert line == 3 and reasons[0]["rule"] == "no_match_for_update"
    assert "external_id=A9" in reasons[0]["message"]


def test_same_identifier_twice_in_a_batch_last_wins_and_earlier_is_superseded(harness):
    h = harness(cfg())
    h.load("users", USERS)
    _, r = h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nA1,First,Active,1,,ann@x.io,\nA1,Second,Active,2,,ann@x.io,\n")
    assert (r.inserted, r.superseded, r.rejected, r.conserved) == (1, 1, 0, True)
    assert h.rows("SELECT name FROM gs.company") == [("Second",)]
    assert h.rows("SELECT line_number, superseded_by_line FROM gs_ops.superseded") == [(2, 3)]


@pytest.mark.parametrize("nulls,expected", [("false", "Active"), ("true", None)])
def test_null_source_values_overwrite_only_when_the_job_says_so(harness, nulls, expected):
    h = harness(cfg(nulls=nulls))
    h.load("users", USERS)
    h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nA1,Acme,Active,1,,ann@x.io,\n")
    h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nA1,Acme,,1,,ann@x.io,\n")
    assert h.rows("SELECT status FROM gs.company") == [(expected,)]


def test_lookup_no_match_policies(harness, tmp_path):
    h = harness(cfg(on_none="empty"))
    h.load("users", USERS)
    _, r = h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nA1,Acme,Active,1,,zed@x.io,\n")
    assert r.status == "Success" and h.rows("SELECT csm FROM gs.company") == [(None,)]


def test_lookup_no_match_error_rejects_with_the_values(harness):
    h = harness(cfg(on_none="error"))
    h.load("users", USERS)
    _, r = h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nA1,Acme,Active,1,,zed@x.io,\n")
    (line, reasons), = h.rejects(r.job_run_id)
    assert reasons == [{"field": "csm", "rule": "lookup_no_match", "value": "email=zed@x.io",
                        "message": "no user record matches email=zed@x.io"}]


def test_lookup_no_match_default_writes_the_default_gsid(harness):
    h = harness(cfg(on_none="empty"))
    h.load("users", USERS)
    ann = h.rows("SELECT gsid FROM gs.user WHERE email = 'ann@x.io'")[0][0]
    h.cfg.jobs["companies"].lookups[0].on_none = type(h.cfg.jobs["companies"].lookups[0].on_none)("default")
    h.cfg.jobs["companies"].lookups[0].default = ann
    _, r = h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nA1,Acme,Active,1,,zed@x.io,\n")
    assert r.status == "Success" and h.rows("SELECT csm FROM gs.company") == [(ann,)]


def test_lookup_default_that_does_not_exist_is_an_error_not_a_dangling_gsid(harness):
    h = harness(cfg(on_none="default", default="default: 00000000-0000-0000-0000-000000000000"))
    h.load("users", USERS)
    _, r = h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nA1,Acme,Active,1,,zed@x.io,\n")
    (line, reasons), = h.rejects(r.job_run_id)
    assert reasons[0]["rule"] == "lookup_default_missing"


@pytest.mark.parametrize("policy,status,csm_set", [("error", "Partial Success", False), ("any", "Success", True)])
def test_lookup_multiple_matches_policies(harness, policy, status, csm_set):
    h = harness(cfg(on_multiple=policy))
    # Two users share a title; look up by title to get two matches.
    h.cfg.jobs["companies"].lookups[0].match[0].field = "title"
    h.load("users", USERS)
    _, r = h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nA1,Acme,Active,1,,CSM,\n")
    assert r.status == status
    if csm_set:
        smallest = min(g for (g,) in h.rows("SELECT gsid FROM gs.user"))
        assert h.rows("SELECT csm FROM gs.company") == [(smallest,)], "any one match is deterministic"
    else:
        (line, reasons), = h.rejects(r.job_run_id)
        assert reasons[0]["rule"] == "lookup_multiple_matches" and reasons[0]["message"].startswith("2 user records")


def test_case_insensitive_lookup_is_an_option(harness):
    h = harness(cfg())
    h.load("users", USERS)
    h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nAbc,Acme,Active,1,,ann@x.io,\n")
    lk = h.cfg.jobs["companies"].lookups[1]
    _, r = h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nB1,Beta,Active,1,,ann@x.io,ABC\n")
    assert r.rejected == 1
    lk.case_insensitive = True
    _, r = h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nB1,Beta,Active,1,,ann@x.io,ABC\n")
    assert r.rejected == 0


def test_self_lookup_resolves_records_created_earlier_or_later_in_the_same_batch(harness):
    h = harness(cfg())
    h.load("users", USERS)
    _, r = h.load("companies", """
        Id,Name,Status,ARR,Industry,CSM,Parent
        C,Child,Active,1,,ann@x.io,P
        P,Parent,Active,1,,ann@x.io,G
        G,Grand,Active,1,,ann@x.io,
    """)
    assert (r.inserted, r.rejected) == (3, 0)
    assert h.rows("SELECT c.external_id, p.external_id FROM gs.company c JOIN gs.company p ON p.gsid = c.parent_company ORDER BY 1") == [("C", "P"), ("P", "G")]


def test_self_lookup_to_a_rejected_row_is_rejected_too(harness):
    h = harness(cfg())
    h.load("users", USERS)
    _, r = h.load("companies", """
        Id,Name,Status,ARR,Industry,CSM,Parent
        P,Parent,Bogus,1,,ann@x.io,
        C,Child,Active,1,,ann@x.io,P
        D,Grandchild,Active,1,,ann@x.io,C
    """)
    assert (r.inserted, r.rejected) == (0, 3)
    rules = {line: [x["rule"] for x in reasons] for line, reasons in h.rejects(r.job_run_id)}
    assert rules == {2: ["dropdown_value"], 3: ["lookup_target_rejected"], 4: ["lookup_target_rejected"]}
    assert h.rows("SELECT count(*) FROM gs.company") == [(0,)], "no GSID may point at a record that was not written"


def test_validation_failures_go_to_rejects_with_every_reason_and_original_values(harness):
    h = harness(cfg())
    h.load("users", USERS)
    _, r = h.load("companies", """
        Id,Name,Status,ARR,Industry,CSM,Parent
        A1,,Bogus,lots,,ann@x.io,
        A2,Fine,Active,10,,ann@x.io,
    """)
    assert (r.status, r.inserted, r.rejected) == ("Partial Success", 1, 1)
    (line, reasons), = h.rejects(r.job_run_id)
    assert line == 2
    assert sorted((x["field"], x["rule"], x["value"]) for x in reasons) == [
        ("arr", "type", "lots"), ("name", "required", None), ("status", "dropdown_value", "Bogus")]
    orig = h.rows("SELECT original_values->>'ARR', original_values->>'Id' FROM gs_ops.rejects")
    assert orig == [("lots", "A1")]


def test_conservation_is_recorded_in_the_run_log(harness):
    h = harness(cfg())
    h.load("users", USERS)
    h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nA1,Acme,Active,1,,ann@x.io,\n")
    _, r = h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nA1,Acme,Active,1,,ann@x.io,\nA2,B,Active,x,,ann@x.io,\nA3,C,Active,1,,ann@x.io,\nA3,C2,Active,1,,ann@x.io,\nbroken\n")
    row = h.rows(f"SELECT rows_read, inserted, updated, unchanged, rejected, filtered, superseded, status FROM gs_ops.job_runs WHERE job_run_id = '{r.job_run_id}'")[0]
    assert row == (5, 1, 0, 1, 2, 0, 1, "Partial Success")
    assert row[0] == sum(row[1:7])


def test_reject_threshold_fails_the_run_and_writes_no_records(harness):
    h = harness(cfg())
    h.load("users", USERS)
    h.cfg.jobs["companies"].reject_threshold_percent = 10
    _, r = h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nA1,Acme,Active,1,,ann@x.io,\nA2,B,Bogus,1,,ann@x.io,\n")
    assert r.status == "Failed" and "threshold" in r.error
    assert h.rows("SELECT count(*) FROM gs.company") == [(0,)]
    assert h.rows(f"SELECT count(*) FROM gs_ops.rejects WHERE job_run_id = '{r.job_run_id}'") == [(2,)]


def test_an_exception_mid_load_rolls_everything_back_and_the_load_stays_pending(harness, monkeypatch):
    import gs_assets.engine.apply_load as engine

    h = harness(cfg())
    h.load("users", USERS)
    h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nA1,Acme,Active,1,,ann@x.io,\n")
    snapshot = h.rows("SELECT * FROM gs.company ORDER BY gsid")
    real = engine.write_run_log

    def boom(*a, **kw):  # objects and rejects are written by now; the run log is the last write
        raise RuntimeError("injected failure")

    monkeypatch.setattr(engine, "write_run_log", boom)
    with pytest.raises(LoadError, match="injected failure"):
        h.load("companies", "Id,Name,Status,ARR,Industry,CSM,Parent\nA1,Acme 2,Active,1,,ann@x.io,\nA2,New,Active,1,,ann@x.io,\nA3,B,Bogus,1,,ann@x.io,\n")
    assert h.rows("SELECT * FROM gs.company ORDER BY gsid") == snapshot
    assert h.rows("SELECT count(*) FROM gs_ops.rejects") == [(0,)]
    assert h.rows("SELECT status, final FROM gs_ops.job_runs WHERE job = 'companies' ORDER BY started_at") == [
        ("Success", True), ("Failed", False)]

    monkeypatch.setattr(engine, "write_run_log", real)
    from gs_assets.engine.pipeline import apply_pending
    (res,) = apply_pending(h.warehouse, h.cfg, "company")
    assert (res.inserted, res.updated, res.rejected) == (1, 1, 1)
    assert h.rows("SELECT external_id, name FROM gs.company ORDER BY 1") == [("A1", "Acme 2"), ("A2", "New")]


DEFAULTS = cfg().replace("      - {source: Industry, target: industry, default: Other}\n",
                         "      - {source: Industry, target: industry, default: Other}\n"
                         "      - {source: Employees, target: employees, default: 0}\n")
DEFAULTS_HEADER = "Id,Name,Status,ARR,Industry,CSM,Parent,Employees\n"


def test_values_replaced_by_a_default_are_counted_and_traceable_to_their_row(harness):
    h = harness(DEFAULTS)
    h.load("users", USERS)
    _, r = h.load("companies", DEFAULTS_HEADER +
                  "A1,Acme,Active,1,Software,ann@x.io,,10\n"       # nothing defaulted
                  "A2,Beta,Active,1,,ann@x.io,,\n"                  # industry and employees missing
                  "A3,Gamma,Active,1,Bakery,ann@x.io,, lots \n"     # industry and employees invalid
                  "A4,Delta,Bogus,1,Bakery,ann@x.io,,5\n")          # rejected: nothing of it is written
    assert (r.status, r.inserted, r.rejected, r.defaulted, r.conserved) == ("Partial Success", 3, 1, 4, True)
    assert h.rows(f"SELECT rows_read, inserted, rejected, defaulted FROM gs_ops.job_runs "
                  f"WHERE job_run_id = '{r.job_run_id}'") == [(4, 3, 1, 4)]
    assert h.rows("SELECT external_id, industry, employees FROM gs.company ORDER BY 1") == [
        ("A1", "Software", 10), ("A2", "Other", 0), ("A3", "Other", 0)]
    assert h.rows(f"SELECT line_number, field, source, original_value, reason, default_value FROM gs_ops.defaulted "
                  f"WHERE job_run_id = '{r.job_run_id}' ORDER BY line_number, field") == [
        (3, "employees", "Employees", None, "missing", "0"),
        (3, "industry", "Industry", None, "missing", "Other"),
        (4, "employees", "Employees", "lots", "invalid", "0"),
        (4, "industry", "Industry", "Bakery", "invalid", "Other")]
    # A run with nothing defaulted records nothing.
    _, r2 = h.load("companies", DEFAULTS_HEADER + "A1,Acme,Active,1,Software,ann@x.io,,10\n")
    assert r2.defaulted == 0 and h.rows(f"SELECT count(*) FROM gs_ops.defaulted WHERE job_run_id = '{r2.job_run_id}'") == [(0,)]
