"""Create and migrate warehouse tables: the ledger's (engine/ledger.py) and the objects' from the
data model (a field added in config adds its column and keeps the data), once per process."""

from __future__ import annotations

import duckdb

from gs_assets.engine import ledger
from gs_assets.model.field_types import DUCKDB_TYPES
from gs_assets.model.objects import DataModel, ObjectDef
from resources.warehouse import Warehouse

_done: set[tuple[str, int]] = set()


def create_object_table_sql(obj: ObjectDef) -> str:
    cols = ",\n  ".join(
        f'"{f.name}" {DUCKDB_TYPES[f.type]}' + (" NOT NULL" if f.name == "gsid" else "")
        for f in obj.fields.values()
    )
    return f"CREATE TABLE IF NOT EXISTS {obj.table} (\n  {cols}\n)"


def sync_object_tables(con: duckdb.DuckDBPyConnection, model: DataModel) -> list[str]:
    """Create missing tables and add missing columns. Returns what changed. Never drops data."""
    changes: list[str] = []
    con.execute("CREATE SCHEMA IF NOT EXISTS gs")
    ledger.create_tables(con)
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


def ensure_tables(warehouse: Warehouse, model: DataModel) -> list[str]:
    key = (warehouse.database, hash(model.model_dump_json()))
    if key in _done:
        return []
    with warehouse.transaction() as con:
        changes = sync_object_tables(con, model)
    _done.add(key)
    return changes
