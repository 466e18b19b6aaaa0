"""The SIGKILL drill: a real Dagster run (`dagster asset materialize`, a subprocess) loading a large
file is killed at random points during the load. Each time the warehouse must hold either nothing
of the load or all of it, the file must still be where it was unless the load committed, the
recovery sensor must fail the dead run and free its pool slot, and the next run of the same
partition must give exactly what one clean run gives."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from gs_assets.config.loader import load_platform_config
from gs_assets.definitions import build_definitions
from gs_assets.instance_config import write_instance_config
from tests.conftest import REPO, write_config

pytestmark = pytest.mark.drill

ROWS = 250_000
KEY = "in/accounts_big.csv"
JOBS = """
connections:
  files: {type: s3, bucket: %s}
jobs:
  accounts:
    connection: files
    source: {object: accounts, prefix: in/, file_name: "accounts*.csv"}
    destination: company
    operation: upsert
    identifiers: [external_id]
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
      - {source: Employees, target: employees}
      - {source: ARR, target: arr}
"""


def big_csv() -> bytes:
    # Every 997th row has a bad number (a reject); every 1,000th repeats an earlier Id (superseded).
    lines = ["Id,Name,Employees,ARR"]
    for i in range(ROWS):
        ident = i - 500 if i % 1000 == 999 else i
        emp = "n/a" if i % 997 == 3 else str(10 + i % 5000)
        lines.append(f"A{ident:07d},Account {i},{emp},{(i % 900) * 1000.5:.2f}")
    return ("\n".join(lines) + "\n").encode()


class Drill:
    def __init__(self, tmp_path: Path, s3_server, bucket: str):
        self.tmp, self.s3, self.bucket = tmp_path, s3_server, bucket
        self.config = write_config(tmp_path / "config", JOBS % bucket)
        self.home = tmp_path / "dagster_home"
        write_instance_config(self.home)
        self.instance = dg.DagsterInstance.from_config(str(self.home))
        self.instance.add_dynamic_partitions("files__files__accounts", [KEY])
        self.body = big_csv()
        self.n = 0

    def fresh(self) -> str:
        """A new, empty warehouse; the file back in its inbound place."""
        self.n += 1
        client = self.s3.client()
        for o in client.list_objects_v2(Bucket=self.bucket).get("Contents", []):
            client.delete_object(Bucket=self.bucket, Key=o["Key"])
        client.put_object(Bucket=self.bucket, Key=KEY, Body=self.body)
        return str(self.tmp / f"wh{self.n}.duckdb")

    def start(self, warehouse: str) -> tuple[subprocess.Popen, dict]:
        env = {**os.environ, **self.s3.env(), "DAGSTER_HOME": str(self.home), "GSDP_CONFIG_DIR": str(self.config),
               "GSDP_WAREHOUSE": warehouse, "GSDP_PROGRESS_SECONDS": "0"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "gs_assets.definitions",
             "--select", "source/files/accounts,gs/company", "--partition", KEY],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        seen: dict = {"log": []}

        def read():
            for raw in proc.stderr:
                line = raw.decode(errors="replace")
                seen["log"].append(line)
                if "STEP_START" in line and "load_started" not in seen:
                    seen["load_started"] = time.monotonic()
                if "RUN_SUCCESS" in line:
                    seen["run_done"] = time.monotonic()
        threading.Thread(target=read, daemon=True).start()
        return proc, seen

    def run_clean(self, warehouse: str) -> float:
        proc, seen = self.start(warehouse)
        assert proc.wait(timeout=300) == 0, "".join(seen["log"][-40:])
        return seen["run_done"] - seen["load_started"], "".join(seen["log"])

    def state(self, warehouse: str) -> dict:
        if not Path(warehouse).exists():  # killed before the run created the warehouse
            return {"companies": (0, None), "rejects": (0, None, None), "job_runs": [], "loads": []}
        con = duckdb.connect(warehouse, read_only=True)
        try:
            q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
            return {
                "companies": q("SELECT count(*), md5(string_agg(external_id || '|' || name || '|' || coalesce(employees::VARCHAR, '') "
                               "|| '|' || coalesce(arr::VARCHAR, ''), ',' ORDER BY external_id)) FROM gs.company")[0],
                "rejects": q("SELECT count(*), min(line_number), max(line_number) FROM gs_ops.rejects")[0],
                "job_runs": q("SELECT job, status, rows_read, inserted, updated, unchanged, rejected, filtered, superseded, final "
                              "FROM gs_ops.job_runs ORDER BY started_at"),
                "loads": q("SELECT status, rows_read, malformed_rows FROM gs_ops.loads ORDER BY seq"),
            }
        finally:
            con.close()

    def keys(self) -> list[str]:
        return sorted(o["Key"] for o in self.s3.client().list_objects_v2(Bucket=self.bucket).get("Contents", []))


@pytest.mark.timeout(900)
def test_a_run_killed_mid_load_leaves_nothing_partial_and_the_rerun_equals_one_clean_run(tmp_path, s3_server, bucket):
    drill = Drill(tmp_path, s3_server, bucket)
    reference_wh = drill.fresh()
    load_seconds, log = drill.run_clean(reference_wh)
    # Progress of the load is in the run's log. With GSDP_PROGRESS_SECONDS=0 every downloaded chunk
    # is logged whatever the machine's speed. DuckDB's percent of a statement only shows when the
    # statement outlasts one poll, which a fast machine may never give here: that part is proven by
    # tests/gs_assets/engine/test_progress.py with a statement that is slow by construction.
    assert re.search(r"downloading in/accounts_big.csv: chunk 1, 8.0 of [0-9.]+ MiB \(\d+%\), [0-9,]+ rows so far", log), log
    reference = drill.state(reference_wh)
    read = ROWS
    rejected = len([i for i in range(ROWS) if i % 997 == 3])
    valid_ids = [i - 500 if i % 1000 == 999 else i for i in range(ROWS) if i % 997 != 3]
    superseded = len(valid_ids) - len(set(valid_ids))
    assert reference["job_runs"] == [("accounts", "Partial Success", read, read - rejected - superseded, 0, 0,
                                      rejected, 0, superseded, True)], reference
    assert reference["companies"][0] == read - rejected - superseded and reference["rejects"][0] == rejected
    assert drill.keys() == ["in/archive/accounts_big.csv", "in/archive/accounts_big.csv.accounts.errors.csv"]

    defs = build_definitions(load_platform_config(drill.config), warehouse=reference_wh)
    recovery = defs.resolve_sensor_def("run_recovery_sensor")
    rng = random.Random(20261127)
    outcomes = []
    t0 = time.monotonic()
    for attempt in range(5):
        # One kill point per fifth of the load, at a random place inside it.
        fraction = (attempt + rng.random()) / 5
        wh = drill.fresh()
        proc, seen = drill.start(wh)
        deadline = time.monotonic() + 120
        while "load_started" not in seen and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "load_started" in seen, "".join(seen["log"][-40:])
        kill_at = seen["load_started"] + fraction * load_seconds
        time.sleep(max(kill_at - time.monotonic(), 0))
        alive = "run_done" not in seen
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

        after = drill.state(wh)
        committed = bool(after["job_runs"])
        if committed:  # killed after the commit: all of it is there
            assert after["companies"] == reference["companies"] and after["rejects"] == reference["rejects"]
            assert after["job_runs"] == reference["job_runs"]
        else:  # nothing of the load reached the object, the rejects or the run log, and the file stayed
            assert after["companies"] == (0, None) and after["rejects"][0] == 0
            assert KEY in drill.keys()
        assert after["loads"] in ([], [("landed", ROWS, 0)]), after["loads"]

        # The recovery sensor fails the dead run and gives its pool slot back.
        held = drill.instance.get_runs(limit=1)[0].run_id in drill.instance.event_log_storage.get_concurrency_run_ids()
        result = recovery(dg.build_sensor_context(instance=drill.instance))
        run = drill.instance.get_runs(limit=1)[0]
        if alive:
            assert run.status == dg.DagsterRunStatus.FAILURE, run.status
            assert run.run_id in result.skip_message
        assert drill.instance.event_log_storage.get_concurrency_info("warehouse").active_slot_count == 0
        assert not drill.instance.event_log_storage.get_concurrency_run_ids()

        # The same partition again: exactly one clean run's result, and the file archived.
        drill.run_clean(wh)
        again = drill.state(wh)
        assert again["companies"] == reference["companies"]
        assert again["rejects"] == reference["rejects"]
        assert [r for r in again["job_runs"]] == reference["job_runs"]
        assert again["loads"] == reference["loads"]
        assert drill.keys() == ["in/archive/accounts_big.csv", "in/archive/accounts_big.csv.accounts.errors.csv"]
        outcomes.append((round(fraction, 2), "after commit" if committed else "before commit", alive, held,
                         round(time.monotonic() - t0)))
    print(f"load {load_seconds:.1f} s; kill points (fraction of the load, state, run alive at kill, pool slot held, s):", outcomes)
