"""The one warehouse resource every write goes through (DuckDB file by default).

Its tables are created by the engine (engine/warehouse_setup.py: objects from the data model, the
`gs_ops` ledger from engine/ledger.py). DuckDB allows one writing process (or readers) at a time:
writing steps share the `warehouse` concurrency pool, and every connection waits on the file lock instead of failing; readers open
read-only (`Warehouse.read`).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

# DuckDB's share of a run process: with Dagster and pandas loaded, a run peaks near 1 GiB.
DEFAULT_MEMORY_LIMIT = "600MB"

class WarehouseBusy(RuntimeError):
    """Another process held the warehouse file for longer than the caller could wait."""


class Warehouse(DuckDBResource):
    """DuckDB warehouse: `gs` objects, `raw_<connection>` landed data, `gs_ops` run log and rejects."""

    memory_limit: str = Field(default=DEFAULT_MEMORY_LIMIT, description=(
        "DuckDB memory_limit; work beyond it spills to temp files. The default keeps a whole run "
        "process (Dagster + DuckDB) near 1 GiB; raise it on bigger machines for speed."))

    write_wait_seconds: float = Field(default=600, description=(
        "how long a writer waits for DuckDB's file lock held by a reader (writers already queue in "
        "the `warehouse` pool) before the step fails"))

    def _open(self, read_only: bool, wait_seconds: float) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting while another process holds DuckDB's lock (one writer, or any
        number of readers, at a time) instead of failing at once."""
        deadline = time.monotonic() + wait_seconds
        delay = 0.05
        while True:
            try:
                return duckdb.connect(self.database, read_only=read_only, config=dict(self.connection_config))
            except duckdb.IOException as e:
                if "lock" not in str(e).lower():
                    raise
                if time.monotonic() + delay > deadline:
                    raise WarehouseBusy(
                        f"the warehouse {self.database} is in use by another process (DuckDB allows one writer, "
                        f"or readers, at a time); waited {wait_seconds:.0f} s. Try again when the running load "
                        f"finishes (Dagster UI > Runs).") from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection, closed even when the body raises (so the file lock is released)."""
        if self.database not in (":memory:", ""):
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        con = self._open(False, self.write_wait_seconds)
        try:
            con.execute("SET TimeZone = 'UTC'")
            # Bounded memory: DuckDB spills to disk past this instead of growing with file size.
            con.execute(f"SET memory_limit = '{self.memory_limit}'")
            if self.database not in (":memory:", ""):
                con.execute(f"SET temp_directory = '{Path(self.database).with_suffix('.tmp')}'")
            yield con
        finally:
            con.close()

    @contextmanager
    def read(self, wait_seconds: float = 120) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection for readers (sensors, the CLI, `./dev sql`): it waits for a load
        that is writing instead of failing on the lock, and never blocks a writer for long."""
        if self.database in (":memory:", ""):
            with self.connect() as con:
                yield con
            return
        con = self._open(True, wait_seconds)
        try:
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All statements commit together or not at all (invariant 2)."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
