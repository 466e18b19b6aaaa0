"""Access keys of the Bulk API: created and rotated from the CLI, stored hashed, checked in
constant time, optionally limited to some jobs.

A key reads `gsdp_<key id>_<secret>`. The key id is public (it names the key in lists, logs and
the audit trail); the secret is 32 random bytes, shown once when the key is created or rotated and
stored only as its SHA-256 (a random 256-bit secret needs no slow hash). Checking a key looks the
id up and compares digests with `hmac.compare_digest`; an unknown id is compared against a dummy
digest, so a wrong key takes as long as a wrong secret and says nothing about which keys or jobs
exist.

Keys live in the Bulk API's own SQLite file (`GSDP_BULK_DB`, default data/bulk_api.sqlite), not
in the warehouse: the service must answer (401, 429, status) while loads hold the warehouse.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from gs_assets.settings import Settings

DEFAULT_DB = Settings().bulk_db
_DUMMY = hashlib.sha256(b"no such key").hexdigest()


def bulk_db_path() -> Path:
    return Settings.from_env().bulk_db


def connect(path: Optional[Path] = None) -> sqlite3.Connection:
    """The Bulk API's SQLite file (WAL, so the service and CLI can use it at once)."""
    path = Path(path or bulk_db_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA busy_timeout=30000")
    con.execute("""CREATE TABLE IF NOT EXISTS access_keys (
        key_id TEXT PRIMARY KEY, name TEXT NOT NULL, secret_sha256 TEXT NOT NULL, jobs TEXT,
        created_at TEXT NOT NULL, rotated_at TEXT, revoked_at TEXT)""")
    return con


@dataclass
class AccessKey:
    key_id: str
    name: str
    jobs: Optional[list[str]]  # None: every job that accepts uploads
    created_at: str
    rotated_at: Optional[str] = None
    revoked_at: Optional[str] = None

    def allows(self, job: str) -> bool:
        return self.jobs is None or job in self.jobs


class AccessKeyError(ValueError):
    """A key operation that cannot be done (unknown id, revoked key); the message says why."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret(key_id: str) -> tuple[str, str]:
    secret = secrets.token_urlsafe(32)
    return f"gsdp_{key_id}_{secret}", _digest(secret)


def create_key(con: sqlite3.Connection, name: str, jobs: Optional[list[str]] = None) -> tuple[AccessKey, str]:
    """A new key; returns it and the full key text (shown once, never stored)."""
    if not name.strip():
        raise AccessKeyError("a key needs a name (who or what uses it)")
    key_id = secrets.token_hex(4)
    full, digest = _new_secret(key_id)
    now = _now()
    con.execute("INSERT INTO access_keys (key_id, name, secret_sha256, jobs, created_at) VALUES (?, ?, ?, ?, ?)",
                [key_id, name, digest, json.dumps(jobs) if jobs else None, now])
    return AccessKey(key_id, name, jobs or None, now), full


def rotate_key(con: sqlite3.Connection, key_id: str) -> tuple[AccessKey, str]:
    """A new secret for the key; the old one stops working at once."""
    key = get_key(con, key_id)
    if key.revoked_at:
        raise AccessKeyError(f"key {key_id} was revoked on {key.revoked_at}; create a new one")
    full, digest = _new_secret(key_id)
    key.rotated_at = _now()
    con.execute("UPDATE access_keys SET secret_sha256 = ?, rotated_at = ? WHERE key_id = ?", [digest, key.rotated_at, key_id])
    return key, full


def revoke_key(con: sqlite3.Connection, key_id: str) -> AccessKey:
    key = get_key(con, key_id)
    key.revoked_at = key.revoked_at or _now()
    con.execute("UPDATE access_keys SET revoked_at = ? WHERE key_id = ?", [key.revoked_at, key_id])
    return key


def get_key(con: sqlite3.Connection, key_id: str) -> AccessKey:
    row = con.execute("SELECT key_id, name, jobs, created_at, rotated_at, revoked_at FROM access_keys WHERE key_id = ?",
                      [key_id]).fetchone()
    if row is None:
        raise AccessKeyError(f"no access key {key_id!r}; see `gsdp keys list`")
    return AccessKey(row[0], row[1], json.loads(row[2]) if row[2] else None, row[3], row[4], row[5])


def list_keys(con: sqlite3.Connection) -> list[AccessKey]:
    return [get_key(con, r[0]) for r in con.execute("SELECT key_id FROM access_keys ORDER BY created_at, key_id")]


def verify(con: sqlite3.Connection, presented: Optional[str]) -> Optional[AccessKey]:
    """The key `presented` stands for, or None (missing, malformed, unknown, wrong or revoked)."""
    parts = (presented or "").split("_", 2)
    key_id, secret = (parts[1], parts[2]) if len(parts) == 3 and parts[0] == "gsdp" else ("", presented or "")
    row = con.execute("SELECT secret_sha256, revoked_at FROM access_keys WHERE key_id = ?", [key_id]).fetchone() \
        if key_id else None
    stored = row[0] if row else _DUMMY
    ok = hmac.compare_digest(stored, _digest(secret))  # same work whether or not the id exists
    if not ok or row is None or row[1] is not None:
        return None
    return get_key(con, key_id)
