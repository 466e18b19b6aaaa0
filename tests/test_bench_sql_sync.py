"""`./dev bench sql` (benchmarks/sql_sync.py) keeps working as the kind changes: a small PostgreSQL
table (its own local server) through the whole path (both floors, the Dagster run of the job) prints
its table with every row written. No figure is checked, only that the run is complete."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.slow  # a PostgreSQL server and three subprocesses, one building the Dagster definitions
def test_sql_sync_benchmark_runs_end_to_end_on_a_small_table():
    # Under the system temp dir, not pytest's: as root the server runs as postgres, which cannot
    # traverse root's 0700 /tmp/pytest-of-root.
    work = Path(tempfile.mkdtemp(prefix="gsdp-bench-sql-test-"))
    work.chmod(0o755)
    try:
        proc = subprocess.run([sys.executable, "benchmarks/sql_sync.py", "--rows", "3000", "--work", str(work)],
                              cwd=REPO, env={**os.environ}, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        out = proc.stdout
        assert "filling billing.subscriptions with 3,000 rows" in out
        assert "job runs [1, 3000, 3000, 0, 0, 'Success']" in out
        assert "subscription (rows, company) [3000, 3000]" in out  # every company found by its external id
        table = out[out.index("| rows |"):].splitlines()
        assert "| COPY rows/s |" in table[0] and "| sync/COPY |" in table[0] and "| sync peak RSS MiB |" in table[0]
        assert table[2].startswith("| 3,000 |") and table[2].endswith("| Success: 1 loads, 3,000 ins, 0 upd, 0 rej |")
        assert list(work.iterdir()) == []  # the server stopped, its root removed
    finally:
        shutil.rmtree(work, ignore_errors=True)
