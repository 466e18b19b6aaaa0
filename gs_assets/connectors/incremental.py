"""What every incrementally synced source shares (REST API streams, SQL datasets): the cursor state
a committed load carries, and the re-sync windows a user picks as time partitions in the UI.

The cursor rule (../shared/DESIGN.md): read with a closed lower bound `>= last_cursor - lookback`
and an upper bound `< now - visibility_lag`, ordered by (cursor, key); store the cursor exactly as
the source gave it *and* the keys seen at it; advance it only when the load holding those rows has
committed (the kind writes it in the landing's transaction, gs_ops.syncs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional, Protocol

import dagster as dg


@dataclass(frozen=True)
class CursorState:
    """The cursor value exactly as the source gave it and the primary keys seen at that value."""
    cursor: str
    pks: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"cursor": self.cursor, "pks": list(self.pks)}

    @classmethod
    def from_dict(cls, d: Optional[dict]) -> Optional["CursorState"]:
        return cls(d["cursor"], tuple(d.get("pks") or ())) if d else None


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


def secret_env_name(connection: str, secret: str) -> str:
    """The env var a connection's secret is read from unless its config names another:
    GSDP_<CONNECTION>_<SECRET>, upper case."""
    return "GSDP_" + re.sub(r"[^A-Za-z0-9]", "_", connection).upper() + "_" + secret.upper()
