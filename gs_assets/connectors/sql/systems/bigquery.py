"""Google BigQuery through google-cloud-bigquery: a service account's JSON key (the text, or a path
to the file) for credentials, an optional custom `endpoint` (private connectivity), the job's
`location`; rows from one query job, paged with `result(page_size=fetch_rows)`.

Snapshot: a BigQuery query reads its tables as of the moment it starts, and a sync's rows come from
one query job, so they are one consistent snapshot; the bounds come from CURRENT_TIMESTAMP() read
just before. describe is a dry run (free: it only plans the query). Parameters are named (`@p1`)
and typed: BigQuery does not compare DATETIME with TIMESTAMP, so a datetime bound takes the type of
the column it is compared with (a naive DATETIME column gets the bound in UTC without a zone).
"""

from __future__ import annotations

import json
import os
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Iterator, Optional

from gs_assets.connectors.sql.statements import describe_sql
from gs_assets.connectors.sql.systems.base import (BINARY, BOOLEAN, DATE, DATETIME, DATETIME_TZ, DECIMAL, FLOAT,
                                                   INTEGER, JSON, OTHER, TEXT, Column, ConnectFailed, SqlSystem, utc)

SCOPE = "https://www.googleapis.com/auth/bigquery"
_TYPES = {"STRING": TEXT, "INT64": INTEGER, "INTEGER": INTEGER, "NUMERIC": DECIMAL, "BIGNUMERIC": DECIMAL,
          "DECIMAL": DECIMAL, "BIGDECIMAL": DECIMAL, "FLOAT64": FLOAT, "FLOAT": FLOAT, "BOOL": BOOLEAN,
          "BOOLEAN": BOOLEAN, "DATE": DATE, "DATETIME": DATETIME, "TIMESTAMP": DATETIME_TZ, "JSON": JSON,
          "BYTES": BINARY, "TIME": TEXT, "GEOGRAPHY": OTHER, "RECORD": OTHER, "STRUCT": OTHER, "RANGE": OTHER,
          "INTERVAL": OTHER}
# `d`.`col` >= @p1 as sql/statements.py writes the bounds
_BOUND = re.compile(r"d\.`((?:[^`\\]|\\.)+)`\s*(?:>=|<=|<|>|=)\s*@p(\d+)")


def bq_category(field) -> tuple[str, str]:
    """(category, type as BigQuery shows it) of a schema field; arrays and structs are `other`."""
    t = (field.field_type or "").upper()
    if (field.mode or "").upper() == "REPEATED":
        return OTHER, f"ARRAY<{t}>"
    return _TYPES.get(t, OTHER), t


class BigQueryError(Exception):
    """An error the BigQuery API answered (its reason and message)."""


class BigQuery(SqlSystem):
    label = "Google BigQuery"
    snapshot = "one query job (BigQuery reads a snapshot of its tables as of the query's start)"

    def connect(self) -> None:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc
        from google.auth.transport.requests import Request
        from google.cloud import bigquery
        from google.oauth2 import service_account

        c = self.conn
        self._types: dict[str, str] = {}  # column -> BigQuery type, from describe (typing the bounds)
        info = self._service_account_info()
        try:
            creds = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
        except (ValueError, KeyError, TypeError) as e:
            raise ConnectFailed(f"connection {self.connection} ({self.label} {self.where}): the service-account "
                                f"key in {self._var()} does not load ({_why_key(e)}). Download a new JSON key for "
                                "the service account and put it (or its path) there.") from None
        try:
            creds.refresh(Request())  # the token endpoint checks the key now, not mid-sync
        except auth_exc.TransportError as e:
            raise self.failed("cannot reach the token endpoint", e,
                              "Check the network path to the key's token_uri.") from None
        except auth_exc.GoogleAuthError as e:
            if isinstance(e, auth_exc.RefreshError) and e.args and isinstance(e.args[0], str):
                e = auth_exc.RefreshError(e.args[0])  # "invalid_grant: ...", without the response's repeat
            raise self.failed("the service account's token request was refused", e,
                              "Check that the key in the env var is current (not deleted or disabled in IAM) and "
                              "that this machine reaches the key's token_uri.") from None
        options = {"api_endpoint": c.endpoint} if c.endpoint else None
        self.client = bigquery.Client(project=c.project, credentials=creds, location=c.location,
                                      client_options=options)
        try:  # a dry run: checks the endpoint, the project and the right to run jobs, at no cost
            self._dry_run("SELECT 1")
        except gexc.GoogleAPICallError as e:
            raise self.failed("the BigQuery API refused a dry-run query", e, _hint(e)) from None
        except Exception as e:  # noqa: BLE001 - requests' connection errors
            raise self.failed("cannot reach the BigQuery API", e,
                              "Check `endpoint` in the connection's config (default https://bigquery.googleapis.com) "
                              "and the network path to it.") from None

    def _var(self) -> str:
        return self.conn.secret_env(self.connection)["service_account_json"]

    def _service_account_info(self) -> dict:
        text = (self.secret("service_account_json") or "").strip()
        where = f"connection {self.connection} ({self.label} {self.where})"
        if text and not text.startswith("{"):
            if not os.path.isfile(text):
                raise ConnectFailed(f"{where}: {self._var()} holds neither service-account JSON nor the path of a "
                                    "file that exists. Put the key's JSON (or its path) there.")
            with open(text, encoding="utf-8") as f:
                text = f.read()
        try:
            info = json.loads(text)
        except ValueError:
            raise ConnectFailed(f"{where}: the service-account key in {self._var()} is not JSON. Put the key file's "
                                "JSON (or its path) there.") from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise ConnectFailed(f"{where}: the JSON in {self._var()} is not a service-account key (its `type` must "
                                "be service_account). Create a key for the service account in IAM and use it.")
        return info

    def _dry_run(self, sql: str, params: Optional[list] = None):
        from google.cloud import bigquery
        cfg = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False, query_parameters=params or [])
        return self.client.query(sql, job_config=cfg, location=self.conn.location)

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()

    def begin_snapshot(self) -> None:
        return None  # each query job is its own snapshot; a sync's rows are one job (module docstring)

    def quote(self, ident: str) -> str:
        return "`" + ident.replace("\\", "\\\\").replace("`", "\\`") + "`"

    def placeholder(self, n: int) -> str:
        return f"@p{n}"

    def describe(self, dataset: str) -> list[Column]:
        from google.api_core.exceptions import GoogleAPICallError
        try:
            job = self._dry_run(describe_sql(dataset))
        except GoogleAPICallError as e:  # BigQuery's own message, without the request's URL
            first = (e.errors or [{}])[0] if isinstance(e.errors, list) else {}
            raise BigQueryError(f"{e.code} {first.get('reason', '')}: {first.get('message') or e.message}"
                                if first else str(e)) from None
        out = []
        for f in job.schema or []:
            cat, shown = bq_category(f)
            out.append(Column(f.name, shown, cat))
            self._types[f.name.lower()] = shown
        return out

    def server_now(self) -> datetime:
        rows = list(self.client.query("SELECT CURRENT_TIMESTAMP()", location=self.conn.location).result())
        return utc(rows[0][0])

    def parameters(self, sql: str, params: list) -> list:
        """Typed named parameters p1.. for `params`; datetimes take the type of their column."""
        from google.cloud.bigquery import ScalarQueryParameter
        column_of = {int(n): re.sub(r"\\(.)", r"\1", col) for col, n in _BOUND.findall(sql)}
        out = []
        for i, v in enumerate(params, start=1):
            col_type = self._types.get(column_of.get(i, "").lower(), "")
            if isinstance(v, bool):
                t = "BOOL"
            elif isinstance(v, int):
                t = "INT64"
            elif isinstance(v, float):
                t = "FLOAT64"
            elif isinstance(v, Decimal):
                t = "BIGNUMERIC" if col_type == "BIGNUMERIC" else "NUMERIC"
            elif isinstance(v, datetime):
                if col_type == "DATETIME":
                    t, v = "DATETIME", utc(v).replace(tzinfo=None) if v.tzinfo else v
                elif col_type == "TIMESTAMP" or v.tzinfo is not None:
                    t, v = "TIMESTAMP", utc(v)
                else:
                    t = "DATETIME"
            elif isinstance(v, date):
                t = "DATE"
            elif isinstance(v, (bytes, bytearray)):
                t = "BYTES"
            else:
                t, v = "STRING", (None if v is None else str(v))
            out.append(ScalarQueryParameter(f"p{i}", t, v))
        return out

    def rows(self, sql: str, params: list) -> Iterator[list[tuple]]:
        from google.cloud import bigquery
        cfg = bigquery.QueryJobConfig(query_parameters=self.parameters(sql, params))
        job = self.client.query(sql, job_config=cfg, location=self.conn.location)
        result = job.result(page_size=self.fetch_rows)
        for page in result.pages:
            chunk = [tuple(r.values()) for r in page]
            if chunk:
                yield chunk


def _why_key(err: BaseException) -> str:
    t = str(err)
    if "private_key" in t and ("missing" in t.lower() or isinstance(err, KeyError)):
        return "it has no private_key"
    if "client_email" in t or "token_uri" in t:
        return "it lacks client_email or token_uri"
    return "its private_key is not a PEM RSA key"


def _hint(err) -> str:
    code = getattr(err, "code", None)
    if code == 401:
        return "The token was refused: check the service account's key (`gsdp connections test <name>`)."
    if code == 403:
        return ("Grant the service account roles/bigquery.jobUser on the project in config (and "
                "roles/bigquery.dataViewer on the datasets it reads).")
    if code == 404:
        return "Check `project` (and `location`) in the connection's config."
    return "Check project, location and endpoint in the connection's config."

