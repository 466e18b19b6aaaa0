"""The one warehouse resource every write goes through (DuckDB file by default).

Tables of objects are created from the data model; a field added in config adds its column and
keeps the data. DuckDB allows one writing process (or readers) at a time: writing steps share the `warehouse`
concurrency pool, and every connection waits on the file lock instead of failing; readers open
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

from gs_assets.model.field_types import DUCKDB_TYPES
from gs_assets.model.objects import DataModel, ObjectDef

# DuckDB's share of a run process: with Dagster and pandas loaded, a run peaks near 1 GiB.
DEFAULT_MEMORY_LIMIT = "600MB"

OPS_DDL = [
    "CREATE SCHEMA IF NOT EXISTS gs",
    "CREATE SCHEMA IF NOT EXISTS gs_ops",
    """CREATE TABLE IF NOT EXISTS gs_ops.loads (
        load_id VARCHAR PRIMARY KEY,
        connection VARCHAR, source_object VARCHAR, raw_table VARCHAR,
        source_file VARCHAR, etag VARCHAR, size_bytes BIGINT,
        status VARCHAR,             -- landed | failed | identical
        rows_read BIGINT, malformed_rows BIGINT, header JSON, error VARCHAR,
        dagster_run_id VARCHAR, landed_at TIMESTAMP, seq BIGINT)""",
    "CREATE SEQUENCE IF NOT EXISTS gs_ops.load_seq",
    """CREATE TABLE IF NOT EXISTS gs_ops.job_runs (
        job_run_id VARCHAR PRIMARY KEY,
        job VARCHAR, connection VARCHAR, destination VARCHAR, load_id VARCHAR,
        source_file VARCHAR, etag VARCHAR, dagster_run_id VARCHAR, operation VARCHAR,
        started_at TIMESTAMP, ended_at TIMESTAMP, status VARCHAR,
        rows_read BIGINT, inserted BIGINT, updated BIGINT, unchanged BIGINT,
        rejected BIGINT, filtered BIGINT, superseded BIGINT, error VARCHAR,
        final BOOLEAN)""",
    """CREATE TABLE IF NOT EXISTS gs_ops.rejects (
        job_run_id VARCHAR, job VARCHAR, dagster_run_id VARCHAR, source_file VARCHAR,
        line_number BIGINT, original_values JSON, reasons JSON, rejected_at TIMESTAMP)""",
    # Columns added after the first release: existing warehouses gain them in place.
    "ALTER TABLE gs_ops.loads ADD COLUMN IF NOT EXISTS file_name VARCHAR",
    "ALTER TABLE gs_ops.loads ADD COLUMN IF NOT EXISTS file_date TIMESTAMP",
    "ALTER TABLE gs_ops.loads ADD COLUMN IF NOT EXISTS archived_to VARCHAR",
    "ALTER TABLE gs_ops.loads ADD COLUMN IF NOT EXISTS error_files JSON",
    "ALTER TABLE gs_ops.job_runs ADD COLUMN IF NOT EXISTS aggregated BIGINT DEFAULT 0",
    # status 'identical': a re-upload of a file version already loaded, archived without being applied
    # again; `note` says which load it repeats and how to re-apply it.
    "ALTER TABLE gs_ops.loads ADD COLUMN IF NOT EXISTS note VARCHAR",
    """CREATE TABLE IF NOT EXISTS gs_ops.superseded (
        job_run_id VARCHAR, job VARCHAR, line_number BIGINT, superseded_by_line BIGINT)""",
    # Values a mapping's `default` replaced (reason: missing = the source value was empty,
    # invalid = it did not convert); rows written by the run only.
    "ALTER TABLE gs_ops.job_runs ADD COLUMN IF NOT EXISTS defaulted BIGINT DEFAULT 0",
    """CREATE TABLE IF NOT EXISTS gs_ops.defaulted (
        job_run_id VARCHAR, job VARCHAR, source_file VARCHAR, line_number BIGINT, field VARCHAR,
        source VARCHAR, original_value VARCHAR, reason VARCHAR, default_value VARCHAR)""",
    # Lookup retries (job option retry_unmatched_lookups): rows rejected only because a direct
    # lookup found nothing wait here until a looked-up object gets new records; a retry is a job
    # run of its own (retry_of: the run that first rejected them), and the reject it retried
    # points at it (retried_in).
    "ALTER TABLE gs_ops.job_runs ADD COLUMN IF NOT EXISTS retry_of VARCHAR",
    "ALTER TABLE gs_ops.rejects ADD COLUMN IF NOT EXISTS retried_in VARCHAR",
    # a rejected row's id in its source, for records landed with one (an API page, a SQL chunk)
    "ALTER TABLE gs_ops.rejects ADD COLUMN IF NOT EXISTS source_id VARCHAR",
    """CREATE TABLE IF NOT EXISTS gs_ops.lookup_waiting (
        job VARCHAR, load_id VARCHAR, line_number BIGINT, job_run_id VARCHAR, last_job_run_id VARCHAR,
        attempts INTEGER, first_rejected_at TIMESTAMP, last_tried_at TIMESTAMP, objects VARCHAR[])""",
]


def create_object_table_sql(obj: ObjectDef) -> str:
    cols = ",\n  ".join(
        f'"{f.name}" {DUCKDB_TYPES[f.type]}' + (" NOT NULL" if f.name == "gsid" else "")
        for f in obj.fields.values()
    )
    return f"CREATE TABLE IF NOT EXISTS {obj.table} (\n  {cols}\n)"


def sync_object_tables(con: duckdb.DuckDBPyConnection, model: DataModel) -> list[str]:
    """Create missing tables and add missing columns. Returns what changed. Never drops data."""
    changes: list[str] = []
    for stmt in OPS_DDL:
        con.execute(stmt)
    existing = {
        (r[0], r[1])
        for r in con.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'gs'"
        ).fetchall()
    }
    tables = {t for t, _ in existing}
    for obj in model.objects.values():
        if obj.name not in tables:
            con.execute(create_object_table_sql(obj))
            changes.append(f"created table {obj.table}")
            continue
        for f in obj.fields.values():
            if (obj.name, f.name) not in existing:
                con.execute(f'ALTER TABLE {obj.table} ADD COLUMN "{f.name}" {DUCKDB_TYPES[f.type]}')
                changes.append(f"added column {obj.table}.{f.name}")
    return changes


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
