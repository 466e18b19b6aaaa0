"""The fake Dataverse's HTTP surface: `create_app(org)` serves the Microsoft identity platform's token
endpoint (login.microsoftonline.com/<tenant>/oauth2/v2.0/token) and the org's Web API
(<org>.crm.dynamics.com/api/data/v9.2) as Microsoft documents them.

Order of checks on an API call: the Host header (other hosts 404), the call counter and the fault
plan, authentication (a bearer token issued for this org's resource, unexpired: else 401 with an
empty body and a WWW-Authenticate header), service protection limits (429, OData error body with
code 0x80072322, Retry-After in seconds), then the query: `$select` (unknown columns 400),
`$filter` (comparisons of a date column with ge/gt/le/lt/eq joined by `and`), `$orderby`,
`$top`, and paging by `Prefer: odata.maxpagesize` (answered with `Preference-Applied`) and an
`@odata.nextLink` holding a `$skiptoken` paging cookie (keyset on the sort order).
"""

from __future__ import annotations

import base64
import json
import math
import re
from datetime import datetime, timedelta
from typing import Any, Optional
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from gs_assets.connectors.rest_api.fakes.harness import request_host

from .org import API_PATH, ENTITY_TYPE, LOGIN_HOST, MAX_PAGE_SIZE, REQUESTS_PER_WINDOW, TABLES, WINDOW_S, DataverseOrg

LOOKUP_ANNOTATION = "Microsoft.Dynamics.CRM.lookuplogicalname"
DATE_COLUMNS = {"modifiedon", "createdon"}
_CMP = re.compile(r"^\s*(\w+)\s+(ge|gt|le|lt|eq)\s+(\S+)\s*$")


def _odata_error(status: int, code: str, message: str, headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _aad_error(status: int, error: str, code: int, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": f"AADSTS{code}: {description}",
                         "error_codes": [code], "timestamp": "", "trace_id": "", "correlation_id": ""},
                        status_code=status)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _prefer(header: str) -> dict[str, str]:
    out = {}
    for part in (header or "").split(","):
        k, _, v = part.strip().partition("=")
        if k:
            out[k.strip().lower()] = v.strip().strip('"')
    return out


def create_app(org: DataverseOrg) -> FastAPI:
    app = FastAPI(title="fake Dataverse Web API")

    @app.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request):
        if request_host(request.headers) != LOGIN_HOST:
            return Response(status_code=404)
        org.token_requests += 1
        form = dict(await request.form())
        if tenant != org.tenant_id:
            return _aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found. Check to make sure you "
                              "have the correct tenant ID and are signing into the correct cloud.")
        if form.get("grant_type") != "client_credentials":
            return _aad_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        app_ = org.apps.get(form.get("client_id", ""))
        if app_ is None:
            return _aad_error(400, "unauthorized_client", 700016, f"Application with identifier "
                              f"'{form.get('client_id', '')}' was not found in the directory '{tenant}'.")
        if form.get("client_secret") != app_.client_secret:
            return _aad_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret "
                              "being sent in the request is the client secret value, not the client secret ID.")
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            return _aad_error(400, "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid. "
                              "Client credential flows must have a scope value with /.default suffixed to the "
                              "resource identifier (application ID URI).")
        resource = scope[: -len("/.default")].rstrip("/")
        if resource != f"https://{org.host}":
            return _aad_error(400, "invalid_resource", 500011, f"The resource principal named {resource} was not "
                              f"found in the tenant named {tenant}.")
        tok = org.issue_token(resource)
        lifetime = int((tok.expires_at - org.clock.now()).total_seconds())
        return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                "access_token": tok.value}

    def gate(request: Request) -> Optional[Response]:
        org.calls += 1
        f = org.faults
        for d in [d for d in f.drift if org.calls > d[0]]:
            f.drift.remove(d)
            d[1]()
        now = org.clock.now()
        if f.expire_tokens_after_calls is not None and org.calls > f.expire_tokens_after_calls:
            org.expire_tokens()
            f.expire_tokens_after_calls = None
        for entry in f.server_errors:
            if org.calls > entry[0] and entry[1] > 0:
                entry[1] -= 1
                return _odata_error(entry[2], "0x80040216", "An unexpected error occurred.")
        header = request.headers.get("authorization") or ""
        scheme, _, value = header.partition(" ")
        tok = org.tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if tok is None or tok.audience != f"https://{org.host}" or now >= tok.expires_at:
            return Response(status_code=401, headers={"WWW-Authenticate": (
                f"Bearer authorization_uri=https://{LOGIN_HOST}/{org.tenant_id}/oauth2/authorize, "
                f"resource_id=https://{org.host}/")})
        for entry in f.throttle:
            if org.calls > entry[0] and entry[1] > 0:
                entry[1] -= 1
                return _throttled(entry[2])
        org.request_log = [t for t in org.request_log if t > now - timedelta(seconds=WINDOW_S)]
        if org.enforce_limits and len(org.request_log) >= REQUESTS_PER_WINDOW:
            wait = (org.request_log[0] + timedelta(seconds=WINDOW_S) - now).total_seconds()
            return _throttled(max(1, math.ceil(wait)))
        org.request_log.append(now)
        return None

    def _throttled(retry_after: int) -> Response:
        return _odata_error(429, "0x80072322", f"Number of requests exceeded the limit of {REQUESTS_PER_WINDOW} "
                            f"over time window of {WINDOW_S} seconds.", headers={"Retry-After": str(retry_after)})

    @app.get(API_PATH + "/WhoAmI")
    async def whoami(request: Request):
        if request_host(request.headers) != org.host:
            return Response(status_code=404)
        bad = gate(request)
        if bad is not None:
            return bad
        return {"@odata.context": f"{org.base_url}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
                "BusinessUnitId": "4f8e1c2a-0000-0000-0000-000000000001", "UserId": "7d3c9a10-0000-0000-0000-00000000a991",
                "OrganizationId": org.organization_id}

    @app.get(API_PATH + "/{entity_set}")
    async def query(entity_set: str, request: Request):
        if request_host(request.headers) != org.host:
            return Response(status_code=404)
        bad = gate(request)
        if bad is not None:
            return bad
        if entity_set not in TABLES:
            return _odata_error(404, "0x80060888", f"Resource not found for the segment '{entity_set}'.")
        pk, cols = TABLES[entity_set]
        etype = f"Microsoft.Dynamics.CRM.{ENTITY_TYPE[entity_set]}"
        q = request.query_params
        unknown_opt = [k for k in q if k.startswith("$") and k not in ("$select", "$filter", "$orderby", "$top", "$skiptoken")]
        if unknown_opt:
            return _odata_error(400, "0x80060888", f"The query parameter '{unknown_opt[0]}' is not supported.")
        select = [c.strip() for c in q.get("$select", "").split(",") if c.strip()] or list(cols)
        for c in select:
            if c not in cols:
                return _odata_error(400, "0x80060888", f"Could not find a property named '{c}' on type '{etype}'.")
        # $filter
        conds = []
        text = q.get("$filter", "").strip()
        if text:
            for part in re.split(r"\s+and\s+", text):
                m = _CMP.match(part)
                if not m or m.group(1) not in cols:
                    prop = m.group(1) if m else part.strip().split(" ")[0]
                    if m is None:
                        return _odata_error(400, "0x80060888", f"Syntax error at position {text.find(part)} in '{text}'.")
                    return _odata_error(400, "0x80060888", f"Could not find a property named '{prop}' on type '{etype}'.")
                col, op, lit = m.groups()
                if col not in DATE_COLUMNS:
                    return _odata_error(400, "0x80060888", f"The fake filters date columns only, not '{col}'.")
                try:
                    conds.append((col, op, _parse_time(lit)))
                except ValueError:
                    return _odata_error(400, "0x80060888", f"Syntax error: '{lit}' is not a valid DateTimeOffset.")
        # $orderby
        order = []
        for part in [p.strip() for p in q.get("$orderby", "").split(",") if p.strip()]:
            bits = part.split()
            if bits[0] not in cols or len(bits) > 2 or (len(bits) == 2 and bits[1] not in ("asc", "desc")):
                return _odata_error(400, "0x80060888", f"Could not find a property named '{bits[0]}' on type '{etype}'.")
            order.append((bits[0], len(bits) == 2 and bits[1] == "desc"))
        if not any(c == pk for c, _ in order):
            order.append((pk, False))  # Dataverse pages in a stable order: the primary key breaks ties

        prefs = _prefer(request.headers.get("prefer", ""))
        applied = []
        size = MAX_PAGE_SIZE
        if "odata.maxpagesize" in prefs:
            try:
                size = max(1, min(MAX_PAGE_SIZE, int(prefs["odata.maxpagesize"])))
                applied.append(f"odata.maxpagesize={size}")
            except ValueError:
                pass
        annotations = prefs.get("odata.include-annotations", "")
        with_lookup_names = annotations in ("*", LOOKUP_ANNOTATION) or LOOKUP_ANNOTATION in annotations.split(",")
        if annotations:
            applied.append(f'odata.include-annotations="{annotations}"')
        top = int(q["$top"]) if q.get("$top", "").isdigit() else None

        def ok(row) -> bool:
            for col, op, when in conds:
                v = row.get(col)
                if v is None:
                    return False
                v = _parse_time(v)
                if not {"ge": v >= when, "gt": v > when, "le": v <= when, "lt": v < when, "eq": v == when}[op]:
                    return False
            return True

        def key(row):
            return tuple((row.get(c) is not None, row.get(c) or "") for c, _ in order)

        rows = [r for r in org.rows[entity_set].values() if ok(r)]
        for c, desc in reversed(order):
            rows.sort(key=lambda r: (r.get(c) is not None, r.get(c) if r.get(c) is not None else ""), reverse=desc)
        token = q.get("$skiptoken")
        page_no = 1
        if token:
            m = re.search(r'pagenumber="(\d+)".*pagingcookie="([^"]*)"', token)
            if not m:
                return _odata_error(400, "0x80040203", "Invalid paging cookie.")
            page_no = int(m.group(1))
            last = tuple(tuple(x) for x in json.loads(base64.urlsafe_b64decode(m.group(2))))

            def after(row) -> bool:  # keyset: strictly after the last row of the previous page
                for (c, desc), lv in zip(order, last):
                    rv = (row.get(c) is not None, row.get(c) or "")
                    if rv != tuple(lv):
                        return (rv < tuple(lv)) if desc else (rv > tuple(lv))
                return False
            rows = [r for r in rows if after(r)]
        if top is not None:
            rows, more = rows[:top], False
        else:
            more = len(rows) > size
            rows = rows[:size]
        out = []
        for r in rows:
            rec: dict[str, Any] = {"@odata.etag": f'W/"{r["@version"]}"'}
            for c in select:
                rec[c] = r.get(c)
                if with_lookup_names and c.startswith("_") and c.endswith("_value") and r.get(c) is not None:
                    rec[f"{c}@{LOOKUP_ANNOTATION}"] = org.lookup_table(c, r.get(c))
            rec[pk] = r[pk]
            out.append(rec)
        body: dict[str, Any] = {"@odata.context": f"{org.base_url}/$metadata#{entity_set}({','.join(select)})",
                                "value": out}
        if more and rows:
            cookie = base64.urlsafe_b64encode(json.dumps([list(x) for x in key(rows[-1])]).encode()).decode()
            params = {k: v for k, v in q.items() if k != "$skiptoken"}
            params["$skiptoken"] = f'<cookie pagenumber="{page_no + 1}" pagingcookie="{cookie}" istracking="False" />'
            body["@odata.nextLink"] = f"{org.base_url}/{entity_set}?" + urlencode(params, quote_via=quote, safe="$,")
        headers = {"OData-Version": "4.0"}
        if applied:
            headers["Preference-Applied"] = ",".join(applied)
        return JSONResponse(body, headers=headers)

    return app
