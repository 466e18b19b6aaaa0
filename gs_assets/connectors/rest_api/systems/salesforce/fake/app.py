"""The HTTP face of the fake org: one FastAPI app serving every Salesforce host of the org.

Hosts (from the Host header): the environment's login host (login.salesforce.com for production,
test.salesforce.com for a sandbox) and the org's My Domain host issue tokens; the instance host
named in the token response (`instance_url`) serves the REST API. Bodies, headers and status codes
follow Salesforce's documentation; see the package docstring for the list.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Optional
from urllib.parse import parse_qs, unquote_plus

from fastapi import FastAPI, Request
from fastapi.responses import Response

from gs_assets.connectors.rest_api.fakes.harness import request_host

from . import soql
from .org import LOGIN_HOSTS, SalesforceOrg, sf_datetime

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_VERSION = re.compile(r"^/services/data/v(\d+\.\d)(/.*)?$")


def _json(body, status: int = 200, headers: Optional[dict] = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=status, headers=headers,
                    media_type="application/json;charset=UTF-8")


def _err(status: int, code: str, message: str, headers: Optional[dict] = None) -> Response:
    return _json([{"message": message, "errorCode": code}], status, headers)


def _oauth_err(error: str, description: str, status: int = 400) -> Response:
    return _json({"error": error, "error_description": description}, status)


NOT_FOUND = ("NOT_FOUND", "The requested resource does not exist")


def _value(v):
    if isinstance(v, datetime):
        return sf_datetime(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def _csv_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        t = v.astimezone(timezone.utc)
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def create_app(org: SalesforceOrg) -> FastAPI:
    app = FastAPI(title="Salesforce (fake)", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.org = org

    @app.api_route("/{path:path}", methods=["GET", "POST", "PATCH", "DELETE"])
    async def dispatch(request: Request, path: str) -> Response:
        body = await request.body()
        with org.lock:   # tests and the demo change the org from other threads while it serves
            return _dispatch(org, request, "/" + path, body)

    return app


def _dispatch(org: SalesforceOrg, request: Request, p: str, body: bytes) -> Response:
    host = request_host(request.headers)
    if p.rstrip("/") == "/services/oauth2/token":
        if request.method != "POST":
            return _oauth_err("invalid_request", "must use HTTP POST", 405)
        return _token(org, request, host, body)
    if p.startswith("/id/"):
        return _identity(org, request, host, p)
    if p.rstrip("/") == "/services/data":
        if host != org.api_host:
            return _err(404, *NOT_FOUND)
        return _json([{"label": f"v{v:.1f}", "url": f"/services/data/v{v:.1f}", "version": f"{v:.1f}"}
                      for v in _versions(org)])
    m = _VERSION.match(p)
    if not m:
        return _err(404, *NOT_FOUND)
    return _api(org, request, host, m.group(1), m.group(2) or "/", body)


def _versions(org: SalesforceOrg) -> list[float]:
    out, v = [], org.api_version_min
    while v <= org.api_version_max + 1e-9:
        out.append(round(v, 1))
        v += 1.0
    return out


# ------------------------------------------------------------------------------------------------
# OAuth 2.0 token endpoint


def _token(org: SalesforceOrg, request: Request, host: str, body: bytes) -> Response:
    form = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    for k, v in request.query_params.items():   # Salesforce also reads the parameters from the URL
        form.setdefault(k, v)
    auth = request.headers.get("authorization", "")
    if auth[:6].lower() == "basic ":              # client_secret_basic (RFC 6749 2.3.1), as authlib sends it
        try:
            cid, _, secret = base64.b64decode(auth[6:].strip()).decode().partition(":")
        except ValueError:
            return _oauth_err("invalid_client", "invalid client credentials")
        form.setdefault("client_id", unquote_plus(cid))
        form.setdefault("client_secret", unquote_plus(secret))
    if host not in org.token_hosts():
        # the other environment's login host (or another org's My Domain) knows neither app nor user
        return _oauth_err("invalid_grant", "authentication failure")
    grant = form.get("grant_type", "")
    if grant == "refresh_token":
        return _refresh_grant(org, form, host)
    if grant == "client_credentials":
        return _client_credentials_grant(org, form, host)
    if grant == JWT_BEARER:
        return _jwt_grant(org, form, host)
    return _oauth_err("unsupported_grant_type", "grant type not supported")


def _client(org: SalesforceOrg, form: dict, need_secret: bool):
    app = org.apps.get(form.get("client_id", ""))
    if app is None:
        return None, _oauth_err("invalid_client_id", "client identifier invalid")
    secret = form.get("client_secret")
    if (secret is not None or need_secret) and secret != app.client_secret:
        return None, _oauth_err("invalid_client", "invalid client credentials")
    return app, None


def _token_response(org: SalesforceOrg, app, username: str, host: str, refresh_token: Optional[str] = None,
                    new_refresh: Optional[str] = None) -> Response:
    user = org.user_by_username(username)
    s = org.new_session(app.client_id, username, refresh_token)
    id_url = f"https://{host}/id/{org.org_id}/{user['Id']}"
    issued_at = str(int(s.issued_at.timestamp() * 1000))
    body = {"access_token": s.token, "signature": org.token_signature(app.client_secret, id_url, issued_at),
            "scope": "api refresh_token", "instance_url": org.instance_url, "id": id_url, "token_type": "Bearer",
            "issued_at": issued_at}
    if new_refresh:
        body["refresh_token"] = new_refresh
    return _json(body, headers={"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"})


def _refresh_grant(org: SalesforceOrg, form: dict, host: str) -> Response:
    app, err = _client(org, form, need_secret=False)
    if err:
        return err
    if app.require_secret_for_refresh and form.get("client_secret") != app.client_secret:
        return _oauth_err("invalid_client", "invalid client credentials")
    token = form.get("refresh_token", "")
    grant = org.refresh_tokens.get(token)
    if grant is None or grant.client_id != app.client_id:
        return _oauth_err("invalid_grant", "expired access/refresh token")
    user = org.user_by_username(grant.username)
    if user is None or not user.get("IsActive"):
        return _oauth_err("invalid_grant", "inactive user")
    new = None
    if org.plan.rotate_refresh_tokens:
        del org.refresh_tokens[token]
        new = org.issue_refresh_token(app.client_id, grant.username)
        for s in org.sessions.values():
            if s.refresh_token == token:
                s.refresh_token = new
    return _token_response(org, app, grant.username, host, new or token, new)


def _client_credentials_grant(org: SalesforceOrg, form: dict, host: str) -> Response:
    if host in LOGIN_HOSTS.values():
        return _oauth_err("invalid_grant", "request not supported on this domain")
    app, err = _client(org, form, need_secret=True)
    if err:
        return err
    if not app.run_as_username:
        return _oauth_err("invalid_grant", "no client credentials user enabled")
    return _token_response(org, app, app.run_as_username, host)


def _b64json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _public_key(pem: str) -> str:
    """The connected app's registered certificate (or bare public key), as a public key PEM."""
    if "BEGIN CERTIFICATE" not in pem:
        return pem
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    cert = x509.load_pem_x509_certificate(pem.encode())
    return cert.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _jwt_grant(org: SalesforceOrg, form: dict, host: str) -> Response:
    from joserfc import jwt   # authlib's JOSE successor (authlib.jose is deprecated); locked with authlib
    from joserfc.errors import JoseError
    from joserfc.jwk import RSAKey

    assertion = form.get("assertion", "")
    try:
        header_b64, payload_b64, _sig = assertion.split(".")
        header, payload = _b64json(header_b64), _b64json(payload_b64)
    except Exception:
        return _oauth_err("invalid_grant", "invalid assertion")
    app = org.apps.get(str(payload.get("iss", "")))
    if app is None:
        return _oauth_err("invalid_client_id", "client identifier invalid")
    if header.get("alg") != "RS256" or not app.public_key_pem:
        return _oauth_err("invalid_grant", "invalid assertion")
    try:
        claims = jwt.decode(assertion, RSAKey.import_key(_public_key(app.public_key_pem)), algorithms=["RS256"]).claims
    except (JoseError, ValueError):
        return _oauth_err("invalid_grant", "invalid assertion")
    allowed_aud = {f"https://{h}" for h in org.token_hosts()}
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if not any(isinstance(a, str) and a.rstrip("/") in allowed_aud for a in auds):
        return _oauth_err("invalid_grant", "audience is invalid")
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or exp <= org.now().timestamp():
        return _oauth_err("invalid_grant", "expired authorization code")
    user = org.user_by_username(str(claims.get("sub", "")))
    if user is None or not user.get("IsActive") or (
            app.approved_usernames is not None and user["Username"] not in app.approved_usernames):
        return _oauth_err("invalid_grant", "user hasn't approved this consumer")
    return _token_response(org, app, user["Username"], host)


def _session(org: SalesforceOrg, request: Request):
    auth = request.headers.get("authorization", "")
    parts = auth.split(None, 1)
    if len(parts) != 2 or parts[0].lower() not in ("bearer", "oauth"):
        return None
    now = org.now()
    plan = org.plan
    if plan.expire_sessions_at is not None and now >= plan.expire_sessions_at:
        for t in [t for t, s in org.sessions.items() if s.issued_at < plan.expire_sessions_at]:
            del org.sessions[t]
        plan.expire_sessions_at = None
    s = org.sessions.get(parts[1].strip())
    if s is None:
        return None
    if now - s.last_used >= org.session_timeout:
        del org.sessions[s.token]
        return None
    return s


def _identity(org: SalesforceOrg, request: Request, host: str, p: str) -> Response:
    s = _session(org, request)
    if host not in org.token_hosts() or s is None:
        return Response("Bad_OAuth_Token", status_code=403, media_type="text/plain")
    user = org.user_by_username(s.username)
    return _json({"id": f"https://{host}{p}", "user_id": user["Id"], "organization_id": org.org_id,
                  "username": user["Username"], "display_name": user.get("Name"), "email": user.get("Email"),
                  "active": bool(user.get("IsActive")), "user_type": "STANDARD",
                  "urls": {"rest": f"{org.instance_url}/services/data/v{{version}}/"}})


# ------------------------------------------------------------------------------------------------
# The REST API (instance host)


def _api(org: SalesforceOrg, request: Request, host: str, version: str, rest: str, body: bytes) -> Response:
    org.requests_seen += 1
    for fn in org.plan.hooks.pop(org.requests_seen, []):
        fn(org)

    def limit_header() -> dict:
        return {"Sforce-Limit-Info": f"api-usage={org.api_usage()}/{org.api_limit}"}

    if host != org.api_host:
        # login hosts hold no org data: a session is only valid on its instance
        return _err(401, "INVALID_SESSION_ID", "Session expired or invalid")
    plan = org.plan
    if plan.server_errors_next > 0:
        plan.server_errors_next -= 1
        status = plan.server_error_status
        if status == 503:
            return _err(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable. Please try again later.")
        return _err(status, "UNKNOWN_EXCEPTION",
                    "An unexpected error occurred. Please include this ErrorId if you contact support: "
                    "1234567890-12345 (-1234567890)")
    s = _session(org, request)
    if s is None:
        return _err(401, "INVALID_SESSION_ID", "Session expired or invalid", limit_header())
    v = float(version)
    if not org.api_version_min <= v <= org.api_version_max:
        return _err(404, *NOT_FOUND, limit_header())
    if org.api_usage() >= org.api_limit:
        return _err(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", limit_header())
    now = org.now()
    org.api_calls.append(now)
    org.served_calls += 1
    s.last_used = now
    try:
        resp = _route(org, request, version, rest, s, body)
    finally:
        if plan.expire_sessions_after_calls is not None:
            plan.expire_sessions_after_calls -= 1
            if plan.expire_sessions_after_calls <= 0:
                plan.expire_sessions_after_calls = None
                org.expire_sessions()
    resp.headers.update(limit_header())
    return resp


def _route(org: SalesforceOrg, request: Request, version: str, rest: str, s, body: bytes) -> Response:
    method = request.method
    parts = [x for x in rest.split("/") if x]
    base = f"/services/data/v{version}"
    if method == "GET" and not parts:
        return _json({k: f"{base}/{k}" for k in ("sobjects", "query", "queryAll", "limits", "jobs")})
    if method == "GET" and parts == ["limits"]:
        return _limits(org)
    if parts and parts[0] == "sobjects":
        if method != "GET":
            return _err(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are GET")
        return _sobjects(org, request, version, parts[1:])
    if parts and parts[0] in ("query", "queryAll") and method == "GET":
        if len(parts) == 1:
            return _query(org, request, version, parts[0] == "queryAll", s)
        if len(parts) == 2:
            return _query_more(org, request, version, parts[1], s)
    if parts[:2] == ["jobs", "query"]:
        return _bulk(org, request, version, parts[2:], s, body)
    return _err(404, *NOT_FOUND)


def _limits(org: SalesforceOrg) -> Response:
    used = org.api_usage()
    jobs_today = sum(1 for j in org.bulk_jobs.values() if j["created"] > org.now() - timedelta(hours=24))
    return _json({"DailyApiRequests": {"Max": org.api_limit, "Remaining": max(0, org.api_limit - used)},
                  "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000 - jobs_today},
                  "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562}})


def _sobjects(org: SalesforceOrg, request: Request, version: str, parts: list[str]) -> Response:
    base = f"/services/data/v{version}/sobjects"
    if not parts:
        return _json({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [
            {"name": o.name, "label": o.label, "labelPlural": o.label + "s", "keyPrefix": o.key_prefix,
             "custom": o.custom, "queryable": True, "replicateable": True, "retrieveable": True,
             "updateable": True, "createable": True, "deletable": o.name != "User",
             "urls": {"sobject": f"{base}/{o.name}", "describe": f"{base}/{o.name}/describe",
                      "rowTemplate": f"{base}/{o.name}/{{ID}}"}} for o in org.objects.values()]})
    try:
        o = org.sobject(parts[0])
    except KeyError:
        return _err(404, *NOT_FOUND)
    if parts[1:] == ["describe"]:
        return _json({"name": o.name, "label": o.label, "labelPlural": o.label + "s", "keyPrefix": o.key_prefix,
                      "custom": o.custom, "queryable": True, "replicateable": True, "retrieveable": True,
                      "updateable": True, "createable": True, "deletable": o.name != "User",
                      "fields": [f.describe() for f in o.fields.values()],
                      "urls": {"sobject": f"{base}/{o.name}", "describe": f"{base}/{o.name}/describe",
                               "rowTemplate": f"{base}/{o.name}/{{ID}}"}})
    if parts[1:] in (["deleted"], ["updated"]):
        return _replication(org, request, o, parts[1])
    if len(parts) == 2:
        try:
            r = org.record(o.name, parts[1])
        except KeyError:
            return _err(404, *NOT_FOUND)
        if r.get("IsDeleted"):
            return _err(404, "ENTITY_IS_DELETED", "entity is deleted")
        return _json(_record_json(o.name, version, list(o.fields), r))
    return _err(404, *NOT_FOUND)


def _record_json(sobject: str, version: str, fields: list[str], r: dict) -> dict:
    out = {"attributes": {"type": sobject, "url": f"/services/data/v{version}/sobjects/{sobject}/{r.get('Id')}"}}
    for f in fields:
        out[f] = _value(r.get(f))
    return out


# ---- getUpdated / getDeleted -------------------------------------------------------------------


def _replication(org: SalesforceOrg, request: Request, o, kind: str) -> Response:
    days = 15 if kind == "deleted" else 30
    try:
        start = _param_datetime(request, "start")
        end = _param_datetime(request, "end")
    except ValueError as e:
        return _err(400, "INVALID_REPLICATION_DATE", str(e))
    now = org.now()
    start_m, end_m = _minute(start), _minute(end)   # "the API ignores the seconds portion"
    if start_m >= end_m:
        return _err(400, "INVALID_REPLICATION_DATE",
                    "startDate must chronologically precede endDate by more than one minute")
    if start_m < now - timedelta(days=days):
        return _err(400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {days} days ago")
    covered = min(end_m, _minute(now))
    pending = [p.stamped for p in org.pending if p.sobject.lower() == o.name.lower()]
    if pending:
        covered = min(covered, _minute(min(pending)))
    if kind == "updated":
        ids = [r["Id"] for r in o.records.values()
               if not r.get("IsDeleted") and start_m <= r["SystemModstamp"] < covered]
        return _json({"ids": ids, "latestDateCovered": sf_datetime(covered)})
    log = [(i, d) for i, d in o.delete_log if d >= now - timedelta(days=days)]
    earliest = _minute(min(d for _, d in log)) if log else _minute(now - timedelta(days=days))
    return _json({"deletedRecords": [{"id": i, "deletedDate": sf_datetime(d)} for i, d in log
                                     if start_m <= d < covered],
                  "earliestDateAvailable": sf_datetime(earliest), "latestDateCovered": sf_datetime(covered)})


def _minute(t: datetime) -> datetime:
    return t.astimezone(timezone.utc).replace(second=0, microsecond=0)


def _param_datetime(request: Request, name: str) -> datetime:
    raw = request.query_params.get(name)
    if not raw:
        raise ValueError(f"Missing required parameter: {name}")
    try:
        return soql.parse_datetime_literal(raw.strip().replace(" ", "+"))
    except ValueError:
        raise ValueError(f"Invalid {name} date: {raw!r} (expected ISO 8601 with a time zone, "
                         "for example 2026-11-30T12:00:00+00:00)") from None


# ---- SOQL query / queryAll ---------------------------------------------------------------------


def _compile(org: SalesforceOrg, text: str) -> soql.Query:
    q = soql.parse(text)
    return soql.resolve(q, {name: o for name, o in org.objects.items()})


def _evaluate(org: SalesforceOrg, q: soql.Query, include_deleted: bool) -> list[dict]:
    """The query's snapshot: matching rows copied now, so later writes don't shift its pages."""
    pred = soql.compile_where(q)
    obj = org.objects[q.sobject]
    rows = [r for r in obj.records.values() if (include_deleted or not r.get("IsDeleted")) and pred(r)]
    if q.order:
        rows = soql.sort_rows(q, rows)
    if q.offset:
        rows = rows[q.offset:]
    if q.limit is not None:
        rows = rows[:q.limit]
    fields = q.fields
    return [dict({f: r.get(f) for f in fields}, _id=r["Id"]) for r in rows]


def _batch_size(request: Request, default: int = 2000) -> int:
    opts = request.headers.get("sforce-query-options", "")
    m = re.search(r"batchSize\s*=\s*(\d+)", opts, re.IGNORECASE)
    if not m:
        return default
    return max(200, min(2000, int(m.group(1))))


def _page(org, version: str, sobject: str, fields: list[str], rows: list[dict], offset: int, batch: int,
          cursor_id: Optional[str], total: int) -> Response:
    chunk = rows[offset: offset + batch]
    url_base = f"/services/data/v{version}/sobjects/{sobject}/"
    records = []
    for r in chunk:
        rec = {"attributes": {"type": sobject, "url": url_base + r["_id"]}}
        for f in fields:
            v = r[f]
            rec[f] = sf_datetime(v) if isinstance(v, datetime) else _value(v)
        records.append(rec)
    end = offset + len(chunk)
    body = {"totalSize": total, "done": end >= total}
    if end < total:
        body["nextRecordsUrl"] = f"/services/data/v{version}/query/{cursor_id}-{end}"
    body["records"] = records
    return _json(body)


def _query(org: SalesforceOrg, request: Request, version: str, all_rows: bool, s) -> Response:
    text = request.query_params.get("q")
    if text is None:
        return _err(400, "MALFORMED_QUERY", "A query string has to be specified")
    try:
        q = _compile(org, text)
    except soql.SoqlError as e:
        return _err(400, e.error_code, e.message)
    rows = _evaluate(org, q, all_rows)
    if q.count:  # SELECT COUNT(): no records, the count in totalSize
        return _json({"totalSize": len(rows), "done": True, "records": []})
    batch = _batch_size(request)
    cursor_id = None
    if len(rows) > batch:
        cursor_id = org.new_id("01g")
        user_cursors = [k for k, c in org.cursors.items() if c["user"] == s.username]
        for k in user_cursors[:max(0, len(user_cursors) - 9)]:   # at most 10 open cursors per user
            del org.cursors[k]
        org.cursors[cursor_id] = {"rows": rows, "sobject": q.sobject, "fields": q.fields, "batch": batch,
                                  "last_used": org.now(), "user": s.username}
    return _page(org, version, q.sobject, q.fields, rows, 0, batch, cursor_id, len(rows))


def _query_more(org: SalesforceOrg, request: Request, version: str, locator: str, s) -> Response:
    cursor_id, _, offset = locator.partition("-")
    c = org.cursors.get(cursor_id)
    if c is not None and org.now() - c["last_used"] >= org.query_cursor_idle_timeout:
        del org.cursors[cursor_id]
        c = None
    if c is None or not offset.isdigit():
        return _err(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    c["last_used"] = org.now()
    batch = _batch_size(request, c["batch"])
    return _page(org, version, c["sobject"], c["fields"], c["rows"], int(offset), batch, cursor_id,
                 len(c["rows"]))


# ---- Bulk API 2.0 query --------------------------------------------------------------------------


def _job_info(org: SalesforceOrg, job: dict, full: bool) -> dict:
    info = {"id": job["id"], "operation": job["operation"], "object": job["object"],
            "createdById": job["createdById"], "createdDate": sf_datetime(job["created"]),
            "systemModstamp": sf_datetime(job["modstamp"]), "state": job["state"],
            "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(job["version"]),
            "lineEnding": "LF", "columnDelimiter": "COMMA"}
    if full:
        info.update({"jobType": "V2Query", "numberRecordsProcessed": len(job["rows"] or []), "retries": 0,
                     "totalProcessingTime": 0, "isPkChunkingSupported": True})
    return info


def _advance_job(org: SalesforceOrg, job: dict, poll: bool) -> None:
    if job["state"] in ("JobComplete", "Aborted", "Failed"):
        return
    if poll:
        job["polls"] += 1
    done = job["polls"] >= org.bulk_polls_to_complete or (
        org.bulk_seconds_to_complete is not None
        and (org.now() - job["created"]).total_seconds() >= org.bulk_seconds_to_complete)
    if done:
        job["rows"] = _evaluate(org, job["query"], job["operation"] == "queryAll")
        job["state"] = "JobComplete"
        job["modstamp"] = org.now()
    elif poll:
        job["state"] = "InProgress"


def _bulk(org: SalesforceOrg, request: Request, version: str, parts: list[str], s, raw: bytes) -> Response:
    method = request.method
    if not parts and method == "POST":
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _err(400, "JSON_PARSER_ERROR", "Unexpected character in request body: not JSON")
        op = body.get("operation")
        if op not in ("query", "queryAll"):
            return _err(400, "INVALIDJOB", f"Invalid operation: {op!r}; a query job's operation is query or queryAll")
        try:
            q = _compile(org, body.get("query") or "")
        except soql.SoqlError as e:
            return _err(400, e.error_code, e.message)
        banned = {"OFFSET"} | ({"ORDER BY", "LIMIT"} if org.bulk_rejects_order_by_limit else set())
        used = sorted(q.clauses & banned)
        if used:
            return _err(400, "INVALIDJOB", f"Bulk API 2.0 does not support {', '.join(used)} in a query job's SOQL")
        now = org.now()
        job = {"id": org.new_id("750"), "operation": op, "object": q.sobject, "query": q, "version": version,
               "createdById": org.user_by_username(s.username)["Id"], "created": now, "modstamp": now,
               "state": "UploadComplete", "polls": 0, "rows": None}
        org.bulk_jobs[job["id"]] = job
        return _json(_job_info(org, job, False))
    if not parts and method == "GET":
        return _json({"done": True, "records": [_job_info(org, j, False) for j in org.bulk_jobs.values()],
                      "nextRecordsUrl": None})
    job = org.bulk_jobs.get(parts[0]) if parts else None
    if job is None:
        return _err(404, "NOT_FOUND", "The requested resource does not exist")
    if len(parts) == 1 and method == "GET":
        _advance_job(org, job, poll=True)
        return _json(_job_info(org, job, True))
    if len(parts) == 1 and method == "PATCH":
        if job["state"] != "JobComplete":
            job["state"] = "Aborted"
        return _json(_job_info(org, job, False))
    if len(parts) == 1 and method == "DELETE":
        del org.bulk_jobs[job["id"]]
        return Response(status_code=204)
    if parts[1:] == ["results"] and method == "GET":
        if version != job["version"]:
            return _err(409, "INVALIDVERSION", f"Use API version {job['version']} (the job's) to get its results")
        _advance_job(org, job, poll=False)
        if job["state"] != "JobComplete":
            state = {"UploadComplete": "UPLOAD_COMPLETE", "InProgress": "IN_PROGRESS"}.get(job["state"],
                                                                                         job["state"].upper())
            return _json([{"errorCode": "JOB_NOT_COMPLETE",
                           "message": "can only download query results of successfully completed bulk job with "
                                      f"status: JOB_COMPLETE. Current status: {state}"}], 412)
        return _bulk_results(org, request, job)
    return _err(404, *NOT_FOUND)


def _bulk_results(org: SalesforceOrg, request: Request, job: dict) -> Response:
    locator = request.query_params.get("locator")
    try:
        start = int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode()) if locator else 0
    except ValueError:
        return _err(400, "INVALIDLOCATOR", f"Invalid locator: {locator}")
    max_records = request.query_params.get("maxRecords")
    n = int(max_records) if max_records and max_records.isdigit() and int(max_records) > 0 \
        else org.bulk_default_max_records
    rows = job["rows"]
    chunk = rows[start: start + n]
    fields = job["query"].fields
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    w.writerow(fields)
    for r in chunk:
        w.writerow([_csv_value(r[f]) for f in fields])
    end = start + len(chunk)
    nxt = base64.b64encode(str(end).encode()).decode().rstrip("=") if end < len(rows) else "null"
    return Response(buf.getvalue(), media_type="text/csv",
                    headers={"Sforce-Locator": nxt, "Sforce-NumberOfRecords": str(len(chunk))})
