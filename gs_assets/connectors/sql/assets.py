"""Source assets of the SQL kind: `source/<connection>/<object>`, one per dataset a job reads.

Partitioned by time windows like the REST API kind's streams (connectors/incremental.py): the
latest partition is "sync now" (incremental from the cursor, or in full the first time and for a
source without a cursor); an earlier partition, or a backfill range, re-syncs that window of a
timestamp cursor without moving it.
"""


import warnings
from dataclasses import dataclass
from typing import Any, Optional

import dagster as dg

from gs_assets.config.loader import PlatformConfig
from gs_assets.connectors.incremental import outcome_metadata, sync_schedules, synced_source_asset, window_of
from gs_assets.connectors.sql.config import SqlConnection
from gs_assets.connectors.sql.reader import source_of, sync_dataset
from gs_assets.connectors.sql.resource import ConnectionSetupError, SqlResource
from gs_assets.engine.pipeline import jobs_reading
from resources.warehouse import Warehouse


@dataclass(frozen=True)
class Dataset:
    connection: str
    name: str  # the source object

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey(["source", self.connection, self.name])


def datasets(cfg: PlatformConfig) -> list[Dataset]:
    seen = {(j.connection, j.source.object) for j in cfg.jobs.values() if cfg.connections[j.connection].type == "sql"}
    return [Dataset(c, o) for c, o in sorted(seen)]


def sync_partition(context, cfg: PlatformConfig, warehouse: Warehouse, sql: SqlResource, connection: str,
                   source_object: str, first: str, last: Optional[str] = None) -> dict[str, Any]:
    """Sync a dataset for a partition (or a range): the materialization's metadata, with "error"
    when the sync failed (what committed before the failure stays and is listed)."""
    conn: SqlConnection = cfg.connections[connection]
    window = window_of(conn, first, last or first)
    try:
        system = sql.system(connection, conn)
    except ConnectionSetupError as e:
        return {"error": str(e), "dagster/row_count": 0}
    out = sync_dataset(warehouse, cfg, system, connection=connection, source_object=source_object, window=window,
                       run_id=context.run.run_id, log=context.log)
    meta = outcome_metadata(out)
    meta.pop("pages", None)
    meta["fetches"] = out.pages
    meta["snapshot"] = system.snapshot
    if out.added_fields or out.removed_fields:
        context.log.warning(f"{connection}/{source_object}: the dataset's columns changed since the last sync: "
                            f"{meta['schema_drift']} (a new column is read only when a job maps it or the source "
                            "lists it in `columns`)")
    if out.error:
        meta["error"] = out.error + (f" ({meta['loads']} load(s) committed before it stay; the next sync resumes "
                                     f"from cursor {meta['cursor_to']})" if meta["loads"] else "")
    return meta


def build_dataset_asset(cfg: PlatformConfig, ds: Dataset) -> dg.AssetsDefinition:
    conn: SqlConnection = cfg.connections[ds.connection]
    jobs = jobs_reading(cfg, ds.connection, ds.name)
    src = source_of(cfg, ds.connection, ds.name)
    cur = src.cursor
    desc = (f"{conn.label} {src.summary} of connection `{ds.connection}`, landed as read (one raw table per "
            "committed load), in one read-only snapshot per sync. "
            + ("Read in full every sync; " if cur is None or src.full_refresh else
               f"Incremental on `{cur.column}` ({cur.type}"
               + (f", lookback {cur.lookback_seconds} s, visibility lag {cur.visibility_lag_seconds} s); "
                  if cur.type == "timestamp" else f", lookback {cur.lookback_values}); "))
            + f"the latest partition syncs now, an earlier one re-syncs its {conn.resync_window} window. "
            f"Read by job(s): {', '.join(j.name for j in jobs)}.")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return synced_source_asset(
            cfg, conn, key=ds.key, group=ds.connection, kinds={conn.system, "sql"}, description=desc,
            metadata={"system": conn.system, "dataset": src.table or "query", "primary_key": ", ".join(src.primary_key),
                      "cursor": cur.column if cur else "", "jobs": ", ".join(j.name for j in jobs)},
            resource_key="sql",
            sync=lambda context, warehouse, sql, first, last: sync_partition(
                context, cfg, warehouse, sql, ds.connection, ds.name, first, last))


def build_sync_schedules(cfg: PlatformConfig) -> list[dg.ScheduleDefinition]:
    return sync_schedules(cfg, "sql")
