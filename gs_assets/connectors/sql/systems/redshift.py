"""Amazon Redshift through redshift-connector: one SERIALIZABLE READ ONLY transaction (Redshift's
snapshot isolation), rows through DECLARE ... CURSOR / FETCH FORWARD (the driver itself buffers a
whole result).

Tested against PostgreSQL 15, whose wire protocol and cursors Redshift speaks
(tests/gs_assets/connectors/sql/test_sync_redshift.py). What differs there, and what this module
keeps for Redshift itself:
- the driver's start-up message carries parameters only Redshift knows (client_protocol_version,
  driver_version, ...) and it parses `server_version` as a plain number (Redshift says 8.0.2):
  PostgreSQL refuses the first and Debian's build says `15.18 (Debian ...)`, so the tests put a
  relay in front of PostgreSQL that plays Redshift's front end (tests/.../redshift_front.py);
- PostgreSQL logs in with SCRAM-SHA-256, which the driver fails on (_ScramClient below);
- Redshift materialises a cursor's whole result on its leader node before the first FETCH (its
  DECLARE docs advise UNLOAD for very large results); memory here stays flat all the same;
- no oldest-open-transaction bound: the visibility lag alone guards (inflight_since is None).
"""

from __future__ import annotations

import secrets
from datetime import date, datetime
from typing import Iterator

import redshift_connector
import redshift_connector.core as _driver_core

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


class _ScramClient(_driver_core.ScramClient):
    """redshift-connector 2.2 splits PostgreSQL's AuthenticationSASL mechanism list (names each ended by
    a NUL, the list by one more) into the names plus an empty one, and scramp 1.4 refuses the empty
    name, so a SCRAM-SHA-256 login (PostgreSQL's default) fails before a password is sent. Only logins
    the server runs as SCRAM (SASL) take this path; the driver's other password exchanges are untouched."""

    def __init__(self, mechanisms, *args, **kwargs):
        super().__init__([m for m in mechanisms if m], *args, **kwargs)


if not issubclass(_driver_core.ScramClient, _ScramClient):
    _driver_core.ScramClient = _ScramClient


class Redshift(SqlSystem):
    label = "Amazon Redshift"
    snapshot = "SERIALIZABLE READ ONLY transaction"

    def connect(self) -> None:
        c = self.conn
        kw = dict(host=c.host, port=c.server_port, database=c.database, user=c.user,
                  password=self.secret("password") or "", timeout=c.connect_timeout_seconds,
                  application_name="gsdp")
        # The driver checks a server's certificate against its bundled Redshift CAs and the system's
        # (sslmode verify-ca or verify-full; it has no unverified TLS and takes no CA file): require is
        # verify-ca here. prefer falls back to plain TCP only when the server refuses TLS, never after a
        # TLS handshake or a login failed.
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
            except (redshift_connector.Error, OSError) as e:  # OSError: refused, timed out, TLS (ssl.SSLError)
                err = e
                if not (ssl and c.tls.mode == "prefer" and _refuses_tls(e)):
                    break
        raise self.failed("cannot connect", _ServerSaid(err), _hint(err))

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
            try:
                cur.execute(describe_sql(dataset))
            except redshift_connector.Error as e:  # a dropped table, a bad query: the server's message alone
                raise _ServerSaid(e) from None
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

    def placeholder(self, n: int) -> str:
        # DECLARE takes no bind parameters: rows() puts the bounds (values the sync computed, never user
        # text) in as literals, at markers no query text can hold (a token made for this session)
        return f"/*gsdp:{self._marker}:{n}*/"

    @property
    def _marker(self) -> str:
        if not hasattr(self, "_marker_token"):
            self._marker_token = secrets.token_hex(8)
        return self._marker_token

    def rows(self, sql: str, params: list) -> Iterator[list[tuple]]:
        stmt = sql
        for n, p in enumerate(params, start=1):
            stmt = stmt.replace(self.placeholder(n), _literal(p))
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


def _refuses_tls(err: BaseException) -> bool:
    """The server answered the TLS request with no (the driver's InterfaceError "Server refuses SSL")."""
    return isinstance(err, redshift_connector.InterfaceError) and "refuses ssl" in str(err).lower()


class _ServerSaid(Exception):
    """The driver's error as one line: the server's message (its error fields carry it under 'M')."""

    def __init__(self, err: BaseException):
        first = err.args[0] if err.args else None
        if isinstance(first, dict) and first.get("M"):
            text = str(first["M"])
        elif _refuses_tls(err):
            text = "the server refuses TLS"
        elif len(err.args) == 2 and isinstance(err.args[1], BaseException):  # ('communication error', OSError)
            cause = err.args[1]
            text = f"{err.args[0]}: {getattr(cause, 'strerror', None) or cause}"
        else:
            text = str(err).strip() or type(err).__name__
        super().__init__(text)


def _hint(err: BaseException) -> str:
    first = err.args[0] if err.args else None
    code = first.get("C") if isinstance(first, dict) else None
    if code in ("28P01", "28000"):
        return ("Check the user in config and the password in its env var (connections.<name>.auth.env), then run "
                "`gsdp connections test <name>`.")
    if code == "3D000":
        return "Check `database` in the connection's config."
    if _refuses_tls(err) or "ssl" in str(err).lower() or "certificate" in str(err).lower():
        return ("Check the connection's tls mode against what the server offers (prefer takes plain TCP from a "
                "server without TLS; require and verify-* need TLS with a certificate the driver trusts).")
    return ("Check host and port in the connection's config and that the cluster accepts connections from this "
            "machine (security group, publicly accessible setting).")
