"""Config models of the SQL kind: a connection to a database or warehouse (`type: sql`, `system:
postgresql`), and a job's source (a dataset of it: a table or view with a column list, or a
read-only SELECT the user writes).

Secrets never sit in config: a connection names, per secret its auth method needs, the env var
that holds it (default `GSDP_<CONNECTION>_<SECRET>`, upper case). A query is checked at load to be
one SELECT (sqlglot, in the system's dialect); the sync also runs it in a read-only transaction
where the system has one.
"""

from __future__ import annotations

import re
from datetime import date
from typing import ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gs_assets.config.jobs import ConnectionBase, Job, Operation, SourceBase
from gs_assets.connectors.incremental import secret_env_name
from gs_assets.connectors.sql.statements import QueryRefused, check_select

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A table or view name: schema.table or table (database.schema.table on Snowflake, project.dataset.table on
# BigQuery); each part a plain identifier, or double-quoted / backquoted.
_PART = r'(?:[A-Za-z_][A-Za-z0-9_$-]*|"[^"]+"|`[^`]+`)'
TABLE_NAME = re.compile(rf"^{_PART}(?:\.{_PART}){{0,2}}$")

# system -> (auth methods it offers -> the secrets each needs), its default port, its sqlglot dialect
SYSTEMS: dict[str, dict] = {
    "postgresql": {"auth": {"password": ["password"]}, "port": 5432, "dialect": "postgres",
                   "label": "PostgreSQL"},
    "redshift": {"auth": {"password": ["password"]}, "port": 5439, "dialect": "redshift", "label": "Amazon Redshift"},
    "mysql": {"auth": {"password": ["password"]}, "port": 3306, "dialect": "mysql", "label": "MySQL"},
    "mariadb": {"auth": {"password": ["password"]}, "port": 3306, "dialect": "mysql", "label": "MariaDB"},
    "snowflake": {"auth": {"key_pair": ["private_key", "private_key_passphrase"], "password": ["password"]},
                  "port": 443, "dialect": "snowflake", "label": "Snowflake"},
    "bigquery": {"auth": {"service_account": ["service_account_json"]}, "port": 443, "dialect": "bigquery",
                 "label": "Google BigQuery"},
}
OPTIONAL_SECRETS = {"private_key_passphrase"}  # an unencrypted key needs none


class SqlAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: str = Field(default="", description=(
        "password (PostgreSQL, Redshift, MySQL/MariaDB, Snowflake), key_pair (Snowflake), service_account "
        "(BigQuery); default: the system's first"))
    env: dict[str, str] = Field(default_factory=dict, description=(
        "secret name -> the env var holding it (default GSDP_<CONNECTION>_<SECRET>); values never go in config"))


class SqlTls(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = Field(default="prefer", description=(
        "disable: plain TCP; prefer: TLS when the server offers it; require: TLS, any certificate; verify-ca / "
        "verify-full: TLS with the server's certificate checked against ca_file (and its host name)"))
    ca_file: Optional[str] = Field(default=None, description="a PEM file of the CA that signed the server's certificate")

    @model_validator(mode="after")
    def _ca(self) -> "SqlTls":
        if self.mode in ("verify-ca", "verify-full") and not self.ca_file:
            raise ValueError(f"tls.ca_file: tls mode {self.mode} checks the server's certificate against a CA file; "
                             "name it (ca_file: /path/to/ca.pem)")
        return self


class SqlConnection(ConnectionBase):
    """A connection to a database or warehouse the SQL kind reads from."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["sql"]
    system: str = Field(description="postgresql, mysql, mariadb, redshift, snowflake or bigquery")
    description: str = ""
    host: Optional[str] = Field(default=None, description="server host (not for Snowflake or BigQuery)")
    port: Optional[int] = Field(default=None, ge=1, le=65535, description="server port (default: the system's)")
    database: Optional[str] = Field(default=None, description="database to connect to (Snowflake: its database)")
    user: Optional[str] = Field(default=None, description=(
        "the login (a read-only role is enough and recommended: the SQL kind only reads)"))
    account: Optional[str] = Field(default=None, description="Snowflake account identifier (orgname-account)")
    warehouse: Optional[str] = Field(default=None, description="Snowflake virtual warehouse")
    role: Optional[str] = Field(default=None, description="Snowflake role")
    project: Optional[str] = Field(default=None, description="BigQuery project that runs (and pays for) the queries")
    location: Optional[str] = Field(default=None, description="BigQuery location (US, EU, ...)")
    endpoint: Optional[str] = Field(default=None, description=(
        "BigQuery: a custom API endpoint (private connectivity), default https://bigquery.googleapis.com"))
    auth: SqlAuth = Field(default_factory=SqlAuth)
    tls: SqlTls = Field(default_factory=SqlTls)
    connect_timeout_seconds: int = Field(default=15, ge=1, le=600)
    fetch_rows: int = Field(default=10_000, ge=100, le=1_000_000, description=(
        "rows fetched per round trip from the server-side cursor (memory stays flat whatever the table size)"))
    records_per_load: int = Field(default=200_000, ge=100, le=10_000_000, description=(
        "a sync commits a load every this many rows (at a change of the cursor value): a killed sync keeps "
        "what committed and the next one resumes there"))
    sync_start: date = Field(default=date(2020, 1, 1), description=(
        "the first re-sync window: the source assets' time partitions start here"))
    resync_window: Literal["monthly", "weekly", "daily"] = Field(default="monthly", description=(
        "the size of the time partitions a user re-syncs from the UI (the latest partition is `sync now`)"))

    @model_validator(mode="after")
    def _fits_its_system(self) -> "SqlConnection":
        if self.system not in SYSTEMS:
            raise ValueError(f"system: unknown SQL system {self.system!r}; known systems: {', '.join(SYSTEMS)}")
        sysdef = SYSTEMS[self.system]
        methods = sysdef["auth"]
        if not self.auth.method:
            self.auth.method = next(iter(methods))
        if self.auth.method not in methods:
            raise ValueError(f"auth.method: {self.system} takes {', '.join(methods)}, not {self.auth.method!r}")
        for secret, var in self.auth.env.items():
            if secret not in methods[self.auth.method]:
                raise ValueError(f"auth.env.{secret}: auth method {self.auth.method} takes the secrets "
                                 f"{', '.join(methods[self.auth.method])}, not {secret!r}")
            if not ENV_NAME.match(var):
                raise ValueError(f"auth.env.{secret}: {var!r} is not an env var name (the value goes in the "
                                 "environment, never in config)")
        need = {"snowflake": ["account", "user"], "bigquery": ["project"]}.get(self.system, ["host", "database", "user"])
        missing = [k for k in need if not getattr(self, k)]
        if missing:
            raise ValueError(f"{missing[0]}: a {sysdef['label']} connection needs {', '.join(need)}")
        return self

    @property
    def label(self) -> str:
        return SYSTEMS[self.system]["label"]

    @property
    def dialect(self) -> str:
        return SYSTEMS[self.system]["dialect"]

    @property
    def server_port(self) -> int:
        return self.port or SYSTEMS[self.system]["port"]

    @property
    def default_jobs(self) -> dict:
        return {}  # a database has no out-of-the-box jobs: its tables are the customer's own

    def default_job_templates(self) -> tuple[str, dict]:
        return "", {}

    def secret_env(self, connection_name: str) -> dict[str, str]:
        """secret name -> env var name, for the connection's auth method."""
        needed = SYSTEMS[self.system]["auth"][self.auth.method]
        return {s: self.auth.env.get(s, secret_env_name(connection_name, s)) for s in needed}

    def job_problem(self, job: Job) -> Optional[tuple[str, str]]:
        src: SqlSource = job.source  # type: ignore[assignment]
        if src.query is not None:
            try:
                check_select(src.query, self.dialect)
            except QueryRefused as e:
                return "source.query", str(e)
        if job.operation == Operation.INSERT and src.cursor is not None:
            return "operation", ("an incremental SQL sync re-reads the rows at its cursor boundary (and a re-synced "
                                 "window again), so insert would add them twice; use upsert with the primary key "
                                 "mapped to an identifier field")
        if job.deletes.policy.value != "ignore":
            by_target = {m.target: m.source for m in job.mappings}
            off = [i for i in job.identifiers if by_target.get(i) not in src.primary_key]
            if off:
                return "deletes", (f"a delete carries only the row's primary key ({', '.join(src.primary_key)}), but "
                                   f"identifier(s) {', '.join(off)} of this job are not mapped from it, so no delete "
                                   "could match a record; map the primary key to the identifier, or use deletes: "
                                   "{policy: ignore}")
            if src.soft_delete is None and src.key_check is None:
                return "deletes", ("this job applies deletes, but its source reports none: give the source a "
                                   "soft_delete column or a key_check (a periodic comparison of keys), or use "
                                   "deletes: {policy: ignore}")
        return None


class SqlCursor(BaseModel):
    model_config = ConfigDict(extra="forbid")
    column: str = Field(description="a timestamp column set on every insert and update, or an ever-growing sequence")
    type: Literal["timestamp", "sequence"] = "timestamp"
    lookback_seconds: int = Field(default=300, ge=0, description=(
        "timestamp cursors: each sync re-reads this far below the stored cursor (transactions that committed "
        "late with an older timestamp); the upsert absorbs what is read again"))
    visibility_lag_seconds: int = Field(default=5, ge=0, description=(
        "timestamp cursors: rows newer than the server's now minus this are left for the next sync "
        "(transactions still in flight may yet commit rows below it)"))
    lookback_values: int = Field(default=0, ge=0, description=(
        "sequence cursors: each sync re-reads this many values below the stored cursor"))


class SoftDelete(BaseModel):
    model_config = ConfigDict(extra="forbid")
    column: str = Field(description="the column that marks a deleted row")
    value: Optional[str] = Field(default="true", description=(
        "the value that means deleted (compared as text; true also matches 1 and t); null: any non-null "
        "value, e.g. a deleted_at timestamp"))


class KeyCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every_syncs: int = Field(default=24, ge=1, description=(
        "every this many syncs (and on every full sync) the keys in the source are compared with the keys "
        "landed before; a key gone from the source is a delete"))


class SqlSource(SourceBase):
    """A job's source on a SQL connection: a dataset (the asset `source/<connection>/<object>`)."""

    model_config = ConfigDict(extra="forbid")
    table: Optional[str] = Field(default=None, description="schema-qualified table or view, e.g. billing.subscriptions")
    query: Optional[str] = Field(default=None, description=(
        "a single read-only SELECT (instead of table); its columns are the dataset's"))
    columns: list[str] = Field(default_factory=list, description=(
        "columns to read besides those the jobs map (the primary key, cursor and soft-delete column are always read)"))
    primary_key: list[str] = Field(min_length=1, max_length=6, description=(
        "the column(s) that identify a row: each row's location in rejects, the tie-break of the cursor order"))
    cursor: Optional[SqlCursor] = Field(default=None, description="incremental sync on this column; none: full refresh")
    full_refresh: bool = Field(default=False, description="true: every sync reads the whole dataset (cursor unused)")
    soft_delete: Optional[SoftDelete] = None
    key_check: Optional[KeyCheck] = None
    PER_JOB_SETTINGS: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _dataset(self) -> "SqlSource":
        if (self.table is None) == (self.query is None):
            raise ValueError("give either table (schema.table) or query (one SELECT), not both and not neither")
        if self.table is not None and not TABLE_NAME.match(self.table):
            raise ValueError(f"table: {self.table!r} is not a table name (schema.table, each part an identifier or "
                             "a quoted name)")
        return self

    @property
    def summary(self) -> str:
        return f"table {self.table}" if self.table else "query"

    @property
    def always_read(self) -> list[str]:
        cols = list(self.primary_key)
        if self.cursor is not None:
            cols.append(self.cursor.column)
        if self.soft_delete is not None:
            cols.append(self.soft_delete.column)
        return list(dict.fromkeys(cols + list(self.columns)))
