"""MySQL and MariaDB through PyMySQL: a REPEATABLE READ transaction WITH CONSISTENT SNAPSHOT, READ
ONLY; rows from an unbuffered cursor (SSCursor); the session in UTC."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Iterator, Optional

import pymysql
import pymysql.cursors
from pymysql.constants import FIELD_TYPE, FLAG

from gs_assets.connectors.sql.statements import describe_sql
from gs_assets.connectors.sql.systems.base import (BINARY, DATE, DATETIME, DECIMAL, FLOAT, INTEGER, JSON, OTHER, TEXT,
                                                   Column, SqlSystem, utc)

_TYPES = {FIELD_TYPE.TINY: INTEGER, FIELD_TYPE.SHORT: INTEGER, FIELD_TYPE.LONG: INTEGER, FIELD_TYPE.INT24: INTEGER,
          FIELD_TYPE.LONGLONG: INTEGER, FIELD_TYPE.YEAR: INTEGER, FIELD_TYPE.DECIMAL: DECIMAL,
          FIELD_TYPE.NEWDECIMAL: DECIMAL, FIELD_TYPE.FLOAT: FLOAT, FIELD_TYPE.DOUBLE: FLOAT, FIELD_TYPE.DATE: DATE,
          FIELD_TYPE.NEWDATE: DATE, FIELD_TYPE.DATETIME: DATETIME, FIELD_TYPE.TIMESTAMP: DATETIME,
          FIELD_TYPE.TIME: TEXT, FIELD_TYPE.VARCHAR: TEXT, FIELD_TYPE.VAR_STRING: TEXT, FIELD_TYPE.STRING: TEXT,
          FIELD_TYPE.ENUM: TEXT, FIELD_TYPE.SET: TEXT, FIELD_TYPE.JSON: JSON, FIELD_TYPE.BIT: OTHER,
          FIELD_TYPE.GEOMETRY: OTHER, FIELD_TYPE.NULL: TEXT}
_BLOBS = {FIELD_TYPE.TINY_BLOB, FIELD_TYPE.MEDIUM_BLOB, FIELD_TYPE.LONG_BLOB, FIELD_TYPE.BLOB}
# The names a MySQL user knows the protocol's type codes by (FIELD_TYPE has aliases: CHAR is TINY, ...)
_NAMES = {FIELD_TYPE.TINY: "TINYINT", FIELD_TYPE.SHORT: "SMALLINT", FIELD_TYPE.INT24: "MEDIUMINT",
          FIELD_TYPE.LONG: "INT", FIELD_TYPE.LONGLONG: "BIGINT", FIELD_TYPE.YEAR: "YEAR", FIELD_TYPE.DECIMAL: "DECIMAL",
          FIELD_TYPE.NEWDECIMAL: "DECIMAL", FIELD_TYPE.FLOAT: "FLOAT", FIELD_TYPE.DOUBLE: "DOUBLE",
          FIELD_TYPE.DATE: "DATE", FIELD_TYPE.NEWDATE: "DATE", FIELD_TYPE.DATETIME: "DATETIME",
          FIELD_TYPE.TIMESTAMP: "TIMESTAMP", FIELD_TYPE.TIME: "TIME", FIELD_TYPE.VARCHAR: "VARCHAR",
          FIELD_TYPE.VAR_STRING: "VARCHAR", FIELD_TYPE.STRING: "CHAR", FIELD_TYPE.ENUM: "ENUM", FIELD_TYPE.SET: "SET",
          FIELD_TYPE.JSON: "JSON", FIELD_TYPE.BIT: "BIT", FIELD_TYPE.GEOMETRY: "GEOMETRY", FIELD_TYPE.NULL: "NULL"}
BINARY_CHARSET = 63  # MySQL's `binary` collation: BLOB/BINARY/VARBINARY, as opposed to TEXT/CHAR


class MySQL(SqlSystem):
    label = "MySQL"
    snapshot = "REPEATABLE READ transaction WITH CONSISTENT SNAPSHOT, READ ONLY"

    def connect(self) -> None:
        c = self.conn
        ssl = None
        if c.tls.mode != "disable":
            # never an empty dict: PyMySQL takes {} for no TLS at all. Without a CA (prefer, require) it
            # takes any certificate; with one (verify-ca) it checks the chain, and verify-full the host too.
            ssl = {"ca": c.tls.ca_file, "check_hostname": c.tls.mode == "verify-full"}
        try:
            self.db = self._open(ssl)
        except pymysql.err.OperationalError as e:
            if ssl is not None and c.tls.mode == "prefer" and "ssl" in str(e).lower():
                try:  # prefer: TLS when the server offers it, plain TCP when it does not
                    self.db = self._open(None)
                    return
                except pymysql.err.OperationalError as e2:
                    e = e2
            raise self.failed("cannot connect", e, _hint(e)) from None

    def _open(self, ssl):
        c = self.conn
        kw = dict(host=c.host, port=c.server_port, user=c.user, password=self.secret("password") or "",
                  database=c.database, connect_timeout=c.connect_timeout_seconds, autocommit=False,
                  init_command="SET time_zone = '+00:00'", charset="utf8mb4", program_name="gsdp")
        if ssl is not None:
            kw["ssl"] = ssl
        return pymysql.connect(**kw)

    def begin_snapshot(self) -> None:
        # The clock and the oldest open transaction are read just BEFORE the snapshot: a transaction that
        # is open then may commit after the snapshot began (its rows not in it), so the upper bound must
        # stay below its start; read inside the snapshot, it could have committed and gone from
        # innodb_trx already, and the bound would pass its rows for good. One that starts later stamps
        # its rows later than the clock read here.
        self._now = self._read_now()
        self._inflight = self._read_inflight()
        with self.db.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")

    def quote(self, ident: str) -> str:
        return "`" + ident.replace("`", "``") + "`"

    def describe(self, dataset: str) -> list[Column]:
        with self.db.cursor() as cur:
            cur.execute(describe_sql(dataset))
            fields = cur._result.fields if cur._result else []
            out = []
            for d, f in zip(cur.description or [], fields):
                code = d[1]
                if code in _BLOBS:
                    cat, shown = (BINARY, "BLOB") if f.charsetnr == BINARY_CHARSET else (TEXT, "TEXT")
                elif code in (FIELD_TYPE.STRING, FIELD_TYPE.VAR_STRING) and f.charsetnr == BINARY_CHARSET:
                    cat, shown = BINARY, "BINARY"
                elif f.flags & FLAG.ENUM or f.flags & FLAG.SET:  # sent as CHAR with a flag
                    cat, shown = TEXT, "ENUM" if f.flags & FLAG.ENUM else "SET"
                else:
                    cat, shown = _TYPES.get(code, OTHER), _NAMES.get(code, f"type {code}")
                    if code == FIELD_TYPE.TINY and f.length == 1:
                        # BOOLEAN is TINYINT(1): an integer (a 2 is legal), which a boolean field takes as 1/0
                        shown = "TINYINT(1)"
                out.append(Column(d[0], shown, cat))
            return out

    def server_now(self) -> datetime:
        return self._now if getattr(self, "_now", None) is not None else self._read_now()

    def inflight_since(self) -> Optional[datetime]:
        return self._inflight if hasattr(self, "_inflight") else self._read_inflight()

    def _read_now(self) -> datetime:
        with self.db.cursor() as cur:
            cur.execute("SELECT UTC_TIMESTAMP(6)")
            return utc(cur.fetchone()[0])

    def _read_inflight(self) -> Optional[datetime]:
        # InnoDB's open transactions (needs the PROCESS privilege; without it the lag alone guards).
        # trx_started is shown in the server's OS time zone (@@system_time_zone: InnoDB formats it with
        # localtime_r), not in the session's time_zone (UTC here): CONVERT_TZ from 'SYSTEM' (known without
        # the time zone tables) makes it UTC. It has whole seconds, so it is the start rounded down: a
        # bound at or below the start, never above it. InnoDB fills these tables from a cache it refreshes
        # when it is older than about 0.1 s: a transaction begun in that last moment is left to the lag.
        try:
            with self.db.cursor() as cur:
                cur.execute("SELECT CONVERT_TZ(MIN(trx_started), 'SYSTEM', '+00:00') "
                            "FROM information_schema.innodb_trx WHERE trx_mysql_thread_id <> CONNECTION_ID()")
                started = cur.fetchone()[0]
        except pymysql.err.MySQLError:
            return None
        return utc(started) if started is not None else None

    def placeholder(self, n: int) -> str:
        # PyMySQL binds by `sql % params`, which would take a '%' in a user's query for a placeholder: the
        # bounds go in as literals PyMySQL escapes, at markers no query text can hold (a token of this session)
        if not hasattr(self, "_marker"):
            self._marker = secrets.token_hex(8)
        return f"/*gsdp:{self._marker}:{n}*/"

    def can_write(self, table: str) -> bool:
        # The login's own grants, global, on the schema or on the table (information_schema shows a login
        # its own); a write right that comes through a role is not seen here.
        parts = [p.strip("`") for p in table.split(".")]
        schema, name = (parts[-2], parts[-1]) if len(parts) > 1 else (None, parts[-1])
        grantee = ("CONCAT(QUOTE(SUBSTRING_INDEX(CURRENT_USER(), '@', 1)), '@', "
                   "QUOTE(SUBSTRING_INDEX(CURRENT_USER(), '@', -1)))")  # 'user'@'host', as GRANTEE spells it
        writes = "PRIVILEGE_TYPE IN ('INSERT', 'UPDATE', 'DELETE')"
        in_schema = "TABLE_SCHEMA = COALESCE(%s, DATABASE())"
        try:
            with self.db.cursor() as cur:
                cur.execute(
                    f"SELECT (SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = {grantee} AND "
                    f"{writes}) + (SELECT COUNT(*) FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = {grantee} "
                    f"AND {in_schema} AND {writes}) + (SELECT COUNT(*) FROM information_schema.TABLE_PRIVILEGES WHERE "
                    f"GRANTEE = {grantee} AND {in_schema} AND TABLE_NAME = %s AND {writes})", [schema, schema, name])
                return bool(cur.fetchone()[0])
        except pymysql.err.MySQLError:
            return False

    def rows(self, sql: str, params: list) -> Iterator[list[tuple]]:
        for n, p in enumerate(params, start=1):
            sql = sql.replace(self.placeholder(n), self.db.escape(p))
        cur = self.db.cursor(pymysql.cursors.SSCursor)
        try:
            cur.execute(sql)
            while True:
                chunk = cur.fetchmany(self.fetch_rows)
                if not chunk:
                    return
                yield list(chunk)
        finally:
            cur.close()


class MariaDB(MySQL):
    label = "MariaDB"


def _hint(err: BaseException) -> str:
    code = err.args[0] if err.args else None
    if code == 1045:
        return ("Check the user in config and the password in its env var (connections.<name>.auth.env), then run "
                "`gsdp connections test <name>`.")
    if code == 1049:
        return "Check `database` in the connection's config."
    if code == 2026 or "ssl" in str(err).lower():
        return ("Check the connection's tls settings against what the server offers (prefer takes plain TCP from a "
                "server without TLS; require and verify-* need TLS).")
    return "Check host and port in the connection's config and that the server runs and accepts TCP connections."
