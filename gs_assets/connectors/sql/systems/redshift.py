"""Amazon Redshift through redshift-connector: one SERIALIZABLE READ ONLY transaction (Redshift's
snapshot isolation), rows through DECLARE ... CURSOR / FETCH FORWARD (the driver itself buffers a
whole result). Tested against PostgreSQL, whose wire protocol and cursors Redshift speaks."""

from __future__ import annotations

from datetime import date, datetime
from typing import Iterator

import redshift_connector

from gs_assets.connectors.sql.statements import describe_sql
from gs_assets.connectors.sql.systems.base import (BINARY, BOOLEAN, DATE, DATETIME, DATETIME_TZ, DECIMAL, FLOAT,
                                                   INTEGER, JSON, OTHER, TEXT, Column, SqlSystem, utc)

# Redshift's types by OID (its pg_type has no typcategory): SUPER and json as JSON, VARBYTE as binary
_OIDS = {16: (BOOLEAN, "boolean"), 20: (INTEGER, "bigint"), 21: (INTEGER, "smallint"), 23: (INTEGER, "integer"),
         26: (INTEGER, "oid"), 700: (FLOAT, "real"), 701: (FLOAT, "double precision"), 1700: (DECIMAL, "numeric"),
         25: (TEXT, "text"), 1042: (TEXT, "char"), 1043: (TEXT, "varchar"), 19: (TEXT, "name"), 18: (TEXT, "char"),
         1082: (DATE, "date"), 1114: (DATETIME, "timestamp"), 1184: (DATETIME_TZ, "timestamptz"),
         1083: (TEXT, "time"), 1266: (TEXT, "timetz"), 114: (JSON, "json"), 3802: (JSON, "jsonb"),
         4000: (JSON, "super"), 2950: (TEXT, "uuid"), 17: (BINARY, "bytea"), 6551: (BINARY, "varbyte"),
         3000: (OTHER, "geometry"), 3999: (OTHER, "geography"), 1186: (TEXT, "interval")}


class Redshift(SqlSystem):
    label = "Amazon Redshift"
    snapshot = "SERIALIZABLE READ ONLY transaction"

    def connect(self) -> None:
        c = self.conn
        kw = dict(host=c.host, port=c.server_port, database=c.database, user=c.user,
                  password=self.secret("password") or "", timeout=c.connect_timeout_seconds,
                  application_name="gsdp")
        modes = {"disable": [False], "prefer": [True, False], "require": [True],
                 "verify-ca": [True], "verify-full": [True]}[c.tls.mode]
        err: BaseException = RuntimeError("no attempt")
        for ssl in modes:
            try:
                extra = {"ssl": ssl}
                if ssl:
                    extra["sslmode"] = "verify-full" if c.tls.mode == "verify-full" else "verify-ca"
                self.db = redshift_connector.connect(**kw, **extra)
                self.db.autocommit = True  # the snapshot's BEGIN is ours
                return
            except (redshift_connector.InterfaceError, redshift_connector.OperationalError,
                    redshift_connector.ProgrammingError) as e:
                err = e
                if not (ssl and c.tls.mode == "prefer"):
                    break
        raise self.failed("cannot connect", err, "Check host, port, database, user and the password's env var "
                          "(`gsdp connections test <name>`), and the tls mode against what the cluster requires.")

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            try:
                with db.cursor() as cur:
                    cur.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            db.close()

    def begin_snapshot(self) -> None:
        with self.db.cursor() as cur:
            cur.execute("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY")
            cur.execute("SET TIME ZONE 'UTC'")

    def describe(self, dataset: str) -> list[Column]:
        with self.db.cursor() as cur:
            cur.execute(describe_sql(dataset))
            out = []
            for d in cur.description or []:
                name = d[0].decode() if isinstance(d[0], bytes) else d[0]
                cat, shown = _OIDS.get(d[1], (OTHER, f"oid {d[1]}"))
                out.append(Column(name, shown, cat))
            return out

    def server_now(self) -> datetime:
        with self.db.cursor() as cur:
            cur.execute("SELECT CURRENT_TIMESTAMP")
            return utc(cur.fetchone()[0])

    def rows(self, sql: str, params: list) -> Iterator[list[tuple]]:
        # DECLARE takes no bind parameters: the bounds (values the sync computed, never user text) are literals.
        stmt = sql % tuple(_literal(p) for p in params) if params else sql
        with self.db.cursor() as cur:
            cur.execute(f"DECLARE gsdp_sync NO SCROLL CURSOR FOR {stmt}")
            try:
                while True:
                    cur.execute(f"FETCH FORWARD {int(self.fetch_rows)} FROM gsdp_sync")
                    chunk = cur.fetchall()
                    if not chunk:
                        return
                    yield [tuple(r) for r in chunk]
            finally:
                cur.execute("CLOSE gsdp_sync")


def _literal(v) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, datetime):
        return ("TIMESTAMPTZ '" if v.tzinfo else "TIMESTAMP '") + v.isoformat(sep=" ") + "'"
    if isinstance(v, date):
        return f"DATE '{v.isoformat()}'"
    return "'" + str(v).replace("'", "''") + "'"
