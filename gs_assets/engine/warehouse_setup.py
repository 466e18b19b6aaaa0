"""Create and migrate warehouse tables from the data model once per process."""

from __future__ import annotations

from gs_assets.model.objects import DataModel
from resources.warehouse import Warehouse, sync_object_tables

_done: set[tuple[str, int]] = set()


def ensure_tables(warehouse: Warehouse, model: DataModel) -> list[str]:
    key = (warehouse.database, hash(model.model_dump_json()))
    if key in _done:
        return []
    with warehouse.transaction() as con:
        changes = sync_object_tables(con, model)
    _done.add(key)
    return changes
