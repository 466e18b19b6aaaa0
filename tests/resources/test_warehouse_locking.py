"""DuckDB allows one writing process (or readers) at a time: the warehouse waits for the lock held by
another process instead of failing, and says clearly what happened when it cannot wait longer."""

import duckdb
import pytest

from resources.warehouse import Warehouse, WarehouseBusy
from tests.conftest import hold_warehouse, released


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "wh.duckdb"
    duckdb.connect(str(path)).execute("CREATE TABLE t AS SELECT 1 AS x").close()
    return Warehouse(database=str(path))


def test_a_reader_waits_for_a_writer_in_another_process(warehouse):
    writer = hold_warehouse(warehouse.database, seconds=2)
    with warehouse.read() as con:
        # The reader got in only after the writer let go (not because it ran late).
        assert released(writer)
        assert con.execute("SELECT x FROM t").fetchone() == (1,)
    writer.wait()


def test_a_writer_waits_for_a_reader_in_another_process(warehouse):
    reader = hold_warehouse(warehouse.database, read_only=True, seconds=2)
    with warehouse.transaction() as con:
        assert released(reader)
        con.execute("INSERT INTO t VALUES (2)")
    reader.wait()
    with warehouse.read() as con:
        assert con.execute("SELECT count(*) FROM t").fetchone() == (2,)


def test_a_reader_that_cannot_wait_longer_gets_a_clear_error(warehouse):
    writer = hold_warehouse(warehouse.database, seconds=600)  # held for the whole test, then killed
    try:
        with pytest.raises(WarehouseBusy, match="in use by another process.*waited 0 s.*running load finishes"):
            with warehouse.read(wait_seconds=0.3):
                pass
    finally:
        writer.kill()
        writer.wait()
