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
