"""What a SQL system supplies to a sync: a connection through its standard driver, one consistent
read-only snapshot, the dataset's columns with their types, the server's clock, and rows in
chunks from a server-side cursor (memory stays flat whatever the table size).

One subclass per system (postgresql.py, mysql.py, redshift.py, snowflake.py, bigquery.py); the
sync (sql/reader.py) is the same for all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping, Optional, Sequence

import pyarrow as pa

from gs_assets.connectors.sql.values import rows_to_batch

# The categories a column's type falls in; what each may fill is in sql/types.py.
TEXT, INTEGER, DECIMAL, FLOAT, BOOLEAN, DATE, DATETIME, DATETIME_TZ, JSON, BINARY, OTHER = (
    "text", "integer", "decimal", "float", "boolean", "date", "datetime", "datetime_tz", "json", "binary", "other")


@dataclass(frozen=True)
class Column:
    """A column of a dataset: its name as the source spells it, its type as the system names it,
    and its category."""
    name: str
    db_type: str
    category: str


class ConnectFailed(Exception):
    """The server cannot be reached or refused the login: one paragraph naming the connection,
    never a secret."""


class SqlSystem(ABC):
    """One sync's session with a database or warehouse. Use as a context manager."""

    label = "SQL"
    snapshot = "one transaction"  # what consistency the snapshot gives, for the run's metadata

    def __init__(self, connection: str, conn, secrets: Mapping[str, Any], *, options: Optional[Mapping[str, Any]] = None):
        self.connection = connection  # its name in config
        self.conn = conn  # its SqlConnection
        self.secrets = secrets  # secret name -> Secret (.reveal())
        self.options = dict(options or {})  # test seams (a BigQuery client factory, ...)
        self.fetch_rows = conn.fetch_rows

    # -- session ------------------------------------------------------------------------------
    @abstractmethod
    def connect(self) -> None:
        """Open the session; raise ConnectFailed with what to do (no secret in it)."""

    def close(self) -> None:
        """End the snapshot (never committing anything) and close. This default serves a DB-API
        session kept in `self.db`; a system with another kind of session overrides it."""
        db = getattr(self, "db", None)
        if db is not None:
            try:
                db.rollback()
            finally:
                db.close()

    def __enter__(self) -> "SqlSystem":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @abstractmethod
    def begin_snapshot(self) -> None:
        """Start the one read-only transaction every read of this sync runs in."""

    # -- SQL text -----------------------------------------------------------------------------
    def quote(self, ident: str) -> str:
        return '"' + ident.replace('"', '""') + '"'

    def placeholder(self, n: int) -> str:
        return "%s"

    def select_expr(self, column_sql: str, category: str) -> str:
        """How a column is selected (a system that reads text output casts where its text differs)."""
        return column_sql

    # -- reads --------------------------------------------------------------------------------
    @abstractmethod
    def describe(self, dataset: str) -> list[Column]:
        """The dataset's columns in order (a query that returns no rows)."""

    @abstractmethod
    def server_now(self) -> datetime:
        """The server's clock at the snapshot (aware, UTC): the upper bound is measured on it."""

    def inflight_since(self) -> Optional[datetime]:
        """The start (aware, UTC) of the oldest other transaction still open, where the system
        shows it to this login; None where it does not (the visibility lag alone guards then)."""
        return None

    def can_write(self, table: str) -> bool:
        """Whether this login could INSERT into `table` (where the system says; False otherwise)."""
        return False

    @abstractmethod
    def rows(self, sql: str, params: list) -> Iterator[list[tuple]]:
        """The rows of a SELECT, `fetch_rows` at a time, from a server-side cursor."""

    def batches(self, sql: str, params: list, names: Sequence[str], categories: Sequence[str]) -> Iterator[pa.RecordBatch]:
        """The rows of a SELECT as record batches of text columns named `names` (values/rows_to_batch);
        a system with a faster bulk path (PostgreSQL's COPY) overrides it."""
        for rows in self.rows(sql, params):
            yield rows_to_batch(rows, names, categories)

    # -- helpers ------------------------------------------------------------------------------
    def failed(self, what: str, err: BaseException, hint: str) -> ConnectFailed:
        """A ConnectFailed naming the connection and the server, with the driver's first line
        (drivers do not put passwords in their messages; it is checked anyway)."""
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        for s in self.secrets.values():
            v = s.reveal() if hasattr(s, "reveal") else str(s)
            if v and len(v) >= 4:
                text = text.replace(v, "***")
        return ConnectFailed(f"connection {self.connection} ({self.label} {self.where}): {what}: {text}. {hint}")

    @property
    def where(self) -> str:
        c = self.conn
        return f"{c.host}:{c.server_port}/{c.database}" if c.host else (c.account or c.project or "")

    def secret(self, name: str) -> Optional[str]:
        s = self.secrets.get(name)
        return s.reveal() if s is not None else None


def utc(d: datetime) -> datetime:
    return d.replace(tzinfo=timezone.utc) if d.tzinfo is None else d.astimezone(timezone.utc)
