"""A fake of Google BigQuery's REST API v2, as much of it as google-cloud-bigquery uses to run a
query and page its rows, with Google's OAuth token endpoint for service accounts.

Endpoints (https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs):
- POST /bigquery/v2/projects/{project}/jobs             jobs.insert (a query job; `dryRun` too)
- GET  /bigquery/v2/projects/{project}/jobs/{job}       jobs.get
- GET  /bigquery/v2/projects/{project}/queries/{job}    jobs.getQueryResults (maxResults, pageToken,
                                                        startIndex, formatOptions.useInt64Timestamp, fields)
- POST /bigquery/v2/projects/{project}/queries          jobs.query
- POST /token                                           OAuth 2.0 JWT bearer grant (RFC 7523), the
                                                        `token_uri` of the service accounts it knows

Shapes follow the reference: rows are `{"f": [{"v": ...}]}` with every scalar as a string (TIMESTAMP
as epoch microseconds when the client asks `formatOptions.useInt64Timestamp`, else epoch seconds),
RECORD as a nested `{"f": ...}`, REPEATED as a list of `{"v": ...}`; errors are the documented error
body (`{"error": {"code", "message", "errors": [{"reason", ...}], "status"}}`): 401 authError for a
missing or unknown token, 403 accessDenied for a project the account may not use, 404 notFound for
an unknown dataset, table or job (or a dataset in another location), 400 invalidQuery for SQL that
does not run. A failed query job is DONE with `status.errorResult`, as BigQuery reports it.

Queries run on an in-memory DuckDB: the BigQuery SQL is transpiled with sqlglot (bigquery ->
duckdb); a dataset is a DuckDB schema in a catalog named after the project. The result is
materialised when the job is inserted, which is BigQuery's own semantics (a query reads a snapshot
of its tables taken when it starts). CURRENT_TIMESTAMP() is the fake's Clock.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Optional

import duckdb
import jwt
import sqlglot
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlglot import exp

from gs_assets.connectors.rest_api.fakes.harness import Clock

GOOGLE_TOKEN_AUD = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPES = {"https://www.googleapis.com/auth/bigquery", "https://www.googleapis.com/auth/cloud-platform",
          "https://www.googleapis.com/auth/bigquery.readonly"}
NUMERIC = "DECIMAL(38, 9)"  # BigQuery NUMERIC; BIGNUMERIC (76, 38 digits) has no DuckDB equal: stored as below
BIGNUMERIC = "DECIMAL(38, 18)"
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           500: "INTERNAL"}
_REASON_CODE = {"invalidQuery": 400, "invalid": 400, "notFound": 404, "accessDenied": 403, "authError": 401,
                "backendError": 500}


class BqError(Exception):
    def __init__(self, reason: str, message: str, code: Optional[int] = None, location: Optional[str] = None):
        super().__init__(message)
        self.reason, self.message, self.code = reason, message, code or _REASON_CODE.get(reason, 400)
        self.location = location

    def error_proto(self) -> dict:
        e = {"message": self.message, "domain": "global", "reason": self.reason}
        if self.location:
            e.update(location=self.location, locationType="header" if self.reason == "authError" else "other")
        return e

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "errors": [self.error_proto()],
                          "status": _STATUS.get(self.code, "UNKNOWN")}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.code)


@dataclass
class Job:
    project: str
    job_id: str
    location: str
    query: str
    parameters: list
    email: str
    created_ms: int
    schema: list = field(default_factory=list)  # BigQuery schema fields
    rows: list = field(default_factory=list)  # Python values, one tuple per row
    error: Optional[BqError] = None
    polls_left: int = 0  # jobs.get / getQueryResults answers before the job reports DONE

    def resource(self) -> dict:
        done = self.polls_left <= 0
        status: dict = {"state": "DONE" if done else "RUNNING"}
        if done and self.error is not None:
            status["errorResult"] = self.error.error_proto()
            status["errors"] = [self.error.error_proto()]
        cfg = {"query": {"query": self.query, "useLegacySql": False, "priority": "INTERACTIVE",
                         "writeDisposition": "WRITE_TRUNCATE",
                         "destinationTable": {"projectId": self.project, "datasetId": "_fake_anon",
                                              "tableId": "anon" + self.job_id.replace("-", "")}},
               "jobType": "QUERY"}
        if self.parameters:
            cfg["query"].update(parameterMode="NAMED", queryParameters=self.parameters)
        stats = {"creationTime": str(self.created_ms), "startTime": str(self.created_ms),
                 "totalBytesProcessed": "0", "query": {"totalBytesProcessed": "0", "totalBytesBilled": "0",
                                                        "cacheHit": False, "statementType": "SELECT"}}
        if done:
            stats["endTime"] = str(self.created_ms + 1)
        return {"kind": "bigquery#job", "etag": base64.b64encode(self.job_id.encode()).decode(),
                "id": f"{self.project}:{self.location}.{self.job_id}",
                "selfLink": f"/bigquery/v2/projects/{self.project}/jobs/{self.job_id}?location={self.location}",
                "user_email": self.email, "jobReference": self.reference(), "configuration": cfg,
                "status": status, "statistics": stats}

    def reference(self) -> dict:
        return {"projectId": self.project, "jobId": self.job_id, "location": self.location}


class BigQueryFake:
    """The state behind the app: projects, datasets (with their location), tables (DuckDB), the
    service accounts whose public keys it knows, the tokens it issued, and jobs."""

    def __init__(self, project: str = "gsdp-demo", location: str = "US", clock: Optional[Clock] = None,
                 polls_before_done: int = 1, max_page_rows: int = 100_000):
        self.project, self.location, self.clock = project, location, clock or Clock()
        self.polls_before_done = polls_before_done
        self.max_page_rows = max_page_rows
        self.db = duckdb.connect(":memory:")
        self.db.execute("SET TimeZone = 'UTC'")
        self.db.execute(f"ATTACH ':memory:' AS {_q(project)}")
        self.db.execute(f"USE {_q(project)}")
        self.datasets: dict[str, str] = {}  # dataset -> location
        self.accounts: dict[str, dict] = {}  # client_email -> {"key": public key, "projects": set}
        self.tokens: dict[str, tuple[str, dt.datetime]] = {}  # access token -> (client_email, expiry)
        self.token_lifetime = 3600
        self.jobs: dict[tuple[str, str], Job] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every BigQuery call, for tests
        self.lock = threading.Lock()

    # -- setup (tests, demo) ------------------------------------------------------------------------
    def add_service_account(self, client_email: str, public_key, projects: Optional[set[str]] = None) -> None:
        self.accounts[client_email] = {"key": public_key, "projects": set(projects or {self.project})}

    def create_dataset(self, name: str, location: Optional[str] = None) -> None:
        with self.lock:
            self.db.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(name)}")
            self.datasets[name] = location or self.location

    def run(self, sql: str, params: Optional[list] = None) -> None:
        """Run BigQuery DDL/DML (CREATE TABLE ..., INSERT ...) on the fake's tables."""
        with self.lock:
            self.db.execute(to_duckdb(sql), params or None)

    def insert(self, table: str, rows: list[tuple]) -> None:
        if not rows:
            return
        marks = ", ".join("?" * len(rows[0]))
        with self.lock:
            self.db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)

    # -- auth -----------------------------------------------------------------------------------------
    def grant(self, assertion: str, audience: str) -> dict:
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _grant_error("invalid_grant", "Invalid JWT: malformed") from None
        account = self.accounts.get(unverified.get("iss", ""))
        if account is None:
            raise _grant_error("invalid_grant", "Invalid grant: account not found")
        now = self.clock.now().timestamp()
        try:
            # Google's token endpoint expects this audience whatever host serves it (google-auth sends it)
            claims = jwt.decode(assertion, account["key"], algorithms=["RS256"], audience=[GOOGLE_TOKEN_AUD, audience],
                                options={"verify_exp": False, "verify_iat": False})
        except jwt.InvalidAudienceError:
            raise _grant_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and "
                                                "in a reasonable timeframe. Check your iat and exp values in the "
                                                "JWT claim.") from None
        except jwt.PyJWTError:
            raise _grant_error("invalid_grant", "Invalid JWT Signature.") from None
        if not set(str(claims.get("scope", "")).split()) & SCOPES:
            raise _grant_error("invalid_scope", "No BigQuery scope in the assertion")
        del now  # the fake's clock and the client's may differ: iat/exp are not compared
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self.tokens[token] = (claims["iss"], self.clock.now() + dt.timedelta(seconds=self.token_lifetime))
        return {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}

    def caller(self, authorization: Optional[str], project: str) -> str:
        token = (authorization or "")[7:] if (authorization or "").startswith("Bearer ") else ""
        who = self.tokens.get(token)
        if who is None or who[1] <= self.clock.now():
            raise BqError("authError", "Request had invalid authentication credentials. Expected OAuth 2 access "
                          "token, login cookie or other valid authentication credential. See "
                          "https://developers.google.com/identity/sign-in/web/devconsole-project.", 401,
                          location="Authorization")
        email = who[0]
        if project not in self.accounts[email]["projects"]:
            raise BqError("accessDenied", f"Access Denied: Project {project}: User does not have "
                          f"bigquery.jobs.create permission in project {project}.", 403)
        return email

    # -- queries ----------------------------------------------------------------------------------------
    def execute(self, sql: str, parameters: list, location: str) -> tuple[list, list]:
        """(BigQuery schema, rows) of a query, or BqError."""
        try:
            tree = sqlglot.parse_one(sql, read="bigquery")
        except sqlglot.errors.ParseError as e:
            raise BqError("invalidQuery", f"Syntax error: {str(e).splitlines()[0]}") from None
        if not isinstance(tree, (exp.Select, exp.SetOperation, exp.Subquery)):
            raise BqError("invalidQuery", "The fake runs SELECT queries only")
        ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
        for t in tree.find_all(exp.Table):
            if not t.db:
                if t.name in ctes:
                    continue
                raise BqError("invalidQuery", f"Table \"{t.name}\" must be qualified with a dataset (e.g. "
                              "dataset.table).")
            project = t.catalog or self.project
            if t.db not in self.datasets or project != self.project:
                raise BqError("notFound", f"Not found: Dataset {project}:{t.db} was not found in location "
                              f"{location}")
            if self.datasets[t.db] != location:
                raise BqError("notFound", f"Not found: Dataset {project}:{t.db} was not found in location "
                              f"{location}")
            with self.lock:
                found = self.db.execute("SELECT 1 FROM information_schema.tables WHERE table_catalog = ? AND "
                                        "table_schema = ? AND table_name = ?", [self.project, t.db, t.name]).fetchall()
            if not found:
                raise BqError("notFound", f"Not found: Table {project}:{t.db}.{t.name} was not found in location "
                              f"{location}")
        now = self.clock.now()
        for node in list(tree.find_all(exp.CurrentTimestamp)):
            node.replace(exp.cast(exp.Literal.string(now.isoformat()), "TIMESTAMPTZ"))
        values = {}
        for p in parameters:
            name = p.get("name")
            if not name:
                raise BqError("invalidQuery", "Positional parameters are not supported by the fake; name them")
            values[name] = _param_value(p)
        wanted = {n.name for n in tree.find_all(exp.Parameter)} | {n.name for n in tree.find_all(exp.Placeholder)}
        missing = sorted(w for w in wanted if w and w not in values)
        if missing:
            raise BqError("invalidQuery", f"Query parameter '{missing[0]}' not found")
        duck_sql = tree.sql(dialect="duckdb", identify=True)  # a dashed project name needs quotes in DuckDB
        with self.lock:
            try:
                rel = self.db.sql(duck_sql, params={k: v for k, v in values.items() if k in wanted} or None)
                schema = [_field(n, t) for n, t in zip(rel.columns, rel.types)]
                rows = rel.fetchall()
            except duckdb.Error as e:
                raise BqError("invalidQuery", str(e).splitlines()[0]) from None
        return schema, rows

    def insert_job(self, project: str, body: dict, email: str) -> tuple[dict, Optional[Job]]:
        cfg = body.get("configuration") or {}
        q = cfg.get("query") or {}
        if "query" not in q:
            raise BqError("invalid", "The fake runs query jobs only (configuration.query)")
        if q.get("useLegacySql", True) is not False and "useLegacySql" in q:
            raise BqError("invalidQuery", "The fake runs GoogleSQL only (useLegacySql: false)")
        ref = body.get("jobReference") or {}
        location = ref.get("location") or self.location
        params = q.get("queryParameters") or []
        if cfg.get("dryRun"):
            schema, _ = self.execute(q["query"], params, location)  # errors answer the request itself
            return {"kind": "bigquery#job", "jobReference": {"projectId": project, "location": location},
                    "configuration": {**cfg}, "status": {"state": "DONE"}, "user_email": email,
                    "statistics": {"creationTime": str(int(self.clock.now().timestamp() * 1000)),
                                   "totalBytesProcessed": "0",
                                   "query": {"totalBytesProcessed": "0", "statementType": "SELECT",
                                             "schema": {"fields": schema}}}}, None
        job_id = ref.get("jobId") or str(uuid.uuid4())
        if (project, job_id) in self.jobs:
            raise BqError("duplicate", f"Already Exists: Job {project}:{location}.{job_id}", 409)
        job = Job(project, job_id, location, q["query"], params, email,
                  int(self.clock.now().timestamp() * 1000), polls_left=self.polls_before_done)
        try:
            job.schema, job.rows = self.execute(q["query"], params, location)
        except BqError as e:
            job.error = e
        self.jobs[(project, job_id)] = job
        return job.resource(), job

    def job(self, project: str, job_id: str, location: Optional[str]) -> Job:
        job = self.jobs.get((project, job_id))
        if job is None or (location and location != job.location):
            raise BqError("notFound", f"Not found: Job {project}:{location or self.location}.{job_id}")
        return job

    def query_results(self, job: Job, params: dict) -> dict:
        if job.polls_left > 0:
            job.polls_left -= 1
            return {"kind": "bigquery#getQueryResultsResponse", "jobReference": job.reference(),
                    "jobComplete": False}
        if job.error is not None:
            raise job.error
        start = 0
        if params.get("pageToken"):
            try:
                tok_job, _, off = base64.urlsafe_b64decode(params["pageToken"].encode()).decode().rpartition(":")
                start = int(off)
                if tok_job != job.job_id:
                    raise ValueError
            except ValueError:
                raise BqError("invalid", "Invalid page token.") from None
        elif params.get("startIndex") is not None:
            start = int(params["startIndex"])
        size = self.max_page_rows if params.get("maxResults") is None else min(int(params["maxResults"]),
                                                                                   self.max_page_rows)
        micros = str(params.get("formatOptions.useInt64Timestamp", "")).lower() == "true"
        page = job.rows[start:start + size]
        out: dict[str, Any] = {"kind": "bigquery#getQueryResultsResponse",
                               "etag": base64.b64encode(f"{job.job_id}:{start}".encode()).decode(),
                               "schema": {"fields": job.schema}, "jobReference": job.reference(),
                               "totalRows": str(len(job.rows)), "totalBytesProcessed": "0", "jobComplete": True,
                               "cacheHit": False}
        if page:
            out["rows"] = [_row(job.schema, r, micros) for r in page]
        if size and start + len(page) < len(job.rows):
            out["pageToken"] = base64.urlsafe_b64encode(f"{job.job_id}:{start + len(page)}".encode()).decode()
        if params.get("fields"):
            keep = {f.strip().split("(")[0].split("/")[0] for f in params["fields"].split(",")}
            out = {k: v for k, v in out.items() if k in keep}
        return out


def create_app(fake: BigQueryFake) -> FastAPI:
    app = FastAPI(title="BigQuery fake")

    @app.exception_handler(BqError)
    async def _bq_error(request: Request, exc: BqError):
        return exc.response()

    @app.post("/token")
    async def token(request: Request):
        form = await request.form()
        if form.get("grant_type") != JWT_BEARER:
            return JSONResponse({"error": "unsupported_grant_type", "error_description": "Invalid grant_type: "
                                 f"{form.get('grant_type')}"}, status_code=400)
        try:
            return JSONResponse(fake.grant(str(form.get("assertion", "")), str(request.url)))
        except _GrantError as e:
            return JSONResponse(e.body, status_code=400)

    def _who(request: Request, project: str) -> str:
        fake.requests.append((request.method, request.url.path))
        return fake.caller(request.headers.get("authorization"), project)

    @app.post("/bigquery/v2/projects/{project}/jobs")
    async def jobs_insert(project: str, request: Request):
        email = _who(request, project)
        resource, _ = fake.insert_job(project, await request.json(), email)
        return resource

    @app.get("/bigquery/v2/projects/{project}/jobs/{job_id}")
    async def jobs_get(project: str, job_id: str, request: Request):
        _who(request, project)
        job = fake.job(project, job_id, request.query_params.get("location"))
        job.polls_left = max(0, job.polls_left - 1)
        return job.resource()

    @app.get("/bigquery/v2/projects/{project}/queries/{job_id}")
    async def get_query_results(project: str, job_id: str, request: Request):
        _who(request, project)
        job = fake.job(project, job_id, request.query_params.get("location"))
        return fake.query_results(job, dict(request.query_params))

    @app.post("/bigquery/v2/projects/{project}/queries")
    async def jobs_query(project: str, request: Request):
        email = _who(request, project)
        body = await request.json()
        job_body = {"jobReference": {"projectId": project, "jobId": body.get("requestId") or str(uuid.uuid4()),
                                     "location": body.get("location") or fake.location},
                    "configuration": {"query": {k: body[k] for k in ("query", "useLegacySql", "queryParameters",
                                                                      "parameterMode") if k in body},
                                      "dryRun": bool(body.get("dryRun"))}}
        resource, job = fake.insert_job(project, job_body, email)
        if job is None:
            return resource
        job.polls_left = 0
        params = {"maxResults": body.get("maxResults"),
                  "formatOptions.useInt64Timestamp": str((body.get("formatOptions") or {})
                                                         .get("useInt64Timestamp", False)).lower()}
        out = fake.query_results(job, params)
        out["kind"] = "bigquery#queryResponse"
        return out

    return app


# -- helpers ---------------------------------------------------------------------------------------------

class _GrantError(Exception):
    def __init__(self, body: dict):
        super().__init__(body["error"])
        self.body = body


def _grant_error(error: str, description: str) -> _GrantError:
    return _GrantError({"error": error, "error_description": description})


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def to_duckdb(sql: str) -> str:
    """BigQuery SQL as DuckDB runs it, with NUMERIC/BIGNUMERIC at BigQuery's precision."""
    tree = sqlglot.parse_one(sql, read="bigquery")
    for dt_node in list(tree.find_all(exp.DataType)):
        if dt_node.this == exp.DataType.Type.DECIMAL and not dt_node.expressions:
            dt_node.replace(exp.DataType.build(NUMERIC, dialect="duckdb"))
        elif dt_node.this == exp.DataType.Type.BIGDECIMAL:
            dt_node.replace(exp.DataType.build(BIGNUMERIC, dialect="duckdb"))
    out = tree.sql(dialect="duckdb")
    return out.replace("DECIMAL(38, 5)", BIGNUMERIC)  # sqlglot's own BIGNUMERIC rendering, if it slipped through


def _field(name: str, t) -> dict:
    """The BigQuery schema field of a DuckDB result column."""
    tid = t.id
    if tid == "list":
        inner = _field(name, dict(t.children)["child"])
        return {**inner, "mode": "REPEATED"}
    if tid == "struct":
        return {"name": name, "type": "RECORD", "mode": "NULLABLE",
                "fields": [_field(n, c) for n, c in t.children]}
    if tid == "decimal":
        p, s = dict(t.children)["precision"], dict(t.children)["scale"]
        bq = "NUMERIC" if s <= 9 and p - s <= 29 and s == 9 else "BIGNUMERIC"
        return {"name": name, "type": bq, "mode": "NULLABLE"}
    by_id = {"bigint": "INTEGER", "integer": "INTEGER", "smallint": "INTEGER", "tinyint": "INTEGER",
             "hugeint": "INTEGER", "ubigint": "INTEGER", "uinteger": "INTEGER", "double": "FLOAT", "float": "FLOAT",
             "boolean": "BOOLEAN", "date": "DATE", "timestamp": "DATETIME", "timestamp with time zone": "TIMESTAMP",
             "time": "TIME", "blob": "BYTES", "varchar": "STRING", "uuid": "STRING", "interval": "INTERVAL"}
    bq = "JSON" if str(t) == "JSON" else by_id.get(tid, "STRING")
    return {"name": name, "type": bq, "mode": "NULLABLE"}


def _cell(f: dict, v, micros: bool):
    if v is None:
        return None
    if f.get("mode") == "REPEATED":
        one = {**f, "mode": "NULLABLE"}
        return [{"v": _cell(one, x, micros)} for x in v]
    t = f["type"]
    if t == "RECORD":
        return {"f": [{"v": _cell(sub, v.get(sub["name"]), micros)} for sub in f["fields"]]}
    if t == "BOOLEAN":
        return "true" if v else "false"
    if t == "TIMESTAMP":
        us = int((v - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) / dt.timedelta(microseconds=1))
        return str(us) if micros else f"{us / 1_000_000:.6f}"
    if t == "DATETIME":
        return v.isoformat(timespec="microseconds" if v.microsecond else "seconds")
    if t in ("DATE", "TIME"):
        return v.isoformat()
    if t == "BYTES":
        return base64.b64encode(bytes(v)).decode()
    if t in ("NUMERIC", "BIGNUMERIC"):
        d = v if isinstance(v, Decimal) else Decimal(str(v))
        return format(d.normalize(), "f")
    if t == "FLOAT":
        if v != v:
            return "NaN"
        if v in (float("inf"), float("-inf")):
            return "Infinity" if v > 0 else "-Infinity"
        return repr(float(v))
    if t == "JSON":
        return v if isinstance(v, str) else json.dumps(v)
    return str(v)


def _row(schema: list, values: tuple, micros: bool) -> dict:
    return {"f": [{"v": _cell(f, v, micros)} for f, v in zip(schema, values)]}


def _param_value(p: dict):
    t = ((p.get("parameterType") or {}).get("type") or "STRING").upper()
    v = (p.get("parameterValue") or {}).get("value")
    if v is None:
        return None
    try:
        if t in ("INT64", "INTEGER"):
            return int(v)
        if t in ("FLOAT64", "FLOAT"):
            return float(v)
        if t in ("NUMERIC", "BIGNUMERIC"):
            return Decimal(str(v))
        if t in ("BOOL", "BOOLEAN"):
            return str(v).lower() == "true"
        if t == "TIMESTAMP":
            d = dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))
            return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)
        if t == "DATETIME":
            return dt.datetime.fromisoformat(str(v))
        if t == "DATE":
            return dt.date.fromisoformat(str(v))
        if t == "BYTES":
            return base64.b64decode(v)
        return str(v)
    except (ValueError, ArithmeticError):
        raise BqError("invalidQuery", f"Invalid {t} value for query parameter {p.get('name')}: {v!r}") from None

