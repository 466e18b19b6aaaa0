"""Rows whose lookup found nothing, retried when the looked-up object gets records (job option
retry_unmatched_lookups): cases that arrive before their companies."""

import pytest

from gs_assets.validators.errors import ConfigError
from gs_assets.engine.pipeline import apply_pending

JOBS = """
connections:
  files: {type: s3, bucket: test-bucket}
jobs:
  companies:
    connection: files
    source: {object: companies}
    destination: company
    identifiers: [external_id]
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
  cases:
    connection: files
    source: {object: cases}
    destination: case
    identifiers: [case_number]
    %(retry)s
    mappings:
      - {source: Number, target: case_number}
      - {source: Subject, target: subject}
      - {source: Status, target: status}
      - {source: Priority, target: priority, default: Low}
    lookups:
      - {target: company_id, object: company, match: [{source: Account, field: external_id}]}
"""
RETRY = "retry_unmatched_lookups: {attempts: 2, within_hours: 72}"

CASES = """
Number,Subject,Status,Account,Priority
C1,Login fails,Open,A1,
C2,Slow,Open,A2,High
C3,Broken,Bogus,A1,High
C4,Lost,Open,A9,High
C5,No company,Open,,High
"""


def companies(h, *ids):
    return h.load("companies", "Id,Name\n" + "".join(f"{i},Company {i}\n" for i in ids))


def waiting(h):
    return h.rows("SELECT line_number, attempts, objects FROM gs_ops.lookup_waiting ORDER BY line_number")


def conserved(h, job_run_id):
    row = h.rows(f"SELECT rows_read, inserted + updated + unchanged + rejected + filtered + superseded + aggregated "
                 f"FROM gs_ops.job_runs WHERE job_run_id = '{job_run_id}'")[0]
    return row[0] == row[1]


def test_cases_before_their_companies_wait_and_load_when_the_companies_arrive(harness):
    h = harness(JOBS % {"retry": RETRY})
    _, r1 = h.load("cases", CASES)
    # C1, C2, C4 found no company and wait; C3 is also rejected for its status (it does not wait).
    assert (r1.rows_read, r1.inserted, r1.rejected) == (5, 1, 4)
    assert waiting(h) == [(2, 0, ["company"]), (3, 0, ["company"]), (5, 0, ["company"])]
    assert apply_pending(h.warehouse, h.cfg, "case") == [], "nothing changed in company: nothing is retried"

    companies(h, "A1")
    (r2,) = apply_pending(h.warehouse, h.cfg, "case")
    assert (r2.retry_of, r2.rows_read, r2.inserted, r2.rejected, r2.status) == (r1.job_run_id, 3, 1, 2, "Partial Success")
    assert conserved(h, r2.job_run_id) and conserved(h, r1.job_run_id)
    assert h.rows(f"SELECT retry_of FROM gs_ops.job_runs WHERE job_run_id = '{r2.job_run_id}'") == [(r1.job_run_id,)]
    assert h.rows("SELECT c.case_number FROM gs.case c JOIN gs.company o ON o.gsid = c.company_id") == [("C1",)]
    assert waiting(h) == [(3, 1, ["company"]), (5, 1, ["company"])]
    # History is kept: the first run still counts its rejects; those retried point at the retry.
    assert h.rows(f"SELECT rejected FROM gs_ops.job_runs WHERE job_run_id = '{r1.job_run_id}'") == [(4,)]
    assert h.rows(f"SELECT line_number, retried_in FROM gs_ops.rejects WHERE job_run_id = '{r1.job_run_id}' "
                  f"ORDER BY 1") == [(2, r2.job_run_id), (3, r2.job_run_id), (4, None), (5, r2.job_run_id)]
    assert [line for line, _ in h.rejects(r2.job_run_id)] == [3, 5]
    assert apply_pending(h.warehouse, h.cfg, "case") == [], "tried since the last change: not again"

    companies(h, "A2")
    (r3,) = apply_pending(h.warehouse, h.cfg, "case")
    assert (r3.retry_of, r3.rows_read, r3.inserted, r3.rejected) == (r1.job_run_id, 2, 1, 1)
    assert conserved(h, r3.job_run_id)
    assert h.rows(f"SELECT line_number, retried_in FROM gs_ops.rejects WHERE job_run_id = '{r2.job_run_id}' "
                  f"ORDER BY 1") == [(3, r3.job_run_id), (5, r3.job_run_id)]
    # C4 has had its 2 attempts: it stays a plain reject of the last retry.
    assert waiting(h) == []
    companies(h, "A9")
    assert apply_pending(h.warehouse, h.cfg, "case") == []
    assert h.rows("SELECT case_number FROM gs.case ORDER BY 1") == [("C1",), ("C2",), ("C5",)]
    assert [line for line, _ in h.rejects(r3.job_run_id)] == [5]


def test_retries_apply_before_newer_loads_of_the_job(harness):
    h = harness(JOBS % {"retry": RETRY})
    h.load("cases", "Number,Subject,Status,Account,Priority\nC1,Old subject,Open,A1,High\n")
    companies(h, "A1")
    _, r = h.load("cases", "Number,Subject,Status,Account,Priority\nC1,New subject,Pending,A1,High\n")
    runs = h.rows("SELECT retry_of IS NOT NULL, rows_read, inserted, updated FROM gs_ops.job_runs "
                  "WHERE job = 'cases' ORDER BY started_at")
    assert runs == [(False, 1, 0, 0), (True, 1, 1, 0), (False, 1, 0, 1)]
    assert h.rows("SELECT subject, status FROM gs.case") == [("New subject", "Pending")]


def test_rows_past_the_time_bound_are_not_retried(harness):
    h = harness(JOBS % {"retry": RETRY})
    h.load("cases", CASES)
    h.rows("UPDATE gs_ops.lookup_waiting SET first_rejected_at = first_rejected_at - INTERVAL 73 HOUR")
    companies(h, "A1", "A2")
    assert apply_pending(h.warehouse, h.cfg, "case") == []
    assert waiting(h) == [], "expired rows stop waiting; they stay rejects"


def test_without_the_option_nothing_waits(harness):
    h = harness(JOBS % {"retry": ""})
    _, r = h.load("cases", CASES)
    assert r.rejected == 4 and waiting(h) == []
    companies(h, "A1")
    assert apply_pending(h.warehouse, h.cfg, "case") == []


def test_aggregated_rows_are_retried_by_group(harness):
    jobs = (JOBS % {"retry": ""}) + """
  usage:
    connection: files
    source: {object: usage}
    destination: company_usage
    identifiers: [company_id, usage_date, feature]
    retry_unmatched_lookups: {}
    prepare:
      aggregate: {group_by: [Account, Feature], measures: [{name: Events, function: count}]}
    mappings:
      - {constant: "2026-11-26", target: usage_date}
      - {source: Feature, target: feature}
      - {source: Events, target: event_count}
    lookups:
      - {target: company_id, object: company, match: [{source: Account, field: external_id}]}
"""
    h = harness(jobs)
    _, r1 = h.load("usage", "Account,Feature\nA1,reports\nA2,reports\nA1,reports\nA1,export\n")
    assert (r1.rows_read, r1.aggregated, r1.rejected) == (4, 1, 3)
    companies(h, "A1")
    (r2,) = apply_pending(h.warehouse, h.cfg, "company_usage")
    assert (r2.rows_read, r2.aggregated, r2.inserted, r2.rejected) == (4, 1, 2, 1)
    assert conserved(h, r2.job_run_id)
    assert h.rows("SELECT feature, event_count FROM gs.company_usage ORDER BY 1") == [("export", 1), ("reports", 2)]


def test_the_option_needs_a_lookup_that_can_find_nothing(tmp_path):
    from gs_assets.config.loader import load_platform_config
    from tests.conftest import write_config
    text = (JOBS % {"retry": RETRY}).replace("match: [{source: Account, field: external_id}]}",
                                             "match: [{source: Account, field: external_id}], on_none: empty}")
    with pytest.raises(ConfigError) as e:
        load_platform_config(write_config(tmp_path / "config", text))
    assert "jobs.cases" in str(e.value) and "retry_unmatched_lookups needs a lookup" in str(e.value)


def test_by_hand_the_error_file_loads_again_as_a_new_file(harness, tmp_path):
    """What the README tells users without the option: download the rejects and send them again."""
    import json

    from gs_assets.engine.error_files import write_error_file
    h = harness(JOBS % {"retry": ""})
    landed, r = h.load("cases", CASES)
    companies(h, "A1", "A2")
    with h.warehouse.connect() as con:
        header = json.loads(con.execute("SELECT header FROM gs_ops.loads WHERE load_id = ?", [landed.load_id]).fetchone()[0])
        write_error_file(con, r.job_run_id, header, str(tmp_path / "errors.csv"))
    _, again = h.load("cases", (tmp_path / "errors.csv").read_text(), name="cases_again.csv")
    assert (again.rows_read, again.inserted, again.rejected) == (4, 2, 2)  # C1, C2 load; C3 (status), C4 (A9) do not


def test_a_retried_row_never_overwrites_what_a_newer_load_wrote(harness):
    h = harness(JOBS % {"retry": RETRY})
    companies(h, "A2")
    h.load("cases", "Number,Subject,Status,Account,Priority\nC1,Old subject,Open,A1,High\n")      # waits for A1
    h.load("cases", "Number,Subject,Status,Account,Priority\nC1,New subject,Pending,A2,High\n")   # newer: loads
    companies(h, "A1")
    (r,) = apply_pending(h.warehouse, h.cfg, "case")
    assert (r.rows_read, r.superseded, r.updated, r.rejected) == (1, 1, 0, 0) and conserved(h, r.job_run_id)
    assert h.rows("SELECT c.subject, o.external_id FROM gs.case c JOIN gs.company o ON o.gsid = c.company_id") == [
        ("New subject", "A2")]
    assert h.rows(f"SELECT line_number, superseded_by_line FROM gs_ops.superseded WHERE job_run_id = '{r.job_run_id}'") == [
        (2, None)]
    assert waiting(h) == []


def test_a_retry_that_fails_leaves_its_rows_waiting_and_the_new_loads_still_apply(harness, monkeypatch):
    import gs_assets.engine.pipeline as pipeline
    from gs_assets.engine.pipeline import LoadError

    h = harness(JOBS % {"retry": RETRY})
    _, r1 = h.load("cases", CASES)
    companies(h, "A1")
    real = pipeline.apply_load

    def boom(*a, **kw):
        if kw.get("retry") is not None:
            raise RuntimeError("injected failure")
        return real(*a, **kw)

    monkeypatch.setattr(pipeline, "apply_load", boom)
    with pytest.raises(LoadError, match="retrying rows of .*injected failure"):
        h.load("cases", "Number,Subject,Status,Account,Priority\nC7,New,Open,A1,High\n")
    assert h.rows("SELECT status, final, retry_of FROM gs_ops.job_runs WHERE job = 'cases' ORDER BY started_at") == [
        ("Partial Success", True, None), ("Failed", False, r1.job_run_id), ("Success", True, None)]
    assert waiting(h) == [(2, 0, ["company"]), (3, 0, ["company"]), (5, 0, ["company"])]
    monkeypatch.setattr(pipeline, "apply_load", real)
    (r,) = apply_pending(h.warehouse, h.cfg, "case")
    assert (r.retry_of, r.inserted, r.rejected) == (r1.job_run_id, 1, 2)
