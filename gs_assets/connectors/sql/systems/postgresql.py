"""PostgreSQL through psycopg 3: REPEATABLE READ, READ ONLY; rows from a named (server-side) cursor;
column types from pg_type (its category letter covers enums, domains and extension types)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Iterator, Optional

import psycopg

from gs_assets.connectors.sql.statements import describe_sql
from gs_assets.connectors.sql.systems.base import (BINARY, BOOLEAN, DATE, DATETIME, DATETIME_TZ, DECIMAL, FLOAT,
                                                   INTEGER, JSON, OTHER, TEXT, Column, SqlSystem, utc)

_BY_NAME = {"int2": INTEGER, "int4": INTEGER, "int8": INTEGER, "oid": INTEGER, "numeric": DECIMAL, "money": TEXT,
            "float4": FLOAT, "float8": FLOAT, "bool": BOOLEAN, "date": DATE, "timestamp": DATETIME,
            "timestamptz": DATETIME_TZ, "json": JSON, "jsonb": JSON, "bytea": BINARY, "uuid": TEXT, "xml": TEXT,
            "time": TEXT, "timetz": TEXT, "interval": TEXT, "inet": TEXT, "cidr": TEXT, "macaddr": TEXT}
# pg_type.typcategory: S string, E enum, I network address, V bit string -> text; A array, G geometric -> unsupported
_BY_CATEGORY = {"S": TEXT, "E": TEXT, "I": TEXT, "V": TEXT, "B": BOOLEAN, "N": DECIMAL, "A": OTHER, "G": OTHER}


def pg_category(typname: str, typcategory: str) -> str:
    return _BY_NAME.get(typname) or _BY_CATEGORY.get(typcategory, OTHER)


class PostgreSQL(SqlSystem):
    label = "PostgreSQL"
    snapshot = "REPEATABLE READ, READ ONLY transaction"

    def connect(self) -> None:
        c = self.conn
        kw = dict(host=c.host, port=c.server_port, dbname=c.database, user=c.user, password=self.secret("password"),
                  connect_timeout=c.connect_timeout_seconds, application_name="gsdp", sslmode=c.tls.mode,
                  options="-c TimeZone=UTC")
        if c.tls.ca_file:
            kw["sslrootcert"] = c.tls.ca_file
        try:
            self.db = psycopg.connect(**kw)
        except psycopg.OperationalError as e:
            raise self.failed("cannot connect", e, _hint(str(e))) from None

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            try:
                db.rollback()
            finally:
                db.close()

    def begin_snapshot(self) -> None:
        # The clock and the oldest open transaction are read just BEFORE the snapshot (in a transaction of
        # their own): a transaction open then may commit after the snapshot began, its rows not in it, so the
        # upper bound must stay below its start; read inside the snapshot, it could have committed and gone
        # from pg_stat_activity already, and the bound would pass its rows for good.
        self._now = self._read_now()
        self._inflight = self._read_inflight()
        self.db.rollback()
        self.db.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        self.db.read_only = True

    def describe(self, dataset: str) -> list[Column]:
        with self.db.cursor() as cur:
            cur.execute(describe_sql(dataset))
            desc = list(cur.description or [])
            oids = sorted({d.type_code for d in desc})
            cur.execute("SELECT oid::int8, typname, typcategory, format_type(oid, NULL) FROM pg_type WHERE oid = ANY(%s)",
                        [oids])
            types = {r[0]: r[1:] for r in cur.fetchall()}
        # psycopg loads binary values only of the types it knows; an enum, money or an extension type would
        # come as raw bytes: then rows are read as text (psycopg still makes the known types Python values)
        self._binary = all(self.db.adapters.get_loader(d.type_code, psycopg.pq.Format.BINARY) is not None
                           for d in desc)
        out = []
        for d in desc:
            typname, cat, shown = types.get(d.type_code, ("unknown", "X", f"oid {d.type_code}"))
            out.append(Column(d.name, shown, pg_category(typname, cat)))
        return out

    def server_now(self) -> datetime:
        return self._now if getattr(self, "_now", None) is not None else self._read_now()

    def inflight_since(self) -> Optional[datetime]:
        return self._inflight if hasattr(self, "_inflight") else self._read_inflight()

    def _read_now(self) -> datetime:
        with self.db.cursor() as cur:
            cur.execute("SELECT clock_timestamp()")
            return utc(cur.fetchone()[0])

    def _read_inflight(self) -> Optional[datetime]:
        # Other sessions' transaction starts are visible to superusers and members of pg_read_all_stats
        # (pg_monitor); for anyone else they are NULL and the visibility lag alone guards.
        with self.db.cursor() as cur:
            cur.execute("SELECT min(xact_start) FROM pg_stat_activity WHERE xact_start IS NOT NULL "
                        "AND pid <> pg_backend_pid() AND datname = current_database() AND backend_type = 'client backend'")
            v = cur.fetchone()[0]
        return utc(v) if v is not None else None

    def can_write(self, table: str) -> bool:
        try:
            with self.db.cursor() as cur:
                cur.execute("SELECT has_table_privilege(%s, 'INSERT') OR has_table_privilege(%s, 'UPDATE')",
                            [table, table])
                return bool(cur.fetchone()[0])
        except psycopg.Error:
            return False

    def placeholder(self, n: int) -> str:
        # psycopg reads every '%' of a statement with parameters as a placeholder, a '%' in a user's query
        # too: the bounds sit at markers no query text can hold (a token of this session); rows() doubles
        # every other '%' and turns the markers into %s
        if not hasattr(self, "_marker"):
            self._marker = secrets.token_hex(8)
        return f"/*gsdp:{self._marker}:{n}*/"

    def rows(self, sql: str, params: list) -> Iterator[list[tuple]]:
        sql = sql.replace("%", "%%")  # psycopg reads the statement for placeholders even with no parameters
        for n in range(1, len(params) + 1):
            sql = sql.replace(self.placeholder(n), "%s")
        with self.db.cursor(name="gsdp_sync", binary=getattr(self, "_binary", True)) as cur:
            cur.itersize = self.fetch_rows
            cur.execute(sql, params)
            while True:
                chunk = cur.fetchmany(self.fetch_rows)
                if not chunk:
                    return
                yield chunk


def _hint(text: str) -> str:
    t = text.lower()
    if "password authentication failed" in t or "authentication failed" in t:
        return ("Check the user in config and the password in its env var (connections.<name>.auth.env), then run "
                "`gsdp connections test <name>`.")
    if "does not exist" in t and "database" in t:
        return "Check `database` in the connection's config."
    if "ssl" in t:
        return "Check the connection's tls settings (mode, ca_file) against what the server offers."
    return ("Check host and port in the connection's config, that the server runs and accepts TCP connections from "
            "this machine (listen_addresses, pg_hba.conf, firewall).")
