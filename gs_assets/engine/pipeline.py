"""Control flow around the engine: land a unit once (ledger), then apply pending loads per job.

Dagster assets call these two functions; so do tests and the CLI. Each unit of work runs in its
own warehouse transaction.
"""

from __future__ import annotations

import json
import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, ContextManager, Optional

from gs_assets.config.jobs import Job
from gs_assets.config.loader import PlatformConfig
from gs_assets.engine import ledger
from gs_assets.engine.apply_load import FAILED, JobRunResult, LoadRef, _now, apply_load, write_run_log
from gs_assets.engine.lookup_retry import Retry, due_condition, due_loads, expired, last_changes, waiting_table_exists
from gs_assets.engine.progress import statement_progress
from gs_assets.engine.raw_landing import FileFormatError, Records, land_into_raw
from resources.warehouse import Warehouse


@dataclass
class LandResult:
    load_id: Optional[str]
    source_file: str
    etag: Optional[str]
    status: str  # landed | already_landed | failed
    rows_read: int = 0
    malformed_rows: int = 0
    header: Optional[list[str]] = None
    error: Optional[str] = None


def jobs_reading(cfg: PlatformConfig, connection: str, source_object: str) -> list[Job]:
    return sorted((j for j in cfg.jobs.values()
                   if j.connection == connection and j.source.object == source_object), key=lambda j: j.name)


def source_columns(cfg: PlatformConfig, connection: str, source_object: str) -> dict[str, list[str]]:
    """The columns a file of this source object must have, each with the jobs that read it: every
    column any job reading the object needs (landing checks the file once for all of them). The
    one definition used by landing, dry runs and the Bulk API's header check."""
    needs: dict[str, list[str]] = {}
    for j in jobs_reading(cfg, connection, source_object):
        for c in j.mapped_source_columns:
            needs.setdefault(c, []).append(j.name)
    return needs


@dataclass(frozen=True)
class Unit:
    """One unit of work a connector delivers (a file version, an API page, a SQL chunk): where it
    came from (named in rejects and the ledger), its version, and the name and date its rows may map."""
    source_file: str
    etag: Optional[str] = None
    size_bytes: Optional[int] = None
    file_name: Optional[str] = None
    file_date: Optional[datetime] = None


def land_records(warehouse: Warehouse, cfg: PlatformConfig, *, connection: str, source_object: str, unit: Unit,
                 records: Callable[[], ContextManager[Records]], run_id: str = "", force: bool = False,
                 log=None, on_landed: Optional[Callable[[Any, str], None]] = None) -> LandResult:
    """Land one unit in its raw table unless this exact version (source + etag) already landed.

    `records` opens what the connector's reader produced: a prepared CSV file or Arrow record
    batches (raw_landing.PreparedCsv / RecordBatches); it is opened outside any transaction, so a
    download or conversion never holds the warehouse. A FileFormatError fails every job reading
    the source; nothing reaches the objects. `on_landed(con, load_id)` records what the kind keeps
    about the unit (an API sync's window and cursor) in the landing's own transaction.
    """
    jobs = jobs_reading(cfg, connection, source_object)
    if not jobs:
        raise ValueError(f"no job reads source object {connection}/{source_object}")
    source_file, etag = unit.source_file, unit.etag
    required = list(source_columns(cfg, connection, source_object))
    with warehouse.connect() as con:
        prior = ledger.latest_load(con, connection, source_object, source_file=source_file, etag=etag)
    if prior and not force:
        return LandResult(load_id=prior.load_id, source_file=source_file, etag=etag, status="already_landed",
                          rows_read=prior.rows_read)
    # Download and convert outside any transaction: the warehouse is only locked to write.
    try:
        with records() as recs, warehouse.transaction() as con, statement_progress(con, f"landing {source_file}", log):
            landed = land_into_raw(con, recs, file_label=source_file, connection=connection,
                                   source_object=source_object, required_columns=required,
                                   jobs=[j.name for j in jobs])
            _record_load(con, load_id=landed.load_id, connection=connection, source_object=source_object,
                         raw_table=landed.raw_table, source_file=source_file, etag=etag, size_bytes=unit.size_bytes,
                         status="landed", rows_read=landed.rows_read, malformed_rows=landed.malformed_rows,
                         header=json.dumps(landed.header), error=None, run_id=run_id, file_name=unit.file_name,
                         file_date=unit.file_date)
            if on_landed is not None:
                on_landed(con, landed.load_id)
        return LandResult(load_id=landed.load_id, source_file=source_file, etag=etag, status="landed",
                          rows_read=landed.rows_read, malformed_rows=landed.malformed_rows,
                          header=landed.header)
    except FileFormatError as e:
        error = str(e)
    # A unit that cannot be read fails every job that reads it; nothing reaches the objects.
    load_id = str(uuid.uuid4())
    with warehouse.transaction() as con:
        _record_load(con, load_id=load_id, connection=connection, source_object=source_object,
                     raw_table=None, source_file=source_file, etag=etag,
                     size_bytes=unit.size_bytes, status="failed", rows_read=0, malformed_rows=0, header=None, error=error,
                     run_id=run_id, file_name=unit.file_name, file_date=unit.file_date)
        for j in jobs:
            res = JobRunResult(job_run_id=str(uuid.uuid4()), job=j.name, destination=j.destination, load_id=load_id,
                               source_file=source_file, status=FAILED, error=error, started_at=_now())
            write_run_log(con, res, j, LoadRef(load_id, "", source_file, etag, []), run_id, final=True)
    return LandResult(load_id=load_id, source_file=source_file, etag=etag, status="failed", error=error)


def _record_load(con, **v) -> None:
    ledger.insert_load(con, landed_at=_now(), **v)


def _load_ref(r: ledger.LoadRecord) -> LoadRef:
    return LoadRef(load_id=r.load_id, raw_table=r.raw_table, source_file=r.source_file, etag=r.etag, header=r.header,
                   file_name=r.file_name, file_date=r.file_date)


def pending_loads(warehouse: Warehouse, job: Job) -> list[LoadRef]:
    with warehouse.connect() as con:
        rows = ledger.pending_loads(con, job.connection, job.source.object, job.name)
    return [_load_ref(r) for r in rows]


def retry_waiting(warehouse: Warehouse, cfg: PlatformConfig, job: Job, *, run_id: str = "",
                  log=None) -> tuple[list[JobRunResult], list[str]]:
    """Apply again the job's rows that wait for a looked-up record which has arrived since they
    were last tried (job option retry_unmatched_lookups): one job run per load, one transaction
    each. Returns the results and the errors (a failed retry leaves its rows waiting)."""
    if job.retry_unmatched_lookups is None:
        return [], []
    now = _now()
    with warehouse.connect() as con:
        if not waiting_table_exists(con):
            return [], []
        due = due_loads(con, cfg.model, job, now)
        if not due:
            where, params = expired(job, now)
            ledger.drop_waiting(con, where, params)  # out of attempts or time: they stay plain rejects
            return [], []
        refs = {r.load_id: _load_ref(r) for r in ledger.loads(con, [d.load_id for d in due])}
    results, errors = [], []
    for d in due:
        load, retry_of, n = refs[d.load_id], d.retry_of, d.rows
        try:
            with warehouse.transaction() as con, \
                    statement_progress(con, f"{job.name} <- {load.source_file} (retry of {n} row(s))", log):
                cond = due_condition(job, last_changes(con, cfg.model, job), now)
                res = apply_load(con, model=cfg.model, job=job, load=load, dagster_run_id=run_id,
                                 retry=Retry(retry_of, *cond))
        except Exception as e:  # noqa: BLE001 - recorded, then reported by the caller
            res, msg = _failed_run(warehouse, job, load, run_id, e, log, doing=f"retrying rows of {load.source_file}",
                                   after="the rows keep waiting and are retried by the next materialization",
                                   retry_of=retry_of)
            results.append(res)
            errors.append(msg)
            continue
        results.append(res)
        if log:
            log.info(f"{job.name} <- {load.source_file}: retried {res.rows_read} row(s) waiting for a lookup "
                     f"(retry of job run {retry_of}): {res.status}: inserted {res.inserted}, updated {res.updated}, "
                     f"unchanged {res.unchanged}, rejected {res.rejected}")
    return results, errors


def _failed_run(warehouse: Warehouse, job: Job, load: LoadRef, run_id: str, e: Exception, log, *, doing: str,
                after: str, retry_of: Optional[str] = None) -> tuple[JobRunResult, str]:
    """Log a job run that failed for a systemic reason (its transaction rolled back) as a Failed,
    not final run-log row; returns it and the message for the caller's error."""
    msg = f"job {job.name!r} {doing}: {type(e).__name__}: {e}"
    if log:
        log.error(msg + "\n" + traceback.format_exc())
    res = JobRunResult(job_run_id=str(uuid.uuid4()), job=job.name, destination=job.destination,
                       load_id=load.load_id, source_file=load.source_file, status=FAILED, retry_of=retry_of,
                       error=f"{type(e).__name__}: {e}; nothing was written, {after}", started_at=_now())
    with warehouse.transaction() as con:
        write_run_log(con, res, job, load, run_id, final=False)
    return res, msg


class LoadError(RuntimeError):
    """A job run failed for a systemic reason; its writes were rolled back and it stays pending."""


def apply_pending(warehouse: Warehouse, cfg: PlatformConfig, destination: str, *, run_id: str = "",
                  log=None, only_jobs: Optional[set[str]] = None) -> list[JobRunResult]:
    """Apply every pending load of every job into `destination` (or of `only_jobs`), in arrival
    order, one transaction each."""
    results: list[JobRunResult] = []
    errors: list[str] = []
    for job in sorted(cfg.jobs_into(destination), key=lambda j: j.name):
        if only_jobs is not None and job.name not in only_jobs:
            continue
        # Rows waiting for a lookup go before the job's new loads (arrival order).
        retried, failed = retry_waiting(warehouse, cfg, job, run_id=run_id, log=log)
        results += retried
        errors += failed
        for load in pending_loads(warehouse, job):
            try:
                with warehouse.transaction() as con, \
                        statement_progress(con, f"{job.name} <- {load.source_file}", log):
                    res = apply_load(con, model=cfg.model, job=job, load=load, dagster_run_id=run_id)
            except Exception as e:  # noqa: BLE001 - recorded, then re-raised below
                res, msg = _failed_run(warehouse, job, load, run_id, e, log, doing=f"on {load.source_file}",
                                       after="the load stays pending and is applied by the next materialization")
                results.append(res)
                errors.append(msg)
                break  # later loads of this job wait, so loads apply in arrival order
            results.append(res)
            if log:
                log.info(f"{job.name} <- {load.source_file}: {res.status}: read {res.rows_read}, inserted "
                         f"{res.inserted}, updated {res.updated}, unchanged {res.unchanged}, rejected "
                         f"{res.rejected}, superseded {res.superseded}"
                         + (f", deleted {res.deleted} ({res.deletes_applied} applied)" if res.deleted else ""))
    if errors:
        raise LoadError("; ".join(errors))
    return results
