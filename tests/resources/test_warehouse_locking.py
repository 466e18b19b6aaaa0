"""DuckDB allows one writing process (or readers) at a time: the warehouse waits for the lock held by
another process instead of failing, and says clearly what happened when it cannot wait longer."""

import subprocess
import sys
import time

import duckdb
import pytest

from resources.warehouse import Warehouse, WarehouseBusy

HOLD = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'ro'); print('held', flush=True); time.sleep(float(sys.argv[3]))"


def hold(path, mode: str, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path), mode, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "wh.duckdb"
    duckdb.connect(str(path)).execute("CREATE TABLE t AS SELECT 1 AS x").close()
    return Warehouse(database=str(path))


def test_a_reader_waits_for_a_writer_in_another_process(warehouse):
    writer = hold(warehouse.database, "rw", 2)
    start = time.monotonic()
    with warehouse.read() as con:
        assert con.execute("SELECT x FROM t").fetchone() == (1,)
    assert time.monotonic() - start > 1
    writer.wait()


def test_a_writer_waits_for_a_reader_in_another_process(warehouse):
    reader = hold(warehouse.database, "ro", 2)
    with warehouse.transaction() as con:
        con.execute("INSERT INTO t VALUES (2)")
    reader.wait()
    with warehouse.read() as con:
        assert con.execute("SELECT count(*) FROM t").fetchone() == (2,)


def test_a_reader_that_cannot_wait_longer_gets_a_clear_error(warehouse):
    writer = hold(warehouse.database, "rw", 3)
    with pytest.raises(WarehouseBusy, match="in use by another process.*waited 0 s.*running load finishes"):
        with warehouse.read(wait_seconds=0.3):
            pass
    writer.wait()
