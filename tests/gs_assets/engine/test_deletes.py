"""Deletes a source reports reach the object by the job's delete policy (DESIGN: cursor rule;
invariant 1 Conservation's `deleted` bucket).

A record reader lands a reported delete as a row flagged in the reserved column `_deleted`
('true'), carrying only the source's key columns and its source id. The engine splits those rows
off before preparation (never validated, never rejected), matches them on the job's identifiers
(mapped and converted like records) and, in the same transaction as the rest of the run, removes
the matched record (policy delete), sets a field on it (mark) or changes nothing (ignore). Every
delete row is counted in `deleted`, so read = inserted + updated + unchanged + rejected + filtered
+ superseded + aggregated + deleted."""

from contextlib import contextmanager

import pyarrow as pa
import pytest

from gs_assets.config.loader import load_platform_config
from gs_assets.engine import ledger
from gs_assets.engine.pipeline import LoadError, Unit, apply_pending, land_records
from gs_assets.engine.raw_landing import RecordBatches
from gs_assets.validators.errors import ConfigError
from tests.conftest import write_config

JOBS = """
connections:
  api: {type: s3, bucket: test-bucket}
jobs:
  accounts:
    connection: api
    source: {object: accounts}
    destination: company
    operation: upsert
    identifiers: [external_id]
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
      - {source: Status, target: status}
    DELETES
  cases:
    connection: api
    source: {object: cases}
    destination: case
    operation: upsert
    identifiers: [case_number]
    mappings:
      - {source: Number, target: case_number}
      - {source: Subject, target: subject}
    lookups:
      - target: company_id
        object: company
        match: [{source: AccountId, field: external_id}]
        on_none: error
"""

SCHEMA = pa.schema([("Id", pa.string()), ("Name", pa.string()), ("Status", pa.string()), ("_deleted", pa.string())])


def _jobs(deletes: str) -> str:
    return JOBS.replace("DELETES", deletes)


def _page(h, rows, key, *, deletes=True):
    """Land one page of accounts: (Id, Name, Status) records, or ('-', Id) for a reported delete."""
    cols = {"Id": [], "Name": [], "Status": [], "_deleted": []}
    for r in rows:
        if r[0] == "-":  # a delete: the key column only, flagged
            vals = (r[1], None, None, "true")
        else:
            vals = (*r, None)
        for c, v in zip(cols, vals):
            cols[c].append(v)
    schema = SCHEMA if deletes else pa.schema(list(SCHEMA)[:3])
    batch = pa.record_batch([pa.array(cols[c], pa.string()) for c in schema.names], schema=schema)

    @contextmanager
    def records():
        yield RecordBatches([batch], id_column="Id")

    landed = land_records(h.warehouse, h.cfg, connection="api", source_object="accounts",
                          unit=Unit(f"https://api.example.test/accounts?page={key}", key), records=records)
    assert landed.status == "landed", landed.error
    return landed


def _apply(h):
    (res,) = [r for r in apply_pending(h.warehouse, h.cfg, "company") if r.job == "accounts"]
    return res


def _companies(h):
    return sorted(h.rows("SELECT external_id, name, status FROM gs.company"))


def _buckets(res):
    return (res.rows_read, res.inserted, res.updated, res.unchanged, res.rejected, res.superseded, res.deleted,
            res.deletes_applied)


def _conserved_in_ledger(h):
    with h.warehouse.connect() as con:
        return ledger.unconserved_runs(con, "company") == []


def _seed(h):
    _page(h, [("A1", "Acme", "Active"), ("A2", "Beta", "Active"), ("A3", "Gamma", "Active")], "p1")
    res = _apply(h)
    assert (res.inserted, res.deleted) == (3, 0)


def test_delete_policy_removes_matched_records_and_counts_every_delete_row(harness):
    h = harness(_jobs("deletes: {policy: delete}"))
    _seed(h)
    # A1 deleted (its Name, required on company, is empty: a delete row is never validated), A9
    # matches no record, one delete has no id, and A2 is updated in the same page.
    landed = _page(h, [("-", "A1"), ("-", "A9"), ("-", None), ("A2", "Beta Two", "Active")], "p2")
    assert landed.header == ["Id", "Name", "Status"]  # the flag is the raw table's own column
    res = _apply(h)
    assert _companies(h) == [("A2", "Beta Two", "Active"), ("A3", "Gamma", "Active")]
    # read 4 = updated 1 + deleted 3 (of which 1 removed a record)
    assert _buckets(res) == (4, 0, 1, 0, 0, 0, 3, 1)
    assert res.conserved and res.status == "Success"
    assert h.rows(f"SELECT deleted, deletes_applied FROM gs_ops.job_runs WHERE job_run_id = '{res.job_run_id}'") == [(3, 1)]
    assert h.rows("SELECT count(*) FROM gs_ops.rejects") == [(0,)]
    assert _conserved_in_ledger(h)


def test_mark_policy_sets_the_field_on_matched_records(harness):
    h = harness(_jobs("deletes: {policy: mark, field: status, value: Inactive}"))
    _seed(h)
    (before,) = h.rows("SELECT modified_at FROM gs.company WHERE external_id = 'A1'")[0]
    res = (_page(h, [("-", "A1"), ("-", "A9")], "p2"), _apply(h))[1]
    assert _companies(h) == [("A1", "Acme", "Inactive"), ("A2", "Beta", "Active"), ("A3", "Gamma", "Active")]
    (after, by), = h.rows("SELECT modified_at, modified_by FROM gs.company WHERE external_id = 'A1'")
    assert after > before and by == "gsdp"
    assert _buckets(res) == (2, 0, 0, 0, 0, 0, 2, 1) and res.conserved
    assert _conserved_in_ledger(h)


def test_ignore_policy_leaves_records_and_still_counts(harness):
    h = harness(_jobs("deletes: {policy: ignore}"))
    _seed(h)
    _page(h, [("-", "A1"), ("-", None), ("A2", "Beta", "Active")], "p2")
    res = _apply(h)
    assert _companies(h) == [("A1", "Acme", "Active"), ("A2", "Beta", "Active"), ("A3", "Gamma", "Active")]
    assert _buckets(res) == (3, 0, 0, 1, 0, 0, 2, 0) and res.conserved
    assert h.rows("SELECT count(*) FROM gs_ops.rejects") == [(0,)]
    assert _conserved_in_ledger(h)


def test_the_default_policy_is_ignore(harness):
    h = harness(_jobs(""))
    assert h.cfg.jobs["accounts"].deletes.policy.value == "ignore"
    _seed(h)
    _page(h, [("-", "A1")], "p2")
    res = _apply(h)
    assert len(_companies(h)) == 3 and _buckets(res) == (1, 0, 0, 0, 0, 0, 1, 0)


def test_rows_and_deletes_of_one_record_apply_in_row_order(harness):
    h = harness(_jobs("deletes: {policy: delete}"))
    _seed(h)
    _page(h, [
        ("-", "A1"), ("A1", "Acme Again", "Active"),  # deleted, then re-created by a later row: it stays
        ("A2", "Beta Two", "Active"), ("-", "A2"),    # updated, then deleted: the update is superseded
        ("B1", "New", "Active"), ("-", "B1"),         # new, then deleted in the same page: never written
    ], "p2")
    res = _apply(h)
    assert _companies(h) == [("A1", "Acme Again", "Active"), ("A3", "Gamma", "Active")]
    # read 6 = updated 1 (A1) + superseded 2 (A2's and B1's rows) + deleted 3 (1 removed A2)
    assert _buckets(res) == (6, 0, 1, 0, 0, 2, 3, 1) and res.conserved
    assert sorted(h.rows(f"SELECT line_number, superseded_by_line FROM gs_ops.superseded "
                         f"WHERE job_run_id = '{res.job_run_id}'")) == [(3, 4), (5, 6)]
    assert _conserved_in_ledger(h)


def test_a_delete_is_atomic_with_its_run(harness, monkeypatch):
    h = harness(_jobs("deletes: {policy: delete}"))
    _seed(h)
    _page(h, [("-", "A1"), ("A2", "Beta Two", "Active")], "p2")
    real = ledger.insert_job_run

    def failing(con, run):
        if run.final:  # the run log is the run's last write: everything before it must roll back
            raise RuntimeError("disk full")
        real(con, run)

    monkeypatch.setattr(ledger, "insert_job_run", failing)
    with pytest.raises(LoadError, match="disk full"):
        apply_pending(h.warehouse, h.cfg, "company")
    assert _companies(h) == [("A1", "Acme", "Active"), ("A2", "Beta", "Active"), ("A3", "Gamma", "Active")]
    monkeypatch.setattr(ledger, "insert_job_run", real)
    res = _apply(h)  # the load stayed pending: applied again, once
    assert _companies(h) == [("A2", "Beta Two", "Active"), ("A3", "Gamma", "Active")]
    assert _buckets(res) == (2, 0, 1, 0, 0, 0, 1, 1)


def test_a_run_over_its_reject_threshold_applies_no_delete(harness):
    h = harness(_jobs("deletes: {policy: delete}\n    reject_threshold_percent: 10"))
    _seed(h)
    _page(h, [("-", "A1"), ("A5", None, "Active"), ("A4", "Delta", "Nope")], "p2")  # records: 2 of 2 rejected
    res = _apply(h)
    assert res.status == "Failed" and _companies(h)[0] == ("A1", "Acme", "Active")
    assert (res.rows_read, res.rejected, res.deleted, res.deletes_applied) == (3, 2, 1, 0) and res.conserved


def test_a_lookup_no_longer_finds_a_deleted_record(harness):
    h = harness(_jobs("deletes: {policy: delete}"))
    _seed(h)
    _page(h, [("-", "A1")], "p2")
    _apply(h)
    schema = pa.schema([("Number", pa.string()), ("Subject", pa.string()), ("AccountId", pa.string())])
    batch = pa.record_batch([pa.array(["C1", "C2"]), pa.array(["Down", "Slow"]), pa.array(["A1", "A2"])], schema=schema)

    @contextmanager
    def records():
        yield RecordBatches([batch])

    land_records(h.warehouse, h.cfg, connection="api", source_object="cases", unit=Unit("api://cases/1", "1"),
                 records=records)
    (res,) = apply_pending(h.warehouse, h.cfg, "case")
    assert (res.inserted, res.rejected) == (1, 1)
    assert h.rejects(res.job_run_id)[0][1][0]["rule"] == "lookup_no_match"


def test_a_unit_without_the_flag_applies_as_before(harness):
    h = harness(_jobs("deletes: {policy: delete}"))
    _page(h, [("A1", "Acme", "Active")], "p1", deletes=False)
    res = _apply(h)
    assert _buckets(res) == (1, 1, 0, 0, 0, 0, 0, 0)


@pytest.mark.parametrize("deletes, key, text", [
    ("deletes: {policy: mark, value: Inactive}", "jobs.accounts.deletes.field", "policy mark needs 'field'"),
    ("deletes: {policy: mark, field: status}", "jobs.accounts.deletes.value", "policy mark needs 'value'"),
    ("deletes: {policy: mark, field: status, value: Gone}", "jobs.accounts.deletes.value",
     "'Gone' is not a value of dropdown 'status'"),
    ("deletes: {policy: mark, field: arr, value: lots}", "jobs.accounts.deletes.value", "'lots' is not a currency"),
    ("deletes: {policy: mark, field: nope, value: x}", "jobs.accounts.deletes.field", "unknown field 'nope'"),
    ("deletes: {policy: mark, field: external_id, value: x}", "jobs.accounts.deletes.field", "an identifier"),
    ("deletes: {policy: delete, field: status}", "jobs.accounts.deletes.field", "only policy mark takes"),
    ("deletes: {policy: remove}", "jobs.accounts.deletes.policy", "remove"),
])
def test_a_broken_delete_policy_fails_at_load_naming_file_and_key(tmp_path, deletes, key, text):
    with pytest.raises(ConfigError) as e:
        load_platform_config(write_config(tmp_path / "config", _jobs(deletes)))
    msg = str(e.value)
    assert str(tmp_path / "config" / "jobs.yaml") in msg and key in msg and text in msg, msg


def test_insert_cannot_take_a_delete_policy(tmp_path):
    text = _jobs("deletes: {policy: delete}").replace("operation: upsert\n    identifiers: [external_id]",
                                                      "operation: insert", 1)
    with pytest.raises(ConfigError) as e:
        load_platform_config(write_config(tmp_path / "config", text))
    msg = str(e.value)
    assert "jobs.accounts.deletes.policy" in msg and "operation insert cannot apply deletes" in msg, msg


def test_a_delete_policy_needs_identifiers_mapped_from_source_columns(tmp_path):
    text = _jobs("").replace("identifiers: [case_number]", "identifiers: [company_id]").replace(
        "        on_none: error\n", "        on_none: error\n    deletes: {policy: delete}\n")
    with pytest.raises(ConfigError) as e:
        load_platform_config(write_config(tmp_path / "config", text))
    msg = str(e.value)
    assert "jobs.cases.identifiers[0]" in msg and "'company_id' comes from a lookup" in msg, msg


SELF = """
connections:
  api: {type: s3, bucket: test-bucket}
jobs:
  accounts:
    connection: api
    source: {object: accounts}
    destination: company
    operation: upsert
    identifiers: [external_id]
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
    lookups:
      - target: parent_company
        object: company
        match: [{source: ParentId, field: external_id}]
        on_none: empty
    deletes: {policy: delete}
"""


def test_a_row_pointing_at_a_record_deleted_in_its_batch_is_rejected_not_left_dangling(harness):
    h = harness(SELF)
    schema = pa.schema([("Id", pa.string()), ("Name", pa.string()), ("ParentId", pa.string()), ("_deleted", pa.string())])

    def page(rows, key):
        batch = pa.record_batch([pa.array([r[i] for r in rows], pa.string()) for i in range(4)], schema=schema)

        @contextmanager
        def records():
            yield RecordBatches([batch], id_column="Id")

        land_records(h.warehouse, h.cfg, connection="api", source_object="accounts",
                     unit=Unit(f"api://accounts/{key}", key), records=records)
        (res,) = apply_pending(h.warehouse, h.cfg, "company")
        return res

    page([("P1", "Parent", None, None)], "p1")
    res = page([
        ("N1", "New parent", None, None),
        ("C1", "Child of P1", "P1", None), ("C2", "Child of N1", "N1", None),
        ("G1", "Grandchild via C2", "C2", None),
        ("P1", None, None, "true"), ("N1", None, None, "true"),
    ], "p2")
    assert h.rows("SELECT external_id FROM gs.company") == []
    assert res.conserved and (res.rows_read, res.superseded, res.rejected, res.deleted) == (6, 1, 3, 2)
    rules = {line: [r["rule"] for r in reasons] for line, reasons in h.rejects(res.job_run_id)}
    assert rules == {2: ["lookup_target_deleted"], 3: ["lookup_target_deleted"], 4: ["lookup_target_deleted"]}
