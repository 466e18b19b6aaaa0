"""The backfill drill: a real deployment (webserver + daemon, run queue with 4 runs at once) backfills
100 file partitions and the object they load, launched through the webserver's GraphQL API like the
UI does. Runs overlap, writers wait for the `warehouse` pool: no run fails on DuckDB's file lock,
and the warehouse holds exactly the expected rows."""

from __future__ import annotations

import time

import dagster as dg
import duckdb
import pytest

from tests.conftest import write_config
from tests.dagster_dev import DagsterDeployment

pytestmark = pytest.mark.drill

FILES = 100
ROWS = 1000  # per file; the first 100 of each file repeat the previous file's last 100 (same values)
OVERLAP = 100
JOBS = """
connections:
  files: {type: s3, bucket: %s}
jobs:
  accounts:
    connection: files
    source: {object: accounts, prefix: in/, file_name: "accounts_*.csv"}
    destination: company
    operation: upsert
    identifiers: [external_id]
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
      - {source: Employees, target: employees}
"""
LAUNCH = """
mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
STATUS = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }"""


def launched_at(instance: dg.DagsterInstance, run_id: str) -> float:
    recs = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_STARTING).records
    return recs[0].event_log_entry.timestamp


def account_file(i: int) -> str:
    start = i * (ROWS - OVERLAP)
    lines = ["Id,Name,Employees"]
    for n in range(start, start + ROWS):
        lines.append(f"A{n:06d},Account {n},{'many' if n == start + OVERLAP + 7 else n % 900}")  # one reject per file, not a repeated row
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(900)
def test_a_backfill_over_100_files_with_concurrent_runs_has_no_failed_run_and_exact_rows(tmp_path, s3_server, bucket):
    client = s3_server.client()
    keys = [f"in/accounts_{i:03d}.csv" for i in range(FILES)]
    for i, key in enumerate(keys):
        client.put_object(Bucket=bucket, Key=key, Body=account_file(i).encode())
    warehouse = tmp_path / "wh.duckdb"
    dep = DagsterDeployment(tmp_path, config_dir=write_config(tmp_path / "config", JOBS % bucket),
                            warehouse=warehouse, s3_env=s3_server.env(), max_concurrent_runs=4)
    try:
        dep.start_webserver()
        # The backfill, not the sensor, loads these files (the sensor would request a run per file).
        dep.stop_sensor("s3_files_sensor")
        instance = dg.DagsterInstance.from_config(str(dep.home))
        instance.add_dynamic_partitions("files__files__accounts", keys)
        dep.start_daemon()
        launched = dep.graphql(LAUNCH, {"p": {
            "partitionNames": keys,
            "assetSelection": [{"path": ["source", "files", "accounts"]}, {"path": ["gs", "company"]}],
            "title": "drill: 100 files"}})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]
        deadline = time.monotonic() + 720
        status = None
        while time.monotonic() < deadline:
            status = dep.graphql(STATUS, {"id": backfill_id})["partitionBackfillOrError"]["status"]
            if status not in ("REQUESTED", "CANCELING"):
                break
            time.sleep(2)
        runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        statuses = sorted(r.dagster_run.status.value for r in runs)
        assert status in ("COMPLETED", "COMPLETED_SUCCESS"), (status, statuses, dep.logs)
    finally:
        dep.stop()

    # 10 runs of 10 files (backfill_files_per_run) and one run of the object, all successful.
    assert statuses == ["SUCCESS"] * (FILES // 10 + 1), statuses
    # A run is in progress from its launch (STARTING) to its end; the queue keeps at most 4 so.
    # (How many did overlap depends on the machine's speed: printed, not asserted.)
    spans = sorted((launched_at(instance, r.dagster_run.run_id), r.end_time) for r in runs)
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap <= 4, f"more runs in progress than the queue allows: {spans}"

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        distinct = FILES * (ROWS - OVERLAP) + OVERLAP
        assert con.execute("SELECT count(*), count(DISTINCT external_id) FROM gs.company").fetchone() == (
            distinct - FILES, distinct - FILES)
        assert con.execute("SELECT count(*), count(*) FILTER (WHERE status = 'landed') FROM gs_ops.loads").fetchone() \
            == (FILES, FILES)
        totals = con.execute("SELECT count(*), sum(rows_read), sum(inserted), sum(updated), sum(unchanged), sum(rejected), "
                             "count(*) FILTER (WHERE status = 'Partial Success') FROM gs_ops.job_runs").fetchone()
        # Each repeated row is unchanged when its second copy lands, whichever file lands first.
        assert totals == (FILES, FILES * ROWS, distinct - FILES, 0, (FILES - 1) * OVERLAP, FILES, FILES), totals
        assert con.execute("SELECT count(*) FROM gs_ops.rejects").fetchone()[0] == FILES
    finally:
        con.close()
    archived = {o["Key"] for p in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="in/archive/")
                for o in p.get("Contents", [])}
    assert {f"in/archive/{k[3:]}" for k in keys} <= archived
    print(f"backfill {backfill_id}: {len(runs)} runs, at most {overlap} at once, "
          f"{max(e for _, e in spans) - min(s for s, _ in spans):.0f} s from first start to last end")
