"""The ledger: the `gs_ops` tables (loads, job runs, rejects, superseded and defaulted rows, rows
waiting for a lookup), their DDL, and every statement that writes or reads them.

No other module names these tables in SQL (tests/gs_assets/engine/test_ledger_guard.py checks it).
Reads return named records (LoadRecord, JobRunRecord, RejectRecord, ...), never positional tuples.
The set-based writes of a job run (rejects, superseded and defaulted rows, lookup waits) take the
run's connection and the run's temp table or select to read from; the statements live here.
JSON columns come back parsed (header, error_files: lists; original_values, reasons: as stored).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NamedTuple, Optional, Sequence

import duckdb

from gs_assets.engine.sql_convert import q

SCHEMA = "gs_ops"
LOADS, JOB_RUNS, REJECTS = f"{SCHEMA}.loads", f"{SCHEMA}.job_runs", f"{SCHEMA}.rejects"
SUPERSEDED, DEFAULTED, LOOKUP_WAITING = f"{SCHEMA}.superseded", f"{SCHEMA}.defaulted", f"{SCHEMA}.lookup_waiting"
LOAD_SEQ = f"{SCHEMA}.load_seq"
SYNCS = f"{SCHEMA}.syncs"

DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {LOADS} (
        load_id VARCHAR PRIMARY KEY,
        connection VARCHAR, source_object VARCHAR, raw_table VARCHAR,
        source_file VARCHAR, etag VARCHAR, size_bytes BIGINT,
        status VARCHAR,             -- landed | failed | identical
        rows_read BIGINT, malformed_rows BIGINT, header JSON, error VARCHAR,
        dagster_run_id VARCHAR, landed_at TIMESTAMP, seq BIGINT)""",
    f"CREATE SEQUENCE IF NOT EXISTS {LOAD_SEQ}",
    f"""CREATE TABLE IF NOT EXISTS {JOB_RUNS} (
        job_run_id VARCHAR PRIMARY KEY,
        job VARCHAR, connection VARCHAR, destination VARCHAR, load_id VARCHAR,
        source_file VARCHAR, etag VARCHAR, dagster_run_id VARCHAR, operation VARCHAR,
        started_at TIMESTAMP, ended_at TIMESTAMP, status VARCHAR,
        rows_read BIGINT, inserted BIGINT, updated BIGINT, unchanged BIGINT,
        rejected BIGINT, filtered BIGINT, superseded BIGINT, error VARCHAR,
        final BOOLEAN)""",
    f"""CREATE TABLE IF NOT EXISTS {REJECTS} (
        job_run_id VARCHAR, job VARCHAR, dagster_run_id VARCHAR, source_file VARCHAR,
        line_number BIGINT, original_values JSON, reasons JSON, rejected_at TIMESTAMP)""",
    # Columns added after the first release: existing warehouses gain them in place.
    f"ALTER TABLE {LOADS} ADD COLUMN IF NOT EXISTS file_name VARCHAR",
    f"ALTER TABLE {LOADS} ADD COLUMN IF NOT EXISTS file_date TIMESTAMP",
    f"ALTER TABLE {LOADS} ADD COLUMN IF NOT EXISTS archived_to VARCHAR",
    f"ALTER TABLE {LOADS} ADD COLUMN IF NOT EXISTS error_files JSON",
    f"ALTER TABLE {JOB_RUNS} ADD COLUMN IF NOT EXISTS aggregated BIGINT DEFAULT 0",
    # status 'identical': a re-upload of a file version already loaded, archived without being applied
    # again; `note` says which load it repeats and how to re-apply it.
    f"ALTER TABLE {LOADS} ADD COLUMN IF NOT EXISTS note VARCHAR",
    f"""CREATE TABLE IF NOT EXISTS {SUPERSEDED} (
        job_run_id VARCHAR, job VARCHAR, line_number BIGINT, superseded_by_line BIGINT)""",
    # Values a mapping's `default` replaced (reason: missing = the source value was empty,
    # invalid = it did not convert); rows written by the run only.
    f"ALTER TABLE {JOB_RUNS} ADD COLUMN IF NOT EXISTS defaulted BIGINT DEFAULT 0",
    f"""CREATE TABLE IF NOT EXISTS {DEFAULTED} (
        job_run_id VARCHAR, job VARCHAR, source_file VARCHAR, line_number BIGINT, field VARCHAR,
        source VARCHAR, original_value VARCHAR, reason VARCHAR, default_value VARCHAR)""",
    # Lookup retries (job option retry_unmatched_lookups): rows rejected only because a direct
    # lookup found nothing wait here until a looked-up object gets new records; a retry is a job
    # run of its own (retry_of: the run that first rejected them), and the reject it retried
    # points at it (retried_in).
    f"ALTER TABLE {JOB_RUNS} ADD COLUMN IF NOT EXISTS retry_of VARCHAR",
    f"ALTER TABLE {REJECTS} ADD COLUMN IF NOT EXISTS retried_in VARCHAR",
    # a rejected row's id in its source, for records landed with one (an API page, a SQL chunk)
    f"ALTER TABLE {REJECTS} ADD COLUMN IF NOT EXISTS source_id VARCHAR",
    f"""CREATE TABLE IF NOT EXISTS {LOOKUP_WAITING} (
        job VARCHAR, load_id VARCHAR, line_number BIGINT, job_run_id VARCHAR, last_job_run_id VARCHAR,
        attempts INTEGER, first_rejected_at TIMESTAMP, last_tried_at TIMESTAMP, objects VARCHAR[])""",
    # Rows a source reported deleted (a bucket of conservation), and how many of them removed or
    # marked a stored record by the job's delete policy (the rest matched nothing or were ignored).
    f"ALTER TABLE {JOB_RUNS} ADD COLUMN IF NOT EXISTS deleted BIGINT DEFAULT 0",
    f"ALTER TABLE {JOB_RUNS} ADD COLUMN IF NOT EXISTS deletes_applied BIGINT DEFAULT 0",
    # API and SQL syncs: one row per load a sync committed (a sync commits a load every N records),
    # with the window it read, its pages and records, and the cursor the stream advances to once the
    # load has committed (the stream's cursor is read back from here, never stored apart).
    f"""CREATE TABLE IF NOT EXISTS {SYNCS} (
        load_id VARCHAR PRIMARY KEY, connection VARCHAR, source_object VARCHAR, sync_id VARCHAR,
        mode VARCHAR,               -- full | incremental | window
        window_from VARCHAR, window_to VARCHAR, pages INTEGER, records BIGINT, deleted BIGINT,
        cursor_to JSON, fields JSON, stopped VARCHAR, synced_at TIMESTAMP)""",
]


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ledger's tables, or add the columns a warehouse of an earlier release lacks."""
    for stmt in DDL:
        con.execute(stmt)


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """The ledger table `table` (short name: 'job_runs', 'lookup_waiting', ...) exists in this warehouse."""
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
                            "AND table_name = ?", [SCHEMA, table]).fetchone()[0])


# --- records ---------------------------------------------------------------------------------------

class LoadRecord(NamedTuple):
    """A row of gs_ops.loads: one unit landed (or failed to land, or an identical re-upload)."""
    load_id: str
    connection: Optional[str]
    source_object: Optional[str]
    raw_table: Optional[str]
    source_file: Optional[str]
    etag: Optional[str]
    size_bytes: Optional[int]
    status: Optional[str]  # landed | failed | identical
    rows_read: Optional[int]
    malformed_rows: Optional[int]
    header: Optional[list]
    error: Optional[str]
    dagster_run_id: Optional[str]
    landed_at: Optional[datetime]
    seq: Optional[int]
    file_name: Optional[str]
    file_date: Optional[datetime]
    archived_to: Optional[str]
    error_files: Optional[list]
    note: Optional[str]


class JobRunRecord(NamedTuple):
    """A row of gs_ops.job_runs: one job applied to one load (the run log)."""
    job_run_id: str
    job: Optional[str]
    connection: Optional[str]
    destination: Optional[str]
    load_id: Optional[str]
    source_file: Optional[str]
    etag: Optional[str]
    dagster_run_id: Optional[str]
    operation: Optional[str]
    started_at: Optional[datetime]
    ended_at: Optional[datetime]
    status: Optional[str]
    rows_read: Optional[int]
    inserted: Optional[int]
    updated: Optional[int]
    unchanged: Optional[int]
    rejected: Optional[int]
    filtered: Optional[int]
    superseded: Optional[int]
    error: Optional[str]
    final: Optional[bool]
    aggregated: Optional[int] = 0
    defaulted: Optional[int] = 0
    retry_of: Optional[str] = None
    deleted: Optional[int] = 0
    deletes_applied: Optional[int] = 0


class RejectRecord(NamedTuple):
    """A row of gs_ops.rejects: a rejected row with its location, original values and reasons."""
    job_run_id: str
    job: Optional[str]
    dagster_run_id: Optional[str]
    source_file: Optional[str]
    line_number: Optional[int]
    original_values: Any
    reasons: Any
    rejected_at: Optional[datetime]
    retried_in: Optional[str]
    source_id: Optional[str]


class RunAndLoad(NamedTuple):
    """A job run with the load it applied (None: no such load)."""
    run: JobRunRecord
    load: Optional[LoadRecord]


class DueLoad(NamedTuple):
    """A load with rows waiting for a lookup that are due for a retry."""
    load_id: str
    retry_of: str  # the first job run that rejected them
    rows: int
    last_tried_at: Optional[datetime]


class LeftInPlace(NamedTuple):
    """The latest load of a file version that was finished and left where it was."""
    connection: str
    source_object: str
    source_file: str
    etag: Optional[str]
    load_id: str
    landed_at: datetime


class UnconservedRun(NamedTuple):
    """A final job run whose counts do not add up to the rows it read."""
    job_run_id: str
    job: str
    rows_read: int
    accounted: int


class RejectReasons(NamedTuple):
    """Rejects of one job grouped by field and rule, with the first example (by line)."""
    job: str
    field: Optional[str]
    rule: str
    rows: int
    first: str  # file:line
    message: Optional[str]
    value: Optional[str]


_JSON = {"header", "error_files", "original_values", "reasons"}


def _cols(record, alias: str = "") -> str:
    return ", ".join(f"{alias}{c}" for c in record._fields)


def _make(record, row: Sequence) -> Any:
    return record(*(json.loads(v) if f in _JSON and isinstance(v, str) else v for f, v in zip(record._fields, row)))


def _select(con, record, table: str, where: str = "true", params: Sequence = (), tail: str = "") -> list:
    rows = con.execute(f"SELECT {_cols(record)} FROM {table} WHERE {where} {tail}", list(params)).fetchall()
    return [_make(record, r) for r in rows]


def _placeholders(values: Sequence) -> str:
    return ", ".join("?" for _ in values)


# --- loads -----------------------------------------------------------------------------------------

def insert_load(con, *, load_id: str, connection: str, source_object: str, raw_table: Optional[str],
                source_file: str, etag: Optional[str], size_bytes: Optional[int], status: str, rows_read: int,
                malformed_rows: int, header: Optional[str], error: Optional[str], run_id: str,
                landed_at: datetime, file_name: Optional[str], file_date: Optional[datetime],
                note: Optional[str] = None) -> None:
    """Record a unit in the file ledger (`header`: its JSON text); it takes the next arrival number."""
    con.execute(
        f"INSERT INTO {LOADS} (load_id, connection, source_object, raw_table, source_file, etag, size_bytes, "
        "status, rows_read, malformed_rows, header, error, dagster_run_id, landed_at, seq, file_name, file_date) "
        f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, nextval('{LOAD_SEQ}'), ?, ?)",
        [load_id, connection, source_object, raw_table, source_file, etag, size_bytes, status, rows_read,
         malformed_rows, header, error, run_id, landed_at, file_name, file_date])
    if note is not None:
        con.execute(f"UPDATE {LOADS} SET note = ? WHERE load_id = ?", [note, load_id])


def load(con, load_id: str) -> Optional[LoadRecord]:
    found = _select(con, LoadRecord, LOADS, "load_id = ?", [load_id])
    return found[0] if found else None


def loads(con, load_ids: Sequence[str]) -> list[LoadRecord]:
    if not load_ids:
        return []
    return _select(con, LoadRecord, LOADS, f"load_id IN ({_placeholders(load_ids)})", load_ids)


def latest_load(con, connection: str, source_object: str, *, source_file: Optional[str] = None,
                etag: Optional[str] = None, any_etag: bool = False, statuses: Sequence[str] = ("landed",),
                unfinished_first: bool = False) -> Optional[LoadRecord]:
    """The latest load of a source object (of `source_file`, when given; of version `etag`, or of
    any version with `any_etag` when `etag` is None) whose status is one of `statuses` (empty: any);
    with `unfinished_first`, one not archived yet comes before a later archived one."""
    where, params = ["connection = ?", "source_object = ?"], [connection, source_object]
    if source_file is not None:
        where.append("source_file = ?")
        params.append(source_file)
        if any_etag:
            where.append("(? IS NULL OR etag = ?)")
            params += [etag, etag]
        else:
            where.append("etag IS NOT DISTINCT FROM ?")
            params.append(etag)
    if statuses:
        where.append(f"status IN ({_placeholders(statuses)})")
        params += list(statuses)
    order = "ORDER BY archived_to IS NULL DESC, seq DESC" if unfinished_first else "ORDER BY seq DESC"
    found = _select(con, LoadRecord, LOADS, " AND ".join(where), params, order + " LIMIT 1")
    return found[0] if found else None


def pending_loads(con, connection: str, source_object: str, job: str) -> list[LoadRecord]:
    """Landed loads of a source object the job has no final run for, in arrival order."""
    rows = con.execute(
        f"SELECT {_cols(LoadRecord, 'l.')} FROM {LOADS} l WHERE l.connection = ? AND l.source_object = ? "
        f"AND l.status = 'landed' AND NOT EXISTS (SELECT 1 FROM {JOB_RUNS} r WHERE r.job = ? "
        f"AND r.load_id = l.load_id AND r.final) ORDER BY l.seq", [connection, source_object, job]).fetchall()
    return [_make(LoadRecord, r) for r in rows]


def unfinished_loads(con) -> list[LoadRecord]:
    """Loads whose unit has not been finished (archived) yet, in arrival order."""
    return _select(con, LoadRecord, LOADS, "archived_to IS NULL", tail="ORDER BY seq")


def moved_loads(con) -> list[LoadRecord]:
    """Loads whose file was moved away from where it was found (archive or error prefix), in arrival order."""
    return _select(con, LoadRecord, LOADS, "archived_to IS NOT NULL AND archived_to <> source_file", tail="ORDER BY seq")


def identical_loads(con, dagster_run_ids: Sequence[str]) -> list[LoadRecord]:
    """Re-uploads recorded as identical (not applied again) by these Dagster runs, in arrival order."""
    if not dagster_run_ids:
        return []
    return _select(con, LoadRecord, LOADS, f"status = 'identical' AND dagster_run_id IN ({_placeholders(dagster_run_ids)})",
                   dagster_run_ids, "ORDER BY seq")


def finish_loads(con, load_ids: Sequence[str], archived_to: str, error_files: list[str]) -> None:
    """Record where the loads' file went and the error files written beside it."""
    for load_id in load_ids:
        con.execute(f"UPDATE {LOADS} SET archived_to = ?, error_files = ? WHERE load_id = ?",
                    [archived_to, json.dumps(error_files), load_id])


def left_in_place(con, source_files: Sequence[str]) -> list[LeftInPlace]:
    """Per source object and version of these files: the latest load that finished and left the
    file where it was (archive prefix "")."""
    rows = con.execute(
        "SELECT connection, source_object, source_file, etag, arg_max(load_id, landed_at), max(landed_at) "
        f"FROM {LOADS} WHERE archived_to = source_file AND source_file IN (SELECT unnest(?)) "
        "GROUP BY ALL", [list(source_files)]).fetchall()
    return [LeftInPlace(*r) for r in rows]


# --- job runs --------------------------------------------------------------------------------------

def insert_job_run(con, run: JobRunRecord) -> None:
    con.execute(f"INSERT INTO {JOB_RUNS} ({_cols(JobRunRecord)}) VALUES ({_placeholders(JobRunRecord._fields)})",
                list(run))


def job_runs_columns(con) -> list[str]:
    """Columns of gs_ops.job_runs in this warehouse (an older one may lack later columns; a new
    one may have no run log yet: [])."""
    return [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                                      "AND table_name = 'job_runs'", [SCHEMA]).fetchall()]


def activity(con, job: Optional[str] = None, limit: Optional[int] = None) -> list[JobRunRecord]:
    """Job runs, latest first (of one job, when given); columns a warehouse of an earlier release
    lacks read as NULL. Empty when there is no run log yet."""
    have = job_runs_columns(con)
    if not have:
        return []
    cols = ", ".join(c if c in have else f"NULL AS {c}" for c in JobRunRecord._fields)
    where, params = ("WHERE job = ?", [job]) if job else ("", [])
    sql = f"SELECT {cols} FROM {JOB_RUNS} {where} ORDER BY started_at DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [_make(JobRunRecord, r) for r in con.execute(sql, params).fetchall()]


def job_runs(con) -> list[JobRunRecord]:
    """Every job run, in the order they started."""
    return _select(con, JobRunRecord, JOB_RUNS, tail="ORDER BY started_at")


def job_runs_of(con, dagster_run_ids: Sequence[str], job: Optional[str] = None) -> list[JobRunRecord]:
    """Job runs the Dagster runs logged (of one job, when given), in the order they started."""
    if not dagster_run_ids:
        return []
    where, params = f"dagster_run_id IN ({_placeholders(dagster_run_ids)})", list(dagster_run_ids)
    if job is not None:
        where, params = f"job = ? AND {where}", [job, *params]
    return _select(con, JobRunRecord, JOB_RUNS, where, params, "ORDER BY started_at")


def final_runs_of_load(con, load_id: str) -> list[JobRunRecord]:
    """The final, first-time (not retry) job runs over a load, by job name."""
    return _select(con, JobRunRecord, JOB_RUNS, "load_id = ? AND final AND retry_of IS NULL", [load_id], "ORDER BY job")


def unconserved_runs(con, destination: str) -> list[UnconservedRun]:
    """Final job runs into `destination` that did not fail and whose buckets miss rows (invariant 1)."""
    total = "inserted + updated + unchanged + rejected + filtered + superseded + aggregated + deleted"
    rows = con.execute(f"SELECT job_run_id, job, rows_read, {total} FROM {JOB_RUNS} WHERE destination = ? AND final "
                       f"AND status <> 'Failed' AND rows_read <> {total}", [destination]).fetchall()
    return [UnconservedRun(*r) for r in rows]


def _runs_with_loads(con, where: str, params: Sequence, tail: str) -> list[RunAndLoad]:
    n = len(JobRunRecord._fields)
    rows = con.execute(f"SELECT {_cols(JobRunRecord, 'r.')}, {_cols(LoadRecord, 'l.')} FROM {JOB_RUNS} r "
                       f"LEFT JOIN {LOADS} l ON l.load_id = r.load_id WHERE {where} {tail}", list(params)).fetchall()
    return [RunAndLoad(_make(JobRunRecord, r[:n]), _make(LoadRecord, r[n:]) if r[n] is not None else None)
            for r in rows]


def runs_matching(con, job_run_id: str) -> list[RunAndLoad]:
    """Job runs whose id is `job_run_id` or starts with it, latest first, with their loads."""
    return _runs_with_loads(con, "r.job_run_id = ? OR r.job_run_id LIKE ? || '%'", [job_run_id, job_run_id],
                            "ORDER BY r.started_at DESC")


def failed_runs_of(con, job: str, dagster_run_ids: Sequence[str]) -> list[RunAndLoad]:
    """The job's Failed runs in these Dagster runs, in the order they started, with their loads."""
    if not dagster_run_ids:
        return []
    return _runs_with_loads(con, f"r.job = ? AND r.status = 'Failed' AND r.dagster_run_id IN "
                                 f"({_placeholders(dagster_run_ids)})", [job, *dagster_run_ids], "ORDER BY r.started_at")


def last_run_of(con, dagster_run_id: str, job: str) -> Optional[RunAndLoad]:
    """The job's latest run in a Dagster run, with its load."""
    found = _runs_with_loads(con, "r.dagster_run_id = ? AND r.job = ?", [dagster_run_id, job],
                             "ORDER BY r.started_at DESC LIMIT 1")
    return found[0] if found else None


# --- rejects, superseded and defaulted rows (set-based writes of a job run) --------------------------

def insert_rejects(con, select_sql: str, params: Sequence) -> None:
    """Rejected rows from `select_sql`, whose columns are job_run_id, job, dagster_run_id,
    source_file, line_number, original_values, reasons, rejected_at."""
    con.execute(f"INSERT INTO {REJECTS} (job_run_id, job, dagster_run_id, source_file, line_number, original_values, "
                f"reasons, rejected_at) {select_sql}", list(params))


def set_reject_source_ids(con, job_run_id: str, rows_sql: str) -> None:
    """Give the run's rejects the source id of their line: `rows_sql` has `_line` and `_source_id`."""
    con.execute(f"UPDATE {REJECTS} SET source_id = r._source_id FROM {rows_sql} r "
                f"WHERE {REJECTS}.job_run_id = ? AND {REJECTS}.line_number = r._line", [job_run_id])


def mark_retried(con, job_run_id: str, lines_table: str) -> None:
    """The rejects `lines_table` (last_job_run_id, line_number) names were retried in `job_run_id`."""
    con.execute(f"UPDATE {REJECTS} AS r SET retried_in = ? FROM {lines_table} t "
                f"WHERE r.job_run_id = t.last_job_run_id AND r.line_number = t.line_number", [job_run_id])


def insert_superseded(con, select_sql: str, params: Sequence) -> None:
    """Superseded rows from `select_sql`: job_run_id, job, line_number, superseded_by_line."""
    con.execute(f"INSERT INTO {SUPERSEDED} {select_sql}", list(params))


def insert_defaulted(con, select_sql: str, params: Sequence) -> None:
    """Defaulted values from `select_sql`: job_run_id, job, source_file, line_number, field,
    source, original_value, reason, default_value."""
    con.execute(f"INSERT INTO {DEFAULTED} {select_sql}", list(params))


def count_rejects(con, job_run_id: Optional[str] = None) -> int:
    """Rejects of one job run (of every run, when None)."""
    if job_run_id is None:
        return con.execute(f"SELECT count(*) FROM {REJECTS}").fetchone()[0]
    return con.execute(f"SELECT count(*) FROM {REJECTS} WHERE job_run_id = ?", [job_run_id]).fetchone()[0]


def count_rejects_of_jobs(con, jobs: Sequence[str]) -> int:
    """Rejects of every run of these jobs."""
    if not jobs:
        return 0
    return con.execute(f"SELECT count(*) FROM {REJECTS} WHERE job IN ({_placeholders(jobs)})", list(jobs)).fetchone()[0]


def count_rejects_of_runs(con, dagster_run_ids: Sequence[str]) -> int:
    """Rejects written by these Dagster runs."""
    return con.execute(f"SELECT count(*) FROM {REJECTS} WHERE dagster_run_id IN (SELECT unnest(?::VARCHAR[]))",
                       [list(dagster_run_ids)]).fetchone()[0]


class RunRejectReasons(NamedTuple):
    """Rejects of some runs by job and reason, with the source id of the first example."""
    job: str
    field: Optional[str]
    rule: Optional[str]
    rows: int
    first: Optional[str]
    message: Optional[str]
    value: Optional[str]


def reject_reasons_of_runs(con, dagster_run_ids: Sequence[str]) -> list[RunRejectReasons]:
    rows = con.execute(
        f"WITH r AS (SELECT job, source_id, line_number, unnest(CAST(reasons AS JSON[])) AS reason FROM {REJECTS} "
        "WHERE dagster_run_id IN (SELECT unnest(?::VARCHAR[]))) "
        "SELECT job, reason->>'field', reason->>'rule', count(*), arg_min(source_id, line_number), "
        "arg_min(reason->>'message', line_number), arg_min(reason->>'value', line_number) "
        "FROM r GROUP BY ALL ORDER BY job, count(*) DESC", [list(dagster_run_ids)]).fetchall()
    return [RunRejectReasons(*r) for r in rows]


def rejects_of(con, job_run_id: str, limit: Optional[int] = None) -> list[RejectRecord]:
    """A job run's rejects by line."""
    tail = "ORDER BY line_number" + (f" LIMIT {int(limit)}" if limit is not None else "")
    return _select(con, RejectRecord, REJECTS, "job_run_id = ?", [job_run_id], tail)


def rejects_relation(job_run_id: str) -> str:
    """A SQL relation of a job run's rejects (the columns of RejectRecord), for a caller's own
    select (an error file's COPY); the id is quoted as a literal."""
    return f"(SELECT * FROM {REJECTS} WHERE job_run_id = {q(job_run_id)})"


def reject_reasons(con) -> list[RejectReasons]:
    """Every reject reason grouped by job, field and rule, most frequent first per job."""
    rows = con.execute(
        "WITH r AS (SELECT job, regexp_replace(source_file, '^.*/', '') AS file, line_number, "
        f"  unnest(CAST(reasons AS JSON[])) AS reason FROM {REJECTS}) "
        "SELECT job, reason->>'field' AS field, reason->>'rule' AS rule, count(*) AS n, "
        "  arg_min(file || ':' || line_number, line_number) AS first, arg_min(reason->>'message', line_number), "
        "  arg_min(reason->>'value', line_number) "
        "FROM r GROUP BY ALL ORDER BY job, n DESC").fetchall()
    return [RejectReasons(*r) for r in rows]


# --- rows waiting for a lookup -------------------------------------------------------------------

def add_waiting(con, unmatched_sql: str, *, job: str, load_id: str, job_run_id: str, at: datetime) -> None:
    """Rows rejected only for an unmatched lookup start waiting: `unmatched_sql` has `rid` (the
    line) and `objects` (the objects they looked up)."""
    con.execute(f"INSERT INTO {LOOKUP_WAITING} SELECT ?, ?, u.rid, ?, ?, 0, ?, ?, u.objects FROM ({unmatched_sql}) u",
                [job, load_id, job_run_id, job_run_id, at, at])


def copy_waiting_lines(con, table: str, load_id: str, where: str, params: Sequence) -> None:
    """Create temp table `table` (line_number, last_job_run_id, first_rejected_at) of the load's
    waiting lines that `where` (over the waiting rows' columns) selects."""
    con.execute(f"CREATE TEMP TABLE {table} AS SELECT line_number, last_job_run_id, first_rejected_at "
                f"FROM {LOOKUP_WAITING} WHERE load_id = ? AND {where}", [load_id, *params])


def update_waiting(con, unmatched_sql: str, lines_table: str, *, job: str, load_id: str, job_run_id: str,
                   at: datetime, attempts: int) -> None:
    """After a retry of the lines in `lines_table`: the ones still unmatched (`unmatched_sql`:
    rid, objects) wait with one attempt more; the rest, and those out of attempts, stop waiting."""
    tried = f"w.job = ? AND w.load_id = ? AND w.line_number IN (SELECT line_number FROM {lines_table})"
    con.execute(f"UPDATE {LOOKUP_WAITING} AS w SET attempts = attempts + 1, last_tried_at = ?, last_job_run_id = ?, "
                f"objects = u.objects FROM ({unmatched_sql}) u WHERE w.line_number = u.rid AND {tried}",
                [at, job_run_id, job, load_id])
    # Loaded, superseded, filtered or rejected for another reason, or out of attempts: done waiting.
    con.execute(f"DELETE FROM {LOOKUP_WAITING} AS w WHERE {tried} AND (w.attempts >= ? OR w.last_job_run_id <> ?)",
                [job, load_id, attempts, job_run_id])


def due_loads(con, where: str, params: Sequence) -> list[DueLoad]:
    """Per load with waiting rows that `where` selects: its first rejecting run, the number of
    rows and when they were last tried, in arrival order."""
    rows = con.execute(
        f"SELECT w.load_id, min(w.job_run_id), count(*), max(w.last_tried_at) FROM {LOOKUP_WAITING} w "
        f"JOIN {LOADS} l ON l.load_id = w.load_id WHERE {where} "
        f"GROUP BY w.load_id ORDER BY min(l.seq)", list(params)).fetchall()
    return [DueLoad(*r) for r in rows]


def drop_waiting(con, where: str, params: Sequence) -> int:
    """Stop waiting for the rows `where` selects (they stay plain rejects); returns how many."""
    n = con.execute(f"SELECT count(*) FROM {LOOKUP_WAITING} WHERE {where}", list(params)).fetchone()[0]
    if n:
        con.execute(f"DELETE FROM {LOOKUP_WAITING} WHERE {where}", list(params))
    return n



# --------------------------------------------------------------------------- syncs (API / SQL cursors)

class SyncRecord(NamedTuple):
    """A row of gs_ops.syncs: one load an API or SQL sync committed."""
    load_id: str
    connection: Optional[str]
    source_object: Optional[str]
    sync_id: Optional[str]
    mode: Optional[str]
    window_from: Optional[str]
    window_to: Optional[str]
    pages: Optional[int]
    records: Optional[int]
    deleted: Optional[int]
    cursor_to: Optional[Any]
    fields: Optional[Any]
    stopped: Optional[str]
    synced_at: Optional[datetime]


def insert_sync(con, rec: SyncRecord) -> None:
    """Record what a committed sync load read (in the landing's transaction, so the cursor it
    carries advances exactly when the load commits)."""
    con.execute(f"INSERT INTO {SYNCS} VALUES ({_placeholders(rec)})",
                [json.dumps(v) if k in ("cursor_to", "fields") and v is not None else v
                 for k, v in rec._asdict().items()])


def _sync_rows(con, connection: str, source_object: str) -> list[tuple[SyncRecord, bool]]:
    rows = con.execute(
        f"SELECT {_cols(SyncRecord, 's.')}, EXISTS (SELECT 1 FROM {JOB_RUNS} r WHERE r.load_id = s.load_id "
        f"AND r.final AND r.status = 'Failed') AS failed FROM {SYNCS} s JOIN {LOADS} l ON l.load_id = s.load_id "
        "WHERE s.connection = ? AND s.source_object = ? AND l.status = 'landed' ORDER BY l.seq",
        [connection, source_object]).fetchall()
    out = []
    for r in rows:
        rec = SyncRecord(*r[:-1])
        rec = rec._replace(cursor_to=json.loads(rec.cursor_to) if isinstance(rec.cursor_to, str) else rec.cursor_to,
                           fields=json.loads(rec.fields) if isinstance(rec.fields, str) else rec.fields)
        out.append((rec, bool(r[-1])))
    return out


def stream_cursor(con, connection: str, source_object: str) -> Optional[SyncRecord]:
    """The committed sync load whose cursor the stream's next incremental sync starts from.

    The newest load of a full or incremental sync that carries a cursor, unless an older load
    failed to apply (a job run Failed) and no later sync re-read its window: then the last good
    load before that failure, so the failed window is read again (the upsert absorbs re-reads).
    Re-synced windows (mode `window`) never move the cursor."""
    rows = [(r, failed) for r, failed in _sync_rows(con, connection, source_object) if r.mode != "window"]
    uncovered = None
    for i, (r, failed) in enumerate(rows):
        if failed and uncovered is None:
            later = [g for g, f in rows[i + 1:] if not f]
            # a later sync that started at or before this load's window start read it again
            if not any(g.window_from is not None and r.window_from is not None and g.window_from <= r.window_from
                       or (g.window_from is None and g.mode == "full") for g in later):
                uncovered = i
    good = [r for r, failed in (rows if uncovered is None else rows[:uncovered]) if not failed and r.cursor_to]
    return good[-1] if good else None


def sync_history(con, connection: str, source_object: str) -> list[SyncRecord]:
    """Every committed sync load of a source, oldest first."""
    return [r for r, _failed in _sync_rows(con, connection, source_object)]


def landed_loads(con, connection: str, source_object: str) -> list[LoadRecord]:
    """The landed loads of a source object that have a raw table, oldest first."""
    return _select(con, LoadRecord, LOADS, "connection = ? AND source_object = ? AND status = 'landed' "
                   "AND raw_table IS NOT NULL", [connection, source_object], "ORDER BY seq")


def last_sync(con, connection: str, source_object: str) -> Optional[SyncRecord]:
    """The newest committed sync load of a stream (any mode): its discovered fields are the
    baseline the next sync's schema drift is measured against."""
    rows = _sync_rows(con, connection, source_object)
    return rows[-1][0] if rows else None


class SyncTotals(NamedTuple):
    """Sync loads of a stream and mode added up: how many, their pages, records and deletes."""
    source_object: str
    mode: str
    syncs: int
    pages: int
    records: int
    deleted: int


def sync_totals(con, load_ids: Sequence[str]) -> list[SyncTotals]:
    """The sync loads among `load_ids`, added up per stream and mode, in the order they synced."""
    rows = con.execute(
        f"SELECT source_object, mode, count(*), sum(pages), sum(records), sum(deleted) FROM {SYNCS} "
        "WHERE load_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY ALL ORDER BY min(synced_at)",
        [list(load_ids)]).fetchall()
    return [SyncTotals(*r) for r in rows]
