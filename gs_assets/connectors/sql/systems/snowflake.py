"""Snowflake through snowflake-connector-python: key-pair auth (the PEM loaded with cryptography, an
encrypted key opened with its passphrase) or a password; the session in UTC; rows fetched
`fetch_rows` at a time (the connector downloads the result's chunks lazily).

Snapshot: Snowflake runs every statement READ COMMITTED: one statement reads one consistent
snapshot (the data committed when it started), and a transaction does not make two statements read
the same one. A sync's rows come from one SELECT, so they are consistent; the bounds around it come
from the server's clock read just before (server_now), so a row committed between the two reads is
either below the upper bound (and read) or above it (and left for the next sync). Time travel
(`AT(TIMESTAMP => ...)`) could pin later reads to one instant, but it applies per table (not to a
user's query) and needs a retention period: not used.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Iterator

import snowflake.connector
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from snowflake.connector.constants import FIELD_ID_TO_NAME

from gs_assets.connectors.sql.statements import describe_sql
from gs_assets.connectors.sql.systems.base import (BINARY, BOOLEAN, DATE, DATETIME, DATETIME_TZ, DECIMAL, FLOAT,
                                                   INTEGER, JSON, OTHER, TEXT, Column, ConnectFailed, SqlSystem, utc)

# FIELD_ID_TO_NAME's names -> category (FIXED splits by scale: 0 integer, else decimal)
_BY_NAME = {"REAL": FLOAT, "TEXT": TEXT, "DATE": DATE, "TIMESTAMP": DATETIME, "TIMESTAMP_NTZ": DATETIME,
            "TIMESTAMP_LTZ": DATETIME_TZ, "TIMESTAMP_TZ": DATETIME_TZ, "VARIANT": JSON, "OBJECT": JSON,
            "ARRAY": JSON, "MAP": JSON, "BINARY": BINARY, "TIME": TEXT, "BOOLEAN": BOOLEAN, "GEOGRAPHY": OTHER,
            "GEOMETRY": OTHER, "VECTOR": OTHER, "FILE": OTHER}


def sf_category(type_code: int, scale) -> tuple[str, str]:
    """(category, type name) of a result column, from the connector's description."""
    name = FIELD_ID_TO_NAME.get(type_code) or f"type {type_code}"
    if name == "FIXED":
        return (INTEGER if not scale else DECIMAL), ("NUMBER" if not scale else f"NUMBER(scale {scale})")
    return _BY_NAME.get(name, OTHER), name


class Snowflake(SqlSystem):
    label = "Snowflake"
    snapshot = "one statement (Snowflake reads each statement's own snapshot; the bounds come from the server clock)"

    def connect(self) -> None:
        c = self.conn
        kw = dict(account=c.account, user=c.user, database=c.database, warehouse=c.warehouse, role=c.role,
                  login_timeout=c.connect_timeout_seconds, application="gsdp",
                  session_parameters={"TIMEZONE": "UTC", "QUERY_TAG": "gsdp"})
        if c.auth.method == "key_pair":
            kw["authenticator"] = "SNOWFLAKE_JWT"
            kw["private_key"] = self._private_key()
        else:
            kw["password"] = self.secret("password") or ""
        kw = {k: v for k, v in kw.items() if v is not None}
        for k, v in self.options.get("connect_kwargs", {}).items():  # test seam: host/port/protocol of a fake server
            kw[k] = {**kw[k], **v} if k == "session_parameters" else v
        try:
            self.db = snowflake.connector.connect(**kw)
        except snowflake.connector.errors.Error as e:
            raise self.failed("cannot connect", e, _hint(e)) from None

    def _private_key(self):
        """The key object from the PEM text in the secret (or a path to a PEM file); never in a message."""
        pem = self.secret("private_key") or ""
        passphrase = self.secret("private_key_passphrase")
        var = self.conn.secret_env(self.connection)
        if pem and "-----BEGIN" not in pem and os.path.isfile(pem.strip()):
            with open(pem.strip(), "rb") as f:
                pem = f.read().decode("utf-8", "replace")
        if "\\n" in pem and "\n" not in pem.strip():
            pem = pem.replace("\\n", "\n")  # a PEM kept on one line in an env file
        try:
            return load_pem_private_key(pem.strip().encode(), password=passphrase.encode() if passphrase else None)
        except TypeError as e:  # encrypted without a passphrase, or a passphrase for a plain key
            why = ("the private key is encrypted and no passphrase is set" if "not given" in str(e) else
                   "a passphrase is set but the private key is not encrypted")
            raise ConnectFailed(f"connection {self.connection} ({self.label} {self.where}): cannot load the private "
                                f"key: {why}. Set or unset {var['private_key_passphrase']}.") from None
        except ValueError as e:
            why = ("the passphrase does not open the private key" if "decrypt" in str(e).lower() or "password"
                   in str(e).lower() else "the private key is not a PEM private key")
            raise ConnectFailed(f"connection {self.connection} ({self.label} {self.where}): cannot load the private "
                                f"key: {why}. Put the PEM text (-----BEGIN PRIVATE KEY----- ...) in "
                                f"{var['private_key']} and its passphrase, if it has one, in "
                                f"{var['private_key_passphrase']}.") from None
        except Exception:  # noqa: BLE001 - cryptography's other errors: unsupported key types
            raise ConnectFailed(f"connection {self.connection} ({self.label} {self.where}): cannot load the private "
                                f"key in {var['private_key']}: not an RSA or EC private key in PEM.") from None

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            try:
                db.rollback()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            db.close()

    def begin_snapshot(self) -> None:
        # Nothing to begin: see the module's docstring. The session is read-only by the role's grants.
        return None

    def describe(self, dataset: str) -> list[Column]:
        cur = self.db.cursor()
        try:
            cur.execute(describe_sql(dataset))
            out = []
            for d in cur.description or []:
                cat, shown = sf_category(d.type_code, d.scale)
                out.append(Column(d.name, shown, cat))
            return out
        finally:
            cur.close()

    def server_now(self) -> datetime:
        cur = self.db.cursor()
        try:
            cur.execute("SELECT CURRENT_TIMESTAMP()")
            return utc(cur.fetchone()[0])  # TIMESTAMP_LTZ in the session's time zone (UTC)
        finally:
            cur.close()

    def rows(self, sql: str, params: list) -> Iterator[list[tuple]]:
        cur = self.db.cursor()
        try:
            cur.execute(sql, params or None)
            while True:
                chunk = cur.fetchmany(self.fetch_rows)
                if not chunk:
                    return
                yield [tuple(r) for r in chunk]
        finally:
            cur.close()


def _hint(err: BaseException) -> str:
    t = str(err).lower()
    if "incorrect username or password" in t or "jwt" in t or "390144" in t or "390100" in t:
        return ("Check the user and the account in config and the key (or password) in its env var "
                "(connections.<name>.auth.env): the user's RSA_PUBLIC_KEY must be the key's public half. Then run "
                "`gsdp connections test <name>`.")
    if "warehouse" in t or "role" in t or "database" in t:
        return "Check warehouse, role and database in the connection's config and the role's grants."
    return ("Check the account identifier (orgname-account) in the connection's config and that this machine "
            "reaches <account>.snowflakecomputing.com on port 443.")
