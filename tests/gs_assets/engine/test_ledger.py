"""The ledger (gs_ops tables) through its public functions, on real DuckDB warehouses: records come
back with field names, JSON columns parsed; the DDL migrates a warehouse of an earlier release."""

from datetime import datetime

import duckdb

from gs_assets.engine import ledger

JOBS = """
connections:
  files: {type: s3, bucket: test-bucket}
jobs:
  companies:
    connection: files
    source: {object: companies}
    destination: company
    operation: upsert
    identifiers: [external_id]
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
      - {source: ARR, target: arr}
      - {source: Industry, target: industry, default: Other}
"""

COMPANIES = """
Id,Name,ARR,Industry
A1,Acme,100,Tech
A1,Acme Inc,120,
A2,Beta,lots,Retail
"""


def test_a_job_run_reads_back_as_named_records(harness):
    h = harness(JOBS)
    landed, run = h.load("companies", COMPANIES, name="companies.csv", etag="e1")
    assert (run.rows_read, run.inserted, run.superseded, run.rejected, run.defaulted) == (3, 1, 1, 1, 1)
    with h.warehouse.connect() as con:
        load = ledger.load(con, landed.load_id)
        assert isinstance(load, ledger.LoadRecord)
        assert (load.connection, load.source_object, load.status, load.etag, load.rows_read) == (
            "files", "companies", "landed", "e1", 3)
        assert load.header == ["Id", "Name", "ARR", "Industry"]  # parsed, not JSON text
        assert load.source_file.endswith("companies.csv") and load.archived_to is None
        assert ledger.latest_load(con, "files", "companies") == load
        assert ledger.latest_load(con, "files", "companies", source_file=load.source_file, etag="e1") == load
        assert ledger.latest_load(con, "files", "companies", source_file=load.source_file, etag="e2") is None
        assert ledger.latest_load(con, "files", "companies", source_file=load.source_file, etag=None,
                                  any_etag=True) == load
        assert ledger.loads(con, [load.load_id]) == [load]
        assert ledger.pending_loads(con, "files", "companies", "companies") == []  # applied: final run exists

        (jr,) = ledger.job_runs_of(con, [""], job="companies")
        assert isinstance(jr, ledger.JobRunRecord)
        assert (jr.job_run_id, jr.job, jr.destination, jr.load_id, jr.status, jr.final) == (
            run.job_run_id, "companies", "company", load.load_id, "Partial Success", True)
        assert (jr.rows_read, jr.inserted, jr.superseded, jr.rejected, jr.defaulted, jr.retry_of) == (3, 1, 1, 1, 1, None)
        assert ledger.job_runs(con) == [jr]
        assert ledger.final_runs_of_load(con, load.load_id) == [jr]
        assert ledger.unconserved_runs(con, "company") == []
        assert [r.job_run_id for r in ledger.activity(con, "companies", limit=5)] == [jr.job_run_id]

        (match,) = ledger.runs_matching(con, run.job_run_id[:8])
        assert match.run == jr and match.load == load
        assert ledger.last_run_of(con, "", "companies") == match
        assert ledger.failed_runs_of(con, "companies", [""]) == []

        (rej,) = ledger.rejects_of(con, run.job_run_id)
        assert isinstance(rej, ledger.RejectRecord)
        assert rej.line_number == 4 and rej.original_values == {"Id": "A2", "Name": "Beta", "ARR": "lots",
                                                                 "Industry": "Retail"}
        assert [(r["field"], r["rule"]) for r in rej.reasons] == [("arr", "type")]
        assert ledger.count_rejects(con, run.job_run_id) == 1 == ledger.count_rejects(con)
        assert con.execute(f"SELECT line_number FROM {ledger.rejects_relation(run.job_run_id)}").fetchall() == [(4,)]
        (reasons,) = ledger.reject_reasons(con)
        assert (reasons.job, reasons.field, reasons.rule, reasons.rows, reasons.first) == (
            "companies", "arr", "type", 1, "companies.csv:4")

        assert con.execute("SELECT line_number, superseded_by_line FROM gs_ops.superseded").fetchall() == [(2, 3)]
        assert con.execute("SELECT line_number, field, original_value, reason FROM gs_ops.defaulted").fetchall() == [
            (3, "industry", None, "missing")]

        # The file's lifecycle: finished where it was, then found again as left in place.
        assert [r.load_id for r in ledger.unfinished_loads(con)] == [load.load_id]
        ledger.finish_loads(con, [load.load_id], load.source_file, ["s3://b/companies.csv.companies.errors.csv"])
        done = ledger.load(con, load.load_id)
        assert done.archived_to == load.source_file
        assert done.error_files == ["s3://b/companies.csv.companies.errors.csv"]  # parsed, not JSON text
        assert ledger.unfinished_loads(con) == [] and ledger.moved_loads(con) == []
        (left,) = ledger.left_in_place(con, [load.source_file])
        assert (left.source_object, left.etag, left.load_id) == ("companies", "e1", load.load_id)


def test_an_identical_re_upload_is_recorded_with_its_note(harness):
    h = harness(JOBS)
    landed, _ = h.load("companies", COMPANIES, etag="e1")
    with h.warehouse.transaction() as con:
        ledger.insert_load(con, load_id="again", connection="files", source_object="companies", raw_table=None,
                           source_file="s3://b/companies.csv", etag="e1", size_bytes=10, status="identical",
                           rows_read=0, malformed_rows=0, header=None, error=None, run_id="dagster-run",
                           landed_at=datetime(2026, 1, 1), file_name=None, file_date=None, note="identical to load x")
    with h.warehouse.connect() as con:
        again = ledger.load(con, "again")
        assert (again.status, again.note, again.header) == ("identical", "identical to load x", None)
        assert again.seq > ledger.load(con, landed.load_id).seq  # arrival order
        assert ledger.identical_loads(con, ["dagster-run"]) == [again]
        assert ledger.latest_load(con, "files", "companies", source_file="s3://b/companies.csv", etag="e1") is None
        assert ledger.latest_load(con, "files", "companies", source_file="s3://b/companies.csv", etag="e1",
                                  statuses=("landed", "identical")) == again
        ledger.finish_loads(con, ["again"], "s3://b/archive/companies.csv", [])
        assert [r.load_id for r in ledger.moved_loads(con)] == ["again"]


def test_job_run_records_round_trip(tmp_path):
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    ledger.create_tables(con)
    ledger.create_tables(con)  # idempotent
    rec = ledger.JobRunRecord(
        job_run_id="r1", job="j", connection="c", destination="company", load_id="l1", source_file="f.csv",
        etag=None, dagster_run_id="d1", operation="upsert", started_at=datetime(2026, 1, 1),
        ended_at=datetime(2026, 1, 1, 0, 1), status="Success", rows_read=2, inserted=1, updated=0, unchanged=0,
        rejected=0, filtered=0, superseded=0, error=None, final=True, aggregated=0, defaulted=0, retry_of=None)
    ledger.insert_job_run(con, rec)
    assert ledger.job_runs_of(con, ["d1"]) == [rec]
    # rows read 2, accounted 1: the conservation check names it
    assert ledger.unconserved_runs(con, "company") == [ledger.UnconservedRun("r1", "j", 2, 1)]
    assert ledger.runs_matching(con, "r1") == [ledger.RunAndLoad(rec, None)]  # no such load
    con.close()


def test_a_warehouse_of_an_earlier_release_gains_the_new_columns(tmp_path):
    path = str(tmp_path / "old.duckdb")
    con = duckdb.connect(path)
    con.execute("CREATE SCHEMA gs_ops")
    con.execute("CREATE TABLE gs_ops.job_runs (job_run_id VARCHAR PRIMARY KEY, job VARCHAR, status VARCHAR, "
                "started_at TIMESTAMP)")
    con.execute("INSERT INTO gs_ops.job_runs VALUES ('r0', 'j', 'Success', '2025-01-01')")
    con.close()
    with duckdb.connect(path, read_only=True) as ro:  # readers (the CLI) see what is there
        assert ledger.has_table(ro, "job_runs") and not ledger.has_table(ro, "lookup_waiting")
        (old,) = ledger.activity(ro)
        assert (old.job_run_id, old.status, old.rows_read, old.retry_of) == ("r0", "Success", None, None)
    con = duckdb.connect(path)
    ledger.create_tables(con)
    assert {"aggregated", "defaulted", "retry_of"} <= set(ledger.job_runs_columns(con))
    assert ledger.has_table(con, "lookup_waiting")
    con.close()


def test_an_empty_warehouse_has_no_activity(tmp_path):
    con = duckdb.connect(str(tmp_path / "new.duckdb"))
    assert ledger.job_runs_columns(con) == [] and ledger.activity(con) == []
    assert not ledger.has_table(con, "job_runs")
    con.close()
