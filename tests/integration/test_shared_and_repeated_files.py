"""Which files get loaded and archived, through the real sensor and Dagster runs (moto S3):
one file read by two source objects, identical re-uploads, scheduled jobs beside sensor-served
ones, and files the ledger already holds."""

import duckdb
import dagster as dg

from tests.dagster_helpers import platform, put, run_requests, tick

DUAL = """
connections:
  files: {type: s3, bucket: %s}
jobs:
  dualx:
    connection: files
    source: {object: dualx, prefix: in/, file_name: "d*.csv"}
    destination: company
    operation: upsert
    identifiers: [external_id]
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
  dualy:
    connection: files
    source: {object: dualy, prefix: in/, file_name: "*.csv"}
    destination: user
    operation: upsert
    identifiers: [email]
    mappings:
      - {source: Name, target: name}
      - {source: Email, target: email}
"""


def q(tmp_path, sql, params=()):
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def keys(s3_server, bucket):
    return sorted(o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", []))


def test_one_file_read_by_two_source_objects_loads_into_both_and_is_archived_once(tmp_path, s3_server, bucket):
    _, defs = platform(tmp_path, DUAL % bucket)
    instance = dg.DagsterInstance.ephemeral()
    put(s3_server, bucket, "in/d1.csv", "Id,Name,Email\nA1,Acme,ann@x.io\nA2,Beta,bob@x.io\n")
    result = tick(defs, instance, None)
    assert sorted(r.job_name for r in result.run_requests) == ["load_files__dualx_job", "load_files__dualy_job"]
    runs = run_requests(defs, instance, result)
    assert all(r.success for r in runs)
    assert q(tmp_path, "SELECT count(*) FROM gs.company")[0][0] == 2
    assert q(tmp_path, "SELECT count(*) FROM gs.user")[0][0] == 2
    assert sorted(q(tmp_path, "SELECT job, status, rows_read FROM gs_ops.job_runs WHERE final")) == [
        ("dualx", "Success", 2), ("dualy", "Success", 2)]
    assert keys(s3_server, bucket) == ["in/archive/d1.csv"]
    assert q(tmp_path, "SELECT source_object, archived_to FROM gs_ops.loads ORDER BY source_object") == [
        ("dualx", f"s3://{bucket}/in/archive/d1.csv"), ("dualy", f"s3://{bucket}/in/archive/d1.csv")]


TIMED = """
connections:
  files: {type: s3, bucket: %s}
jobs:
  nightly_accounts:
    connection: files
    source: {object: accounts, prefix: in/, file_name: "acc*.csv"}
    destination: company
    operation: upsert
    identifiers: [external_id]
    schedule: {every: day, at: "02:00"}
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
  live_contacts:
    connection: files
    source: {object: accounts, prefix: in/, file_name: "acc*.csv"}
    destination: user
    operation: upsert
    identifiers: [email]
    mappings:
      - {source: Name, target: name}
      - {source: Email, target: email}
  nightly_only:
    connection: files
    source: {object: ledger, prefix: in/, file_name: "ledger*.csv"}
    destination: company
    operation: upsert
    identifiers: [external_id]
    schedule: {every: day, at: "03:00"}
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
"""

ACC = "Id,Name,Email\nA1,Acme,ann@x.io\nA2,Beta,bob@x.io\n"


def schedule_tick(defs, instance, name):
    from tests.dagster_helpers import persistent_instance  # noqa: F401 - instance passed in
    ctx = dg.build_schedule_context(instance=instance, resources={"s3": defs.resources["s3"]},
                                    repository_def=defs.get_repository_def())
    return defs.resolve_schedule_def(name).evaluate_tick(ctx)


def test_a_scheduled_job_applies_at_its_time_and_the_file_is_archived_after_all_jobs(tmp_path, s3_server, bucket):
    from tests.dagster_helpers import persistent_instance
    _, defs = platform(tmp_path, TIMED % bucket)
    instance = persistent_instance(tmp_path)
    put(s3_server, bucket, "in/acc.csv", ACC)
    put(s3_server, bucket, "in/ledger.csv", "Id,Name\nL1,Ledger Co\n")
    result = tick(defs, instance, None)
    # The sensor loads files for the job without a schedule only; ledger.csv waits for its schedule.
    assert [(r.job_name, r.partition_key) for r in result.run_requests] == [("load_files__accounts_job", "in/acc.csv")]
    assert all(r.success for r in run_requests(defs, instance, result))
    assert q(tmp_path, "SELECT count(*) FROM gs.user")[0][0] == 2
    assert q(tmp_path, "SELECT count(*) FROM gs.company")[0][0] == 0, "the scheduled job waits for its time"
    assert q(tmp_path, "SELECT job FROM gs_ops.job_runs WHERE final") == [("live_contacts",)]
    assert keys(s3_server, bucket) == ["in/acc.csv", "in/ledger.csv"], "not archived before every job applied it"
    assert not tick(defs, instance, result.cursor).run_requests

    sched = schedule_tick(defs, instance, "nightly_accounts_schedule")
    assert [r.partition_key for r in sched.run_requests] == ["in/acc.csv"]
    run = defs.resolve_job_def("nightly_accounts_job").execute_in_process(
        partition_key="in/acc.csv", instance=instance, tags=sched.run_requests[0].tags)
    assert run.success
    assert q(tmp_path, "SELECT count(*) FROM gs.company")[0][0] == 2
    assert sorted(q(tmp_path, "SELECT job, status FROM gs_ops.job_runs WHERE final")) == [
        ("live_contacts", "Success"), ("nightly_accounts", "Success")]
    assert keys(s3_server, bucket) == ["in/archive/acc.csv", "in/ledger.csv"]


def test_a_run_of_one_job_also_applies_its_sources_on_arrival_jobs_so_the_file_is_archived(tmp_path, s3_server, bucket):
    """gsdp run, the Bulk API and the launchpad run <job>_job: the source's jobs that load on
    arrival apply the file in that run too, so it does not wait in the prefix."""
    from tests.dagster_helpers import persistent_instance
    _, defs = platform(tmp_path, TIMED % bucket)
    instance = persistent_instance(tmp_path)
    put(s3_server, bucket, "in/acc.csv", ACC)
    instance.add_dynamic_partitions("files__files__accounts", ["in/acc.csv"])
    run = defs.resolve_job_def("nightly_accounts_job").execute_in_process(partition_key="in/acc.csv", instance=instance)
    assert run.success
    assert sorted(q(tmp_path, "SELECT job, status FROM gs_ops.job_runs WHERE final")) == [
        ("live_contacts", "Success"), ("nightly_accounts", "Success")]
    assert keys(s3_server, bucket) == ["in/archive/acc.csv"]
