"""`./dev bench api` (benchmarks/api_sync.py) keeps working as the kind changes: a small sync
through the whole path (fake in its own process, floor client, Dagster run of the accounts job)
prints its table with every record written. No figure is checked, only that the run is complete."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow  # four subprocesses, each building the Dagster definitions
def test_api_sync_benchmark_runs_end_to_end_on_a_small_org(tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/api_sync.py", "--records", "2500", "--users", "20",
                           "--runs", "1", "--work", str(tmp_path)], cwd=REPO, env={**os.environ},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "users job (template warehouse): [1, 21, 21, 0, 0, 'Success']" in out  # 20 + the integration user
    assert "2 pages, 3 calls" in out  # floor: describe + 2 pages of 2,000 (queryAll, nextRecordsUrl)
    assert "company (rows, csm, parent) [2500, 2500, 240]" in out  # every owner found, every parent too
    table = out[out.index("| records |"):].splitlines()
    assert table[2].startswith("| 2,500 |") and table[2].endswith("| Success: 1 loads, 2,500 ins, 0 upd, 0 rej |")
