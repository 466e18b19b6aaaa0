"""Source assets of the REST API kind: `source/<connection>/<object>`, one per stream a job reads.

Partitioned by time windows (monthly by default, from the connection's `sync_start`): the latest
partition is "sync now" (incremental from the stream's cursor, or in full the first time); an
earlier partition, or a range of them in a backfill, re-syncs that window without moving the
cursor (the upsert absorbs what is read again).
"""


import warnings
from dataclasses import dataclass
from typing import Any, Optional

import dagster as dg

from gs_assets.config.loader import PlatformConfig
from gs_assets.connectors.incremental import (current_key, partitions_def, sync_schedules,  # noqa: F401  (re-exported)
                                              synced_source_asset, window_of)
from gs_assets.connectors.rest_api.auth import ConnectionAuthError
from gs_assets.connectors.rest_api.config import RestApiConnection
from gs_assets.connectors.rest_api.reader import SyncFailed, bound_stream, outcome_metadata, sync_stream
from gs_assets.connectors.rest_api.resource import ConnectionSetupError, RestApiResource
from gs_assets.engine.pipeline import jobs_reading
from resources.warehouse import Warehouse


@dataclass(frozen=True)
class Stream:
    connection: str
    name: str  # the source object

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey(["source", self.connection, self.name])


def streams(cfg: PlatformConfig) -> list[Stream]:
    seen = {(j.connection, j.source.object) for j in cfg.jobs.values()
            if cfg.connections[j.connection].type == "rest_api"}
    return [Stream(c, o) for c, o in sorted(seen)]


def sync_partition(context, cfg: PlatformConfig, warehouse: Warehouse, rest_api: RestApiResource, connection: str,
                   source_object: str, first: str, last: Optional[str] = None) -> dict[str, Any]:
    """Sync a stream for a partition (or a range): the materialization's metadata, with "error"
    when the sync failed (what committed before the failure stays and is listed)."""
    conn: RestApiConnection = cfg.connections[connection]
    log = context.log
    window = window_of(conn, first, last or first)
    try:
        with rest_api.client(connection, conn) as client:
            out = sync_stream(warehouse, cfg, client, connection=connection, source_object=source_object,
                              window=window, run_id=context.run.run_id, log=log)
            usage = client.usage
    except (ConnectionSetupError, ConnectionAuthError, SyncFailed) as e:
        return {"error": str(e), "dagster/row_count": 0}
    meta = outcome_metadata(out, usage)
    if out.added_fields or out.removed_fields:
        log.warning(f"{connection}/{source_object}: schema drift since the last sync: {meta['schema_drift']} "
                    f"(new fields are read only when a job maps them or the source lists them in `fields`)")
    if out.stopped:
        log.warning(f"{connection}/{source_object}: stopped early: {out.stopped.rstrip('.')}. {meta['loads']} load(s) committed "
                    f"up to cursor {meta['cursor_to'] or '(none)'}; the next sync resumes there.")
    if out.error:
        meta["error"] = out.error + (f" ({meta['loads']} load(s) committed before it stay; the next sync resumes "
                                     f"from cursor {meta['cursor_to']})" if meta["loads"] else "")
    return meta


def build_stream_asset(cfg: PlatformConfig, stream: Stream) -> dg.AssetsDefinition:
    conn: RestApiConnection = cfg.connections[stream.connection]
    jobs = jobs_reading(cfg, stream.connection, stream.name)
    src = jobs[0].source
    bound = bound_stream(conn, src)
    inc = bound.spec.incremental
    desc = (f"{conn.spec.label or conn.system} stream `{bound.name}` ({bound.object}) of connection "
            f"`{stream.connection}`, landed as it came (one raw table per committed load). "
            + (f"Incremental on `{inc.cursor_field}` (lookback {inc.lookback_seconds} s, visibility lag "
               f"{inc.visibility_lag_seconds} s); " if inc and not src.full_refresh else "Read in full every sync; ")
            + f"the latest partition syncs now, an earlier one re-syncs its {conn.resync_window} window. "
            f"Read by job(s): {', '.join(j.name for j in jobs)}.")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return synced_source_asset(
            cfg, conn, key=stream.key, group=stream.connection, kinds={conn.system, "api"}, description=desc,
            metadata={"system": conn.system, "stream": bound.name, "object": bound.object,
                      "environment": conn.environment_name or "", "jobs": ", ".join(j.name for j in jobs)},
            resource_key="rest_api",
            sync=lambda context, warehouse, rest_api, first, last: sync_partition(
                context, cfg, warehouse, rest_api, stream.connection, stream.name, first, last))


def build_sync_schedules(cfg: PlatformConfig) -> list[dg.ScheduleDefinition]:
    """A job with `schedule` syncs its stream (latest partition) and applies it at each tick."""
    return sync_schedules(cfg, "rest_api")
