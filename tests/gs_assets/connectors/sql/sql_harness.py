"""Syncs of a SQL source against a real database, through the kind's public entry points: the
reader (`sync_dataset`) lands, the engine (`apply_pending`) applies, as the source asset and the
object asset do in a Dagster run.

    h = SqlHarness(tmp_path, monkeypatch, db, {"subs": sql_job("subscriptions", "billing.subs", ...)})
    out, runs = h.run("subs")    # sync the job's source, apply it: (SyncOutcome, the job's JobRunResults)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import yaml

from gs_assets.config.loader import load_platform_config
from gs_assets.connectors.incremental import Window
from gs_assets.connectors.sql.reader import sync_dataset
from gs_assets.connectors.sql.resource import open_system
from gs_assets.engine.pipeline import apply_pending
from gs_assets.engine.warehouse_setup import sync_object_tables
from resources.warehouse import Warehouse
from tests.conftest import write_config

SYSTEM_OF_KIND = {"postgresql": "postgresql", "mariadb": "mariadb"}


def sql_job(source_object: str, destination: str, identifiers: Sequence[str], mappings: Any, *,
            table: Optional[str] = None, query: Optional[str] = None, primary_key: Sequence[str] = ("id",),
            cursor: Optional[Mapping[str, Any]] = None, connection: str = "db", operation: str = "upsert",
            source: Optional[Mapping[str, Any]] = None, **fields: Any) -> dict:
    """One job reading a dataset (`table` or `query`) into `destination`; `mappings` is {column:
    field} or jobs.yaml's list of mapping dicts."""
    src: dict = {"object": source_object, "primary_key": list(primary_key)}
    if table is not None:
        src["table"] = table
    if query is not None:
        src["query"] = query
    if cursor is not None:
        src["cursor"] = dict(cursor)
    src.update(source or {})
    job = {"connection": connection, "source": src, "destination": destination, "operation": operation,
           "identifiers": list(identifiers)}
    job.update(fields)
    job["mappings"] = [{"source": s, "target": t} for s, t in mappings.items()] if isinstance(mappings, Mapping) \
        else [dict(m) for m in mappings]
    return job


class SqlHarness:
    def __init__(self, tmp_path: Path, monkeypatch, db, jobs: Mapping[str, Mapping[str, Any]], *,
                 connection: str = "db", system: Optional[str] = None,
                 connection_options: Optional[Mapping[str, Any]] = None, objects_yaml: Optional[str] = None):
        self.tmp = tmp_path
        self.connection = connection
        conn = {"type": "sql", "system": system or SYSTEM_OF_KIND[db.kind], **db.params(), "tls": {"mode": "disable"},
                **(connection_options or {})}
        self.jobs_yaml = yaml.safe_dump({"connections": {connection: conn}, "jobs": {k: dict(v) for k, v in jobs.items()}},
                                        sort_keys=False, width=120)
        monkeypatch.setenv(f"GSDP_{connection.upper()}_PASSWORD", db.password)
        self.cfg = load_platform_config(write_config(tmp_path / "config", self.jobs_yaml, objects_yaml))
        self.warehouse = Warehouse(database=str(tmp_path / "wh.duckdb"))
        with self.warehouse.connect() as con:
            sync_object_tables(con, self.cfg.model)

    def system(self, **options):
        return open_system(self.connection, self.cfg.connections[self.connection], options=options or None)

    def sync(self, source_object: str, *, window: Optional[Window] = None, system=None):
        return sync_dataset(self.warehouse, self.cfg, system or self.system(), connection=self.connection,
                            source_object=source_object, window=window)

    def apply(self, destination: str):
        return apply_pending(self.warehouse, self.cfg, destination)

    def run(self, job: str, *, window: Optional[Window] = None):
        """Sync the job's source and apply its destination: (SyncOutcome, this job's JobRunResults, one per load)."""
        j = self.cfg.jobs[job]
        out = self.sync(j.source.object, window=window)
        assert out.error is None, out.error
        return out, [r for r in self.apply(j.destination) if r.job == job]

    def rows(self, sql: str, params: Sequence = ()):
        with self.warehouse.connect() as con:
            return con.execute(sql, list(params)).fetchall()

    def count(self, table: str) -> int:
        return self.rows(f"SELECT count(*) FROM {table}")[0][0]
