"""PostgreSQL through psycopg 3: REPEATABLE READ, READ ONLY; rows from a named (server-side) cursor;
column types from pg_type (its category letter covers enums, domains and extension types)."""

from __future__ import annotations

import io
import secrets
from datetime import datetime
from typing import Iterator, Optional, Sequence

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

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


COPY_BLOCK_BYTES = 16 << 20  # CSV text parsed per Arrow batch


def csv_cut(buf: bytearray) -> int:
    """The end (exclusive) of the last complete CSV row in `buf`: after a newline outside quotes (an
    embedded quote is doubled, so the parity of the quotes before a newline says inside or out);
    0 when there is none."""
    total = buf.count(b'"')
    pos = len(buf)
    while True:
        nl = buf.rfind(b"\n", 0, pos)
        if nl < 0:
            return 0
        if (total - buf.count(b'"', nl)) % 2 == 0:
            return nl + 1
        pos = nl


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

    def select_expr(self, column_sql: str, category: str) -> str:
        # COPY writes booleans as t/f: the text every other system gives (and the engine reads) is true/false
        if category == BOOLEAN:
            return f"CASE WHEN {column_sql} THEN 'true' WHEN NOT {column_sql} THEN 'false' END"
        return column_sql

    def batches(self, sql: str, params: list, names: Sequence[str], categories: Sequence[str]) -> Iterator[pa.RecordBatch]:
        """COPY (SELECT ...) TO STDOUT as CSV, cut at row boundaries and parsed by Arrow: the server
        writes the text, no Python object is made per value (several times faster than a cursor).
        COPY runs inside the sync's read-only REPEATABLE READ transaction like any SELECT."""
        read = pacsv.ReadOptions(column_names=list(names), use_threads=True)
        parse = pacsv.ParseOptions(newlines_in_values=True)
        convert = pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=True,
                                       quoted_strings_can_be_null=False, null_values=[""])

        def parse_block(block: bytes) -> Iterator[pa.RecordBatch]:
            table = pacsv.read_csv(io.BytesIO(block), read_options=read, parse_options=parse, convert_options=convert)
            yield from table.to_batches()

        buf = bytearray()
        with self.db.cursor() as cur:
            with cur.copy(f"COPY ({self._psycopg_sql(sql, params)}) TO STDOUT (FORMAT csv)", params) as copy:
                for data in copy:
                    buf += data
                    if len(buf) >= COPY_BLOCK_BYTES:
                        cut = csv_cut(buf)
                        if cut:
                            yield from parse_block(bytes(buf[:cut]))
                            del buf[:cut]
        if buf:
            yield from parse_block(bytes(buf))

    def placeholder(self, n: int) -> str:
        # psycopg reads every '%' of a statement with parameters as a placeholder, a '%' in a user's query
        # too: the bounds sit at markers no query text can hold (a token of this session); rows() doubles
        # every other '%' and turns the markers into %s
        if not hasattr(self, "_marker"):
            self._marker = secrets.token_hex(8)
        return f"/*gsdp:{self._marker}:{n}*/"

    def _psycopg_sql(self, sql: str, params: list) -> str:
        """The statement as psycopg takes it with `params` (a list, empty too: then psycopg still reads
        placeholders): every '%' doubled, the markers made %s."""
        sql = sql.replace("%", "%%")
        for n in range(1, len(params) + 1):
            sql = sql.replace(self.placeholder(n), "%s")
        return sql

    def rows(self, sql: str, params: list) -> Iterator[list[tuple]]:
        with self.db.cursor(name="gsdp_sync", binary=getattr(self, "_binary", True)) as cur:
            cur.itersize = self.fetch_rows
            cur.execute(self._psycopg_sql(sql, params), list(params))
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
