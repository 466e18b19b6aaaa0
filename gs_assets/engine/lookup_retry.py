"""Rows waiting for a looked-up record (job option `retry_unmatched_lookups`).

A row rejected only because a lookup to another object (on_none: error) found nothing is kept in
`gs_ops.lookup_waiting` (job, load, line, the run that rejected it, attempts, when it was first
rejected and last tried, the objects it looked up), written in the transaction of that run. A row
is *due* when one of those objects has a record created or modified after the row was last tried,
it has attempts left and it was first rejected within the job's `within_hours`. The destination's
next materialization applies the due lines of each load again through `apply_load` (a job run of
its own, `retry_of` the run that first rejected them) before the job's pending loads, so loads
still apply in arrival order. `lookup_retry_sensor` requests that materialization.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

import duckdb

from gs_assets.config.jobs import Job
from gs_assets.engine import ledger
from gs_assets.model.objects import DataModel


@dataclass
class Retry:
    """What `apply_load` retries: the lines of one load that `where` selects from
    gs_ops.lookup_waiting, for the run `retry_of` (the one that first rejected them)."""

    retry_of: str
    where: str
    params: list


def waiting_table_exists(con: duckdb.DuckDBPyConnection) -> bool:
    return ledger.has_table(con, "lookup_waiting")


def last_changes(con: duckdb.DuckDBPyConnection, model: DataModel, job: Job) -> dict[str, datetime]:
    """When each object the job's retried lookups read last got a new or changed record."""
    out = {}
    for name in sorted({lk.object for lk in job.retried_lookups}):
        # created_at <= modified_at: an insert sets both
        ts = con.execute(f"SELECT max(modified_at) FROM {model.objects[name].table}").fetchone()[0]
        if ts is not None:
            out[name] = ts
    return out


def due_condition(job: Job, changes: dict[str, datetime], now: datetime) -> Optional[tuple[str, list]]:
    """SQL over gs_ops.lookup_waiting (and its parameters) selecting the job's due rows; None when
    no looked-up object has any record."""
    opt = job.retry_unmatched_lookups
    if opt is None or not changes:
        return None
    changed = " OR ".join("(list_contains(objects, ?) AND last_tried_at < ?)" for _ in changes)
    params: list = [job.name, opt.attempts, now - timedelta(hours=opt.within_hours)]
    for name, ts in changes.items():
        params += [name, ts]
    return f"job = ? AND attempts < ? AND first_rejected_at >= ? AND ({changed})", params


def due_loads(con: duckdb.DuckDBPyConnection, model: DataModel, job: Job, now: datetime) -> list[ledger.DueLoad]:
    """Per load with due rows (load id, the run that first rejected them, how many, when they were
    last tried), in arrival order."""
    if job.retry_unmatched_lookups is None or not waiting_table_exists(con):
        return []
    cond = due_condition(job, last_changes(con, model, job), now)
    if cond is None:
        return []
    where, params = cond
    return ledger.due_loads(con, where, params)


def expired(job: Job, now: datetime) -> tuple[str, list]:
    """Waiting rows of the job that will not be retried any more (they stay plain rejects)."""
    opt = job.retry_unmatched_lookups
    return ("job = ? AND (attempts >= ? OR first_rejected_at < ?)",
            [job.name, opt.attempts, now - timedelta(hours=opt.within_hours)])
