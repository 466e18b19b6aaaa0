"""Upload requests of the Bulk API and its call counts, in the Bulk API's SQLite file.

A request is recorded when its file has landed in S3 (status `queued`). The bulk upload sensor
turns queued requests into Dagster runs (`running`), and the bulk status sensor writes the job
run's outcome back (`Success` / `Partial Success` / `Failed`, counts, timings, error file). The
service only reads this file, so status calls never wait on the warehouse. The queue survives a
service restart: it is this table, and the sensors run in the Dagster daemon.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Optional

DDL = [
    """CREATE TABLE IF NOT EXISTS bulk_requests (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT UNIQUE NOT NULL, status_id TEXT UNIQUE NOT NULL,
        job TEXT NOT NULL, key_id TEXT NOT NULL, login_name TEXT, client_file_name TEXT, bucket TEXT NOT NULL,
        s3_key TEXT NOT NULL, size_bytes INTEGER, etag TEXT, status TEXT NOT NULL, received_at TEXT NOT NULL,
        dagster_run_id TEXT, job_run_id TEXT, started_at TEXT, ended_at TEXT, rows_read INTEGER, inserted INTEGER,
        updated INTEGER, unchanged INTEGER, rejected INTEGER, filtered INTEGER, error TEXT, error_file TEXT)""",
    "CREATE TABLE IF NOT EXISTS bulk_calls (key_id TEXT NOT NULL, at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS bulk_calls_key_at ON bulk_calls (key_id, at)",
]


def ensure(con: sqlite3.Connection) -> sqlite3.Connection:
    for stmt in DDL:
        con.execute(stmt)
    return con


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class BulkRequest:
    request_id: str
    status_id: str
    job: str
    key_id: str
    login_name: Optional[str]
    client_file_name: Optional[str]
    bucket: str
    s3_key: str
    size_bytes: Optional[int]
    etag: Optional[str]
    status: str
    received_at: str
    dagster_run_id: Optional[str] = None
    job_run_id: Optional[str] = None
    started_at: Optional[str] = None
    ended_at: Optional[str] = None
    rows_read: Optional[int] = None
    inserted: Optional[int] = None
    updated: Optional[int] = None
    unchanged: Optional[int] = None
    rejected: Optional[int] = None
    filtered: Optional[int] = None
    error: Optional[str] = None
    error_file: Optional[str] = None
    seq: Optional[int] = None

    def as_dict(self) -> dict:
        return asdict(self)


_FIELDS = [f for f in BulkRequest.__dataclass_fields__ if f != "seq"]


def new_ids() -> tuple[str, str]:
    return str(uuid.uuid4()), str(uuid.uuid4())


def record(con: sqlite3.Connection, req: BulkRequest) -> None:
    con.execute(f"INSERT INTO bulk_requests ({', '.join(_FIELDS)}) VALUES ({', '.join('?' for _ in _FIELDS)})",
                [getattr(req, f) for f in _FIELDS])


def _row(r) -> BulkRequest:
    return BulkRequest(**dict(zip(["seq", *_FIELDS], r)))


def get(con: sqlite3.Connection, status_id: str) -> Optional[BulkRequest]:
    r = con.execute(f"SELECT seq, {', '.join(_FIELDS)} FROM bulk_requests WHERE status_id = ?", [status_id]).fetchone()
    return _row(r) if r else None


def by_request(con: sqlite3.Connection, request_id: str) -> Optional[BulkRequest]:
    r = con.execute(f"SELECT seq, {', '.join(_FIELDS)} FROM bulk_requests WHERE request_id = ?", [request_id]).fetchone()
    return _row(r) if r else None


def queued_after(con: sqlite3.Connection, seq: int, limit: int = 200) -> list[BulkRequest]:
    rows = con.execute(f"SELECT seq, {', '.join(_FIELDS)} FROM bulk_requests WHERE seq > ? AND status = 'queued' "
                       f"ORDER BY seq LIMIT ?", [seq, limit]).fetchall()
    return [_row(r) for r in rows]


def with_status(con: sqlite3.Connection, status: str, limit: int = 500) -> list[BulkRequest]:
    rows = con.execute(f"SELECT seq, {', '.join(_FIELDS)} FROM bulk_requests WHERE status = ? ORDER BY seq LIMIT ?",
                       [status, limit]).fetchall()
    return [_row(r) for r in rows]


def update(con: sqlite3.Connection, request_id: str, **values) -> None:
    sets = ", ".join(f"{k} = ?" for k in values)
    con.execute(f"UPDATE bulk_requests SET {sets} WHERE request_id = ?", [*values.values(), request_id])


def count_call(con: sqlite3.Connection, key_id: str, per_hour: int, per_day: int) -> Optional[int]:
    """Count an upload call of this key; returns None when allowed, else seconds until one is.

    Calls are kept for a day; refused calls are not counted (a client that backs off is not
    punished for asking)."""
    now = _now()
    con.execute("BEGIN IMMEDIATE")
    try:
        con.execute("DELETE FROM bulk_calls WHERE at < ?", [(now - timedelta(days=1)).isoformat()])
        for window, limit in ((timedelta(hours=1), per_hour), (timedelta(days=1), per_day)):
            rows = con.execute("SELECT at FROM bulk_calls WHERE key_id = ? AND at >= ? ORDER BY at",
                               [key_id, (now - window).isoformat()]).fetchall()
            if len(rows) >= limit:
                oldest = datetime.fromisoformat(rows[len(rows) - limit][0])
                con.execute("COMMIT")
                return max(1, int((oldest + window - now).total_seconds()) + 1)
        con.execute("INSERT INTO bulk_calls VALUES (?, ?)", [key_id, now.isoformat()])
        con.execute("COMMIT")
        return None
    except BaseException:
        con.execute("ROLLBACK")
        raise


def public_status(req: BulkRequest, base_url: str) -> dict:
    """The status document the API returns (no bucket names or internal ids beyond the request)."""
    state = {"queued": "queued", "running": "running"}.get(req.status, req.status)
    out = {"result": True, "requestId": req.request_id, "statusId": req.status_id, "jobId": req.job,
           "status": state, "fileName": req.client_file_name, "sizeBytes": req.size_bytes,
           "receivedAt": req.received_at, "startedAt": req.started_at, "endedAt": req.ended_at,
           "counts": {k: getattr(req, k) for k in ("rows_read", "inserted", "updated", "unchanged", "rejected", "filtered")},
           "error": req.error}
    out["errorFileUrl"] = (f"{base_url}/v1.0/admin/connector/job/bulkimport/status/{req.status_id}/errors"
                           if req.error_file else None)
    return json.loads(json.dumps(out, default=str))
