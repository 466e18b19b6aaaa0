"""The fake ServiceNow's HTTP surface: `create_app(instance)` serves https://<instance>.service-now.com
as the Table API documents it.

- `GET /api/now/table/{table}`: `sysparm_query` (encoded query: `field>=value`, `<`, `>`, `<=`, `=`,
  `!=`, joined by `^`, `ORDERBYfield` / `ORDERBYDESCfield`; a term on an unknown field or with a
  date-time that does not parse is ignored, as ServiceNow ignores invalid query terms by default),
  `sysparm_fields`, `sysparm_limit` (default and cap 10,000) / `sysparm_offset`, a `Link` header with
  first/prev/next/last URLs on the instance host, `X-Total-Count`, `sysparm_display_value`
  (false: stored values, UTC date-times; true: labels, reference display names and date-times in the
  user's time zone; all: both), `sysparm_exclude_reference_link`. Empty fields are "" (not null).
- Auth: basic (user name and password) or an OAuth bearer token from `POST /oauth_token.do`
  (password grant, client credentials, refresh token); 401 `User Not Authenticated` otherwise.
- Rate limit rule (per user per hour): every response carries `X-RateLimit-Limit`, `-Reset`, `-Rule`;
  over the limit, 429 with `Retry-After` (seconds to the next hour).
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from typing import Any, Optional
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from gs_assets.connectors.rest_api.fakes.harness import request_host

from .instance import CHOICES, DISPLAY_FIELD, REFERENCES, Instance, parse_sn_time

DATE_FIELDS = {"sys_updated_on", "sys_created_on", "opened_at", "closed_at", "resolved_at"}
OPS = (">=", "<=", "!=", ">", "<", "=")
USER_TZ = ZoneInfo("America/Los_Angeles")  # the integration user's time zone (display values only)


def _fail(status: int, message: str, detail: str, headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "detail": detail}, "status": "failure"},
                        status_code=status, headers=headers)


def _unauthenticated() -> JSONResponse:
    return _fail(401, "User Not Authenticated", "Required to provide Auth information")


def parse_query(q: str, known: set[str]) -> tuple[list[tuple[str, str, str]], list[tuple[str, bool]]]:
    """(filters, order) of an encoded query; invalid terms are dropped."""
    filters, order = [], []
    for term in (q or "").split("^"):
        term = term.strip()
        if not term:
            continue
        if term.startswith("ORDERBYDESC"):
            order.append((term[len("ORDERBYDESC"):], True))
            continue
        if term.startswith("ORDERBY"):
            order.append((term[len("ORDERBY"):], False))
            continue
        for op in OPS:
            i = term.find(op)
            if i > 0:
                name, value = term[:i], term[i + len(op):]
                break
        else:
            continue
        if name not in known:
            continue  # unknown field: ServiceNow ignores the term
        if name in DATE_FIELDS:
            try:
                parse_sn_time(value)
            except ValueError:
                continue  # not 'YYYY-MM-DD HH:MM:SS': an invalid term, ignored
        filters.append((name, op, value))
    return filters, order


def _match(rec: dict, filters) -> bool:
    for name, op, value in filters:
        v = rec.get(name) or ""
        ok = {">=": v >= value, "<=": v <= value, ">": v > value, "<": v < value, "=": v == value,
              "!=": v != value}[op]
        if name in DATE_FIELDS and op != "!=" and v == "":
            ok = False  # an empty date matches no comparison
        if not ok:
            return False
    return True


def create_app(instance: Instance) -> FastAPI:
    app = FastAPI(title="fake ServiceNow")
    inst = instance

    def authenticate(request: Request) -> Optional[str]:
        h = request.headers.get("authorization") or ""
        if h.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            return user if inst.users.get(user) == pw and pw else None
        if h.startswith("Bearer "):
            return inst.token_user(h[7:].strip())
        return None

    def limit_headers(user: str) -> tuple[dict[str, str], bool]:
        now = inst.clock.now()
        hour = now.replace(minute=0, second=0, microsecond=0)
        reset = hour + timedelta(hours=1)
        if inst.faults.rate_limit_next > 0:
            inst.faults.rate_limit_next -= 1
            return ({"Retry-After": str(inst.faults.retry_after_s), "X-RateLimit-Limit": str(inst.rate_limit.limit if inst.rate_limit else 0),
                     "X-RateLimit-Reset": str(int(reset.timestamp())), "X-RateLimit-Rule": "fault"}, True)
        rule = inst.rate_limit
        if rule is None:
            return {}, False
        key = (user, hour.isoformat())
        inst.hour_counts[key] = inst.hour_counts.get(key, 0) + 1
        h = {"X-RateLimit-Limit": str(rule.limit), "X-RateLimit-Reset": str(int(reset.timestamp())),
             "X-RateLimit-Rule": rule.sys_id}
        if inst.hour_counts[key] > rule.limit:
            h["Retry-After"] = str(max(1, int((reset - now).total_seconds())))
            return h, True
        return h, False

    @app.post("/oauth_token.do")
    async def token(request: Request):
        if request_host(request.headers) != inst.host:
            return PlainTextResponse("Instance not found", status_code=404)
        form = dict((await request.form()).items())
        inst.token_requests += 1
        denied = JSONResponse({"error_description": "access_denied", "error": "server_error"}, status_code=401)
        cid, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not cid or inst.oauth_clients.get(cid) != secret:
            return denied
        grant = form.get("grant_type")
        if grant == "password":
            user = form.get("username", "")
            if inst.users.get(user) != form.get("password") or not form.get("password"):
                return denied
        elif grant == "client_credentials" and inst.client_credentials_enabled:
            user = next(iter(inst.users), "oauth.app.user")
        else:
            return JSONResponse({"error_description": "access_denied", "error": "server_error"}, status_code=401)
        tok, life = inst.issue_token(user)
        return {"access_token": tok, "refresh_token": "rt-" + tok[:12], "scope": "useraccount", "token_type": "Bearer",
                "expires_in": life}

    @app.get("/api/now/table/{table}")
    async def table(table: str, request: Request):
        if request_host(request.headers) != inst.host:
            return PlainTextResponse("Instance not found", status_code=404)
        user = authenticate(request)
        if user is None:
            return _unauthenticated()
        rl, limited = limit_headers(user)
        if limited:
            return _fail(429, "Rate limit exceeded", f"Rate limit of {rl.get('X-RateLimit-Limit')} requests per hour "
                         "reached for this user", headers=rl)
        if table not in inst.tables:
            return _fail(400, "Invalid table " + table, "", headers=rl)
        q = request.query_params
        rows = list(inst.tables[table].values())
        known = set().union(*(r.keys() for r in rows)) if rows else {"sys_id", "sys_updated_on", "sys_created_on"}
        known |= set(REFERENCES.get(table, {})) | {"sys_updated_on", "sys_created_on", "sys_id"}
        filters, order = parse_query(q.get("sysparm_query", ""), known)
        rows = [r for r in rows if _match(r, filters)]
        for name, desc in reversed(order):
            rows.sort(key=lambda r: r.get(name) or "", reverse=desc)
        try:
            limit = int(q.get("sysparm_limit") or inst.max_limit)
            offset = int(q.get("sysparm_offset") or 0)
        except ValueError:
            return _fail(400, "Invalid sysparm_limit or sysparm_offset", "", headers=rl)
        limit = max(1, min(limit, inst.max_limit))
        total = len(rows)
        page = rows[offset:offset + limit]
        fields = [f for f in (q.get("sysparm_fields") or "").split(",") if f.strip()]
        dv = (q.get("sysparm_display_value") or "false").lower()
        no_link = (q.get("sysparm_exclude_reference_link") or "false").lower() == "true"
        result = [_render(table, r, fields, dv, no_link, known) for r in page]
        headers = {**rl, "X-Total-Count": str(total), "Link": _links(table, dict(q), limit, offset, total)}
        inst.faults.calls += 1
        hook = inst.faults.after_call.pop(inst.faults.calls, None)
        if hook is not None:
            hook()
        return JSONResponse({"result": result}, headers=headers)

    def _render(table: str, rec: dict, fields: list[str], dv: str, no_link: bool, known: set[str]) -> dict:
        names = [f for f in fields if f in known] if fields else sorted(known)
        out: dict[str, Any] = {}
        refs = REFERENCES.get(table, {})
        for name in names:
            value = rec.get(name)
            value = "" if value is None else value
            display = value
            if name in refs and value:
                target = inst.tables[refs[name]].get(value) or {}
                display = target.get(DISPLAY_FIELD[refs[name]], "")
            elif name in CHOICES.get(table, {}):
                display = CHOICES[table][name].get(value, value)
            elif name in DATE_FIELDS and value:
                display = parse_sn_time(value).astimezone(USER_TZ).strftime("%Y-%m-%d %H:%M:%S")
            link = f"https://{inst.host}/api/now/table/{refs[name]}/{value}" if name in refs and value else None
            if dv == "all":
                item = {"display_value": display, "value": value}
                if link and not no_link:
                    item["link"] = link
                out[name] = item
            elif dv == "true":
                out[name] = {"display_value": display, "link": link} if link and not no_link else display
            else:
                out[name] = {"link": link, "value": value} if link and not no_link else value
        return out

    def _links(table: str, params: dict, limit: int, offset: int, total: int) -> str:
        def url(off: int) -> str:
            return f"https://{inst.host}/api/now/table/{table}?" + urlencode(
                {**params, "sysparm_limit": limit, "sysparm_offset": off})
        last = max(0, ((total - 1) // limit) * limit) if total else 0
        links = [f'<{url(0)}>;rel="first"']
        if offset > 0:
            links.append(f'<{url(max(0, offset - limit))}>;rel="prev"')
        if offset + limit < total:
            links.append(f'<{url(offset + limit)}>;rel="next"')
        links.append(f'<{url(last)}>;rel="last"')
        return ",".join(links)

    return app


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)
