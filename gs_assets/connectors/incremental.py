"""What every incrementally synced source shares (REST API streams, SQL datasets): the cursor state
a committed load carries, and the re-sync windows a user picks as time partitions in the UI.

The cursor rule (../shared/DESIGN.md): read with a closed lower bound `>= last_cursor - lookback`
and an upper bound `< now - visibility_lag`, ordered by (cursor, key); store the cursor exactly as
the source gave it *and* the keys seen at it; advance it only when the load holding those rows has
committed (the kind writes it in the landing's transaction, gs_ops.syncs).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Protocol

import dagster as dg

from gs_assets.dagster_jobs import job_asset_job_name
from gs_assets.engine.pipeline import LandResult
from gs_assets.engine.warehouse_setup import ensure_tables


@dataclass(frozen=True)
class CursorState:
    """The cursor value exactly as the source gave it and the primary keys seen at that value; `token`:
    a server-side cursor to resume from instead (Zendesk's after_cursor), when the source gives one."""
    cursor: str
    pks: tuple[str, ...] = ()
    token: Optional[str] = None

    def to_dict(self) -> dict:
        return {"cursor": self.cursor, "pks": list(self.pks), **({"token": self.token} if self.token else {})}

    @classmethod
    def from_dict(cls, d: Optional[dict]) -> Optional["CursorState"]:
        return cls(d["cursor"], tuple(d.get("pks") or ()), d.get("token")) if d else None


@dataclass(frozen=True)
class Window:
    """A re-sync window [start, end) of the cursor (UTC)."""
    start: datetime
    end: datetime


class Resyncable(Protocol):
    """A connection whose sources re-sync by time windows (its config has these two keys)."""
    sync_start: object  # a date
    resync_window: str  # monthly | weekly | daily


def partitions_def(conn: Resyncable) -> dg.TimeWindowPartitionsDefinition:
    """The source assets' partitions: windows from `sync_start`; the last one (end_offset=1, the
    window holding now) is "sync now", incremental from the cursor."""
    start = conn.sync_start
    if conn.resync_window == "daily":
        return dg.DailyPartitionsDefinition(start_date=start.strftime("%Y-%m-%d"), end_offset=1)
    if conn.resync_window == "weekly":
        return dg.WeeklyPartitionsDefinition(start_date=start.strftime("%Y-%m-%d"), end_offset=1)
    return dg.MonthlyPartitionsDefinition(start_date=start.replace(day=1).strftime("%Y-%m-%d"), end_offset=1)


def current_key(conn: Resyncable) -> str:
    """The latest partition: a run of it syncs incrementally ("sync now")."""
    return partitions_def(conn).get_last_partition_key()


def window_of(conn: Resyncable, first: str, last: str) -> Optional[Window]:
    """The window a run of partitions first..last re-syncs; None for the latest partition alone."""
    pdef = partitions_def(conn)
    if first == last == current_key(conn):
        return None
    start = pdef.time_window_for_partition_key(first).start
    end = pdef.time_window_for_partition_key(last).end
    return Window(start.astimezone(timezone.utc), end.astimezone(timezone.utc))


def synced_source_asset(cfg, conn: Resyncable, *, key: dg.AssetKey, group: str, kinds: set[str], description: str,
                        metadata: dict[str, Any], resource_key: str,
                        sync: Callable[..., dict[str, Any]]) -> dg.AssetsDefinition:
    """The source asset of an incrementally synced stream or dataset, time-partitioned by the
    connection's re-sync windows. `sync(context, warehouse, resource, first, last)` syncs the run's
    partition range and gives the materialization's metadata, with "error" when it failed (the run
    fails with that paragraph; what committed stays)."""

    @dg.asset(key=key, partitions_def=partitions_def(conn),
              backfill_policy=dg.BackfillPolicy.single_run(),  # a backfill re-syncs its whole range as one window
              group_name=group, kinds=kinds, pool="warehouse", description=description, metadata=metadata,
              required_resource_keys={"warehouse", resource_key})
    def _sync(context) -> dg.MaterializeResult:
        warehouse = context.resources.warehouse
        ensure_tables(warehouse, cfg.model)
        r = context.partition_key_range
        meta = sync(context, warehouse, getattr(context.resources, resource_key), r.start, r.end)
        if "error" in meta:
            raise dg.Failure(description=meta.pop("error"), metadata=meta)
        return dg.MaterializeResult(metadata=meta)

    return _sync


def discover_latest(cfg, job, resources) -> list[str]:
    """A Kind's `discover` for a synced source: its one unit is the latest partition ("sync now")."""
    return [current_key(cfg.connections[job.connection])]


def cursor_moves_with_the_landing(warehouse, cfg, resources, destination, log) -> None:
    """A Kind's `after_commit` for a synced source: nothing to finish, its cursor is the ledger's
    (gs_ops.syncs), moved in each landing's transaction."""


def _latest_partition(conn: Resyncable):
    def _tick(context: dg.ScheduleEvaluationContext):
        return dg.RunRequest(partition_key=current_key(conn))
    return _tick


def sync_schedules(cfg, kind_type: str) -> list[dg.ScheduleDefinition]:
    """A job with `schedule` on a connection of this kind syncs its source (the latest partition:
    incremental) and applies it at each tick; a job in a chain runs by its chain instead."""
    out = []
    for job in sorted(cfg.jobs.values(), key=lambda j: j.name):
        if cfg.connections[job.connection].type != kind_type or not job.schedule or cfg.chain_of(job.name):
            continue
        out.append(dg.ScheduleDefinition(
            name=f"{job.name}_schedule", cron_schedule=job.schedule.cron_expression(),
            execution_timezone=job.schedule_timezone, job_name=job_asset_job_name(job.name),
            execution_fn=_latest_partition(cfg.connections[job.connection]),
            description=f"{job.schedule.describe()} ({job.schedule_timezone}): syncs {job.source.summary} of "
                        f"{job.connection} and applies it via job {job.name}"))
    return out


def secret_env_name(connection: str, secret: str) -> str:
    """The env var a connection's secret is read from unless its config names another:
    GSDP_<CONNECTION>_<SECRET>, upper case."""
    return "GSDP_" + re.sub(r"[^A-Za-z0-9]", "_", connection).upper() + "_" + secret.upper()


@dataclass
class SyncOutcome:
    """What one sync of a stream or dataset did: its mode and window, what it read and landed, where
    the cursor went, schema drift, and why it stopped early or failed."""
    mode: str = "full"
    window_from: Optional[str] = None
    window_to: Optional[str] = None
    pages: int = 0
    records: int = 0
    deleted: int = 0
    loads: list[LandResult] = field(default_factory=list)
    cursor_from: Optional[str] = None
    cursor_to: Optional[str] = None
    fields: list[str] = field(default_factory=list)
    added_fields: list[str] = field(default_factory=list)
    removed_fields: list[str] = field(default_factory=list)
    stopped: Optional[str] = None  # why the sync stopped before the end (budget), resumed next run
    error: Optional[str] = None


def outcome_metadata(out: SyncOutcome, usage: Any = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "sync_mode": out.mode, "window_from": out.window_from or "", "window_to": out.window_to or "",
        "pages": out.pages, "dagster/row_count": out.records, "deleted_reported": out.deleted,
        "loads": len([r for r in out.loads if r.status == "landed"]),
        "load_ids": ", ".join(r.load_id or "" for r in out.loads),
        "cursor_from": out.cursor_from or "", "cursor_to": out.cursor_to or out.cursor_from or "",
        "fields_requested": len(out.fields),
    }
    if out.added_fields or out.removed_fields:
        meta["schema_drift"] = (f"added: {', '.join(out.added_fields) or '-'}; "
                                f"removed: {', '.join(out.removed_fields) or '-'}")
    if out.stopped:
        meta["stopped"] = out.stopped
    if usage is not None:
        meta["api_usage"] = str(usage)
    return meta
