"""The fake HubSpot's HTTP surface: `create_app(portal)` serves api.hubapi.com as HubSpot documents it.

Order of checks on an API call (what a real request meets first comes first): the Host header
(other hosts 404), the call counter and scheduled property drift, a 5xx burst from the fault plan,
authentication (private-app token or OAuth access token, with its 30-minute expiry), the rate
limits (burst window and daily budget for every endpoint, the search endpoints' own per-second
budget), then the endpoint. The token endpoint (/oauth/v1/token) is not counted as an API call.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from typing import Any, Optional
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from gs_assets.connectors.rest_api.fakes.harness import request_host

from .portal import (ASSOC_TYPES, DEFAULT_PROPERTIES, HOST, LAST_MODIFIED, TYPE_ALIASES, HubSpotPortal, Record,
                     iso_ms, to_ms)

SEARCH_CAP = 10_000
LIST_MAX = 100
SEARCH_MAX = 200
OWNERS_MAX = 500
BATCH_MAX = 1000
AUTH_HELP = ("Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
             "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview")


def _cid() -> str:
    return str(uuid.uuid4())


def _error(status: int, message: str, category: str, headers: Optional[dict] = None, **extra) -> JSONResponse:
    body = {"status": "error", "message": message, "correlationId": _cid(), "category": category, **extra}
    return JSONResponse(body, status_code=status, headers=headers)


class _Call:
    """What the gate learned about a call: auth kind, whether it is a search, the headers to add."""

    def __init__(self, auth: str, search: bool):
        self.auth, self.search, self.headers = auth, search, {}


class _Gate:
    def __init__(self, portal: HubSpotPortal):
        self.p = portal

    # -- pieces -------------------------------------------------------------------------------------
    def _apply_clock_faults(self) -> None:
        f, now = self.p.faults, self.p.clock.now()
        if f.oauth_expire_at is not None and now >= f.oauth_expire_at:
            self.p.expire_oauth_tokens()
            f.oauth_expire_at = None
        if f.oauth_expire_after_calls is not None and self.p.calls > f.oauth_expire_after_calls:
            self.p.expire_oauth_tokens()
            f.oauth_expire_after_calls = None
        if f.rate_limit_after_calls is not None and self.p.calls > f.rate_limit_after_calls:
            if f.rate_limit_policy == "DAILY":
                tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo)
                self.p.forced_limit = ("DAILY", tomorrow)
            else:
                self.p.forced_limit = ("SECONDLY", now + timedelta(seconds=self.p.rate_limits.burst_window_s))
            f.rate_limit_after_calls = None
        due = [d for d in f.drift if self.p.calls > d[0]]
        for d in due:
            f.drift.remove(d)
            d[1]()

    def _server_error(self) -> Optional[Response]:
        for entry in self.p.faults.server_errors:
            start, remaining, status = entry
            if self.p.calls > start and remaining > 0:
                entry[1] -= 1
                if status in (502, 504):
                    return HTMLResponse(f"<html><head><title>{status} Bad Gateway</title></head><body><center>"
                                        f"<h1>{status}</h1></center></body></html>", status_code=status)
                return _error(status, "Service Unavailable" if status == 503 else "Internal error", "INTERNAL_ERROR")
        self.p.faults.server_errors = [e for e in self.p.faults.server_errors if e[1] > 0]
        return None

    def _auth(self, request: Request) -> tuple[Optional[str], Optional[Response]]:
        header = request.headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, _error(401, AUTH_HELP, "INVALID_AUTHENTICATION")
        token = token.strip()
        if token in self.p.private_app_tokens:
            return "private", None
        tok = self.p.access_tokens.get(token)
        if tok is None:
            return None, _error(401, AUTH_HELP, "INVALID_AUTHENTICATION")
        now = self.p.clock.now()
        if now >= tok.expires_at:
            ago = int((now - tok.expires_at).total_seconds())
            return None, _error(401, f"The OAuth token used to make this call expired {ago} second(s) ago.",
                                "EXPIRED_AUTHENTICATION")
        return "oauth", None

    def _rate_limit(self, call: _Call) -> Optional[Response]:
        p, rl, now = self.p, self.p.rate_limits, self.p.clock.now()
        if now.date() != p.daily_day:
            p.daily_day, p.daily_used = now.date(), 0
        window = timedelta(seconds=rl.burst_window_s)
        p.burst_log = [t for t in p.burst_log if t > now - window]
        p.search_log = [t for t in p.search_log if t > now - timedelta(seconds=1)]
        policy, retry_after = None, 0.0
        if self.p.forced_limit and now < self.p.forced_limit[1]:
            policy, retry_after = self.p.forced_limit[0], (self.p.forced_limit[1] - now).total_seconds()
        elif self.p.forced_limit:
            self.p.forced_limit = None
        if policy is None and rl.enforce:
            if p.daily_used >= rl.daily_limit:
                tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo)
                policy, retry_after = "DAILY", (tomorrow - now).total_seconds()
            elif len(p.burst_log) >= rl.burst_limit:
                policy, retry_after = "SECONDLY", (p.burst_log[0] + window - now).total_seconds()
            elif call.search and len(p.search_log) >= rl.search_per_second:
                policy, retry_after = "SECONDLY", (p.search_log[0] + timedelta(seconds=1) - now).total_seconds()
        if policy is None:
            p.burst_log.append(now)
            p.daily_used += 1
            if call.search:
                p.search_log.append(now)
        call.headers = self._headers(call)
        if policy is None:
            return None
        which = "daily" if policy == "DAILY" else "secondly"
        headers = dict(call.headers)
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        body = {"status": "error", "message": f"You have reached your {which} limit.", "errorType": "RATE_LIMIT",
                "correlationId": _cid(), "policyName": policy, "requestId": _cid()}
        return JSONResponse(body, status_code=429, headers=headers)

    def _headers(self, call: _Call) -> dict:
        """HubSpot's rate-limit headers. Search responses carry none (HubSpot documents that its search
        endpoints omit them); OAuth calls carry no daily headers."""
        p, rl, now = self.p, self.p.rate_limits, self.p.clock.now()
        headers = {"X-HubSpot-Correlation-Id": _cid()}
        if call.search:
            return headers
        secondly = max(1, math.ceil(rl.burst_limit / rl.burst_window_s))
        last_second = sum(1 for t in p.burst_log if t > now - timedelta(seconds=1))
        headers.update({
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(rl.burst_window_s * 1000),
            "X-HubSpot-RateLimit-Max": str(rl.burst_limit),
            "X-HubSpot-RateLimit-Remaining": str(max(0, rl.burst_limit - len(p.burst_log))),
            "X-HubSpot-RateLimit-Secondly": str(secondly),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(max(0, secondly - last_second)),
        })
        if call.auth == "private":
            headers["X-HubSpot-RateLimit-Daily"] = str(rl.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, rl.daily_limit - p.daily_used))
        return headers

    # -- the gate -----------------------------------------------------------------------------------
    def __call__(self, request: Request, search: bool = False) -> _Call | Response:
        p = self.p
        p.calls += 1
        p.calls_by_path[request.url.path] = p.calls_by_path.get(request.url.path, 0) + 1
        self._apply_clock_faults()
        failed = self._server_error()
        if failed is not None:
            return failed
        auth, failed = self._auth(request)
        if failed is not None:
            return failed
        call = _Call(auth, search)
        limited = self._rate_limit(call)
        return limited if limited is not None else call


def _ok(call: _Call, body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=call.headers)


def _multi(request: Request, name: str) -> list[str]:
    out = []
    for v in request.query_params.getlist(name):
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    return default if raw in (None, "") else int(raw)


def _bool_param(request: Request, name: str) -> bool:
    return (request.query_params.get(name) or "false").lower() == "true"


def _link(request: Request, **overrides) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in overrides]
    params += list(overrides.items())
    return f"https://{HOST}{request.url.path}?{urlencode(params)}"


def create_app(portal: HubSpotPortal) -> FastAPI:
    app = FastAPI(title="fake HubSpot", docs_url=None, redoc_url=None, openapi_url=None)
    gate = _Gate(portal)

    @app.middleware("http")
    async def only_hubapi(request: Request, call_next):
        if request_host(request.headers) != HOST:
            return JSONResponse({"status": "error", "message": "Not Found"}, status_code=404)
        return await call_next(request)

    def object_type(raw: str) -> Optional[str]:
        return TYPE_ALIASES.get(raw.lower())

    def select_properties(otype: str, requested: Optional[list[str]]) -> list[str]:
        defined = portal.properties[otype]
        names = DEFAULT_PROPERTIES[otype] if not requested else requested
        always = ["hs_object_id", "createdate", LAST_MODIFIED[otype]]
        out = [n for n in names if n in defined]
        return out + [n for n in always if n not in out]

    def render(rec: Record, names: list[str], snap: Optional[dict] = None) -> dict:
        snap = snap or rec.snapshot()
        props = snap["properties"]
        out = {"id": rec.id, "properties": {n: props.get(n) for n in names},
               "createdAt": iso_ms(snap["created_ms"]), "updatedAt": iso_ms(snap["updated_ms"]),
               "archived": snap["archived"]}
        if snap["archived"]:
            out["archivedAt"] = iso_ms(snap["archived_ms"])
        return out

    def v3_associations(otype: str, rec: Record, wanted: list[str]) -> dict:
        out = {}
        for raw in wanted:
            to = TYPE_ALIASES.get(raw.lower())
            if to is None or (otype, to) not in ASSOC_TYPES:
                continue
            single = {"contacts": "contact", "companies": "company", "deals": "deal"}
            kind = f"{single[otype]}_to_{single[to]}"
            results = []
            for to_id, primary in portal.associations(otype, rec.id, to):
                if primary:  # v3 lists a primary association twice: labelled and unlabeled
                    results.append({"id": to_id, "type": kind})
                results.append({"id": to_id, "type": f"{kind}_unlabeled"})
            if results:
                out[raw] = {"results": results}
        return out

    # ---------------------------------------------------------------- OAuth ---------------------------
    @app.post("/oauth/v1/token")
    async def token(request: Request):
        portal.token_requests += 1
        form = await request.form()
        grant, client_id, secret = form.get("grant_type"), form.get("client_id"), form.get("client_secret")

        def bad(status: str, message: str) -> JSONResponse:
            return JSONResponse({"status": status, "message": message, "correlationId": _cid(), "requestId": _cid()},
                                status_code=400)

        if grant not in ("refresh_token", "authorization_code"):
            return bad("BAD_GRANT_TYPE", "missing or unknown grant type")
        if client_id not in portal.oauth_clients:
            return bad("BAD_CLIENT_ID", "missing or unknown client id")
        if portal.oauth_clients[client_id] != secret:
            return bad("BAD_CLIENT_SECRET", "missing or invalid client secret")
        if grant == "refresh_token":
            refresh = form.get("refresh_token")
            if portal.refresh_tokens.get(refresh) != client_id:
                return bad("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
        else:
            code = form.get("code")
            if portal.auth_codes.pop(code, None) != client_id:
                return bad("BAD_AUTH_CODE", "missing or unknown auth code")
            refresh = f"na1-{uuid.uuid4().hex[:4]}-{uuid.uuid4()}"
            portal.refresh_tokens[refresh] = client_id
        tok = portal.issue_access_token(client_id)
        return JSONResponse({"token_type": "bearer", "refresh_token": refresh, "access_token": tok.token,
                             "expires_in": portal.token_lifetime_s})

    @app.get("/oauth/v1/access-tokens/{tok}")
    async def token_info(tok: str):
        info = portal.access_tokens.get(tok)
        now = portal.clock.now()
        if info is None or now >= info.expires_at:
            return _error(404, "Token not found", "OBJECT_NOT_FOUND")
        return JSONResponse({"token": tok, "hub_id": portal.portal_id, "app_id": 1, "user": "integration@gsdp-demo.io",
                             "hub_domain": "gsdp-demo.hubspot.com", "token_type": "access",
                             "scopes": ["oauth", "crm.objects.contacts.read", "crm.objects.companies.read",
                                        "crm.objects.deals.read", "crm.objects.owners.read"],
                             "expires_in": int((info.expires_at - now).total_seconds())})

    # ---------------------------------------------------------------- account ------------------------
    @app.get("/account-info/v3/details")
    async def account_details(request: Request):
        call = gate(request)
        if not isinstance(call, _Call):
            return call
        return _ok(call, {"portalId": portal.portal_id, "accountType": "STANDARD", "timeZone": "UTC",
                          "companyCurrency": "USD", "additionalCurrencies": [], "utcOffset": "+00:00",
                          "utcOffsetMilliseconds": 0, "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1"})

    @app.get("/account-info/v3/api-usage/daily/private-apps")
    async def daily_usage(request: Request):
        call = gate(request)
        if not isinstance(call, _Call):
            return call
        now = portal.clock.now()
        tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo)
        return _ok(call, {"results": [{"name": "private-apps-api-calls-daily", "usageLimit": portal.rate_limits.daily_limit,
                                       "currentUsage": portal.daily_used, "collectedAt": iso_ms(to_ms(now)),
                                       "fetchStatus": "SUCCESS", "resetsAt": iso_ms(to_ms(tomorrow))}]})

    # ---------------------------------------------------------------- owners -------------------------
    @app.get("/crm/v3/owners")
    @app.get("/crm/v3/owners/")
    async def owners(request: Request):
        call = gate(request)
        if not isinstance(call, _Call):
            return call
        limit = _int_param(request, "limit", 100)
        if not 1 <= limit <= OWNERS_MAX:
            return _error(400, f"limit must be between 1 and {OWNERS_MAX}", "VALIDATION_ERROR")
        archived = _bool_param(request, "archived")
        email = request.query_params.get("email")
        after = request.query_params.get("after")
        rows = sorted((o for o in portal.owners.values() if o.archived == archived and (not email or o.email == email)),
                      key=lambda o: int(o.id))
        if after:
            rows = [o for o in rows if int(o.id) >= int(after)]
        page, rest = rows[:limit], rows[limit:]
        body: dict = {"results": [o.as_json() for o in page]}
        if rest:
            body["paging"] = {"next": {"after": rest[0].id, "link": _link(request, after=rest[0].id)}}
        return _ok(call, body)

    # ---------------------------------------------------------------- properties ---------------------
    @app.get("/crm/v3/properties/{raw_type}")
    async def properties(raw_type: str, request: Request):
        call = gate(request)
        if not isinstance(call, _Call):
            return call
        otype = object_type(raw_type)
        if otype is None:
            return _error(400, f"Unable to infer object type from: {raw_type}", "VALIDATION_ERROR")
        return _ok(call, {"results": [p.as_json() for p in portal.properties[otype].values()]})

    # ---------------------------------------------------------------- objects (list/read) -------------
    @app.get("/crm/v3/objects/{raw_type}")
    async def list_objects(raw_type: str, request: Request):
        call = gate(request)
        if not isinstance(call, _Call):
            return call
        otype = object_type(raw_type)
        if otype is None:
            return _error(400, f"Unable to infer object type from: {raw_type}", "VALIDATION_ERROR")
        try:
            limit = _int_param(request, "limit", 10)
            after = request.query_params.get("after")
            after_id = int(after) if after else None
        except ValueError:
            return _error(400, "limit and after must be integers", "VALIDATION_ERROR")
        if not 1 <= limit <= LIST_MAX:
            return _error(400, f"limit must be between 1 and {LIST_MAX}", "VALIDATION_ERROR")
        archived = _bool_param(request, "archived")
        names = select_properties(otype, _multi(request, "properties"))
        wanted_assoc = _multi(request, "associations")
        rows = sorted((r for r in portal.records[otype].values() if r.archived == archived), key=lambda r: int(r.id))
        if after_id is not None:
            rows = [r for r in rows if int(r.id) >= after_id]
        page, rest = rows[:limit], rows[limit:]
        results = []
        for rec in page:
            item = render(rec, names)
            assoc = v3_associations(otype, rec, wanted_assoc) if wanted_assoc and not archived else {}
            if assoc:
                item["associations"] = assoc
            results.append(item)
        body: dict = {"results": results}
        if rest:
            body["paging"] = {"next": {"after": rest[0].id, "link": _link(request, after=rest[0].id)}}
        return _ok(call, body)

    @app.get("/crm/v3/objects/{raw_type}/{record_id}")
    async def read_object(raw_type: str, record_id: str, request: Request):
        call = gate(request)
        if not isinstance(call, _Call):
            return call
        otype = object_type(raw_type)
        if otype is None:
            return _error(400, f"Unable to infer object type from: {raw_type}", "VALIDATION_ERROR")
        rec = portal.records[otype].get(record_id)
        if rec is None or rec.archived != _bool_param(request, "archived"):
            return _error(404, "resource not found", "OBJECT_NOT_FOUND")
        item = render(rec, select_properties(otype, _multi(request, "properties")))
        assoc = v3_associations(otype, rec, _multi(request, "associations"))
        if assoc:
            item["associations"] = assoc
        return _ok(call, item)

    # ---------------------------------------------------------------- search --------------------------
    @app.post("/crm/v3/objects/{raw_type}/search")
    async def search(raw_type: str, request: Request):
        call = gate(request, search=True)
        if not isinstance(call, _Call):
            return call
        otype = object_type(raw_type)
        if otype is None:
            return _error(400, f"Unable to infer object type from: {raw_type}", "VALIDATION_ERROR")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Invalid input JSON on line 1", "VALIDATION_ERROR")
        problem, query = _parse_search(portal, otype, body if isinstance(body, dict) else {})
        if problem:
            return _error(400, problem, "VALIDATION_ERROR")
        offset, limit = query["after"], query["limit"]
        if offset >= SEARCH_CAP:
            return _error(400, f"There was a problem with the request. Paging beyond {SEARCH_CAP} results is not "
                               f"supported (after={offset}).", "VALIDATION_ERROR")
        portal.refresh_index()
        matches = []
        for rec in portal.records[otype].values():
            snap = rec.indexed
            if snap is None or snap["archived"]:
                continue
            if _matches(portal, otype, snap, query["groups"]):
                matches.append((rec, snap))
        matches.sort(key=lambda rs: _sort_key(portal, otype, rs, query["sort"]), reverse=False)
        if query["descending"]:
            matches.reverse()
        end = min(offset + limit, SEARCH_CAP)
        page = matches[offset:end]
        names = select_properties(otype, query["properties"])
        out: dict = {"total": len(matches), "results": [render(r, names, s) for r, s in page]}
        if end < len(matches):
            out["paging"] = {"next": {"after": str(end)}}
        return _ok(call, out)

    # ---------------------------------------------------------------- associations v4 -----------------
    def assoc_types(from_type: str, to_type: str, primary: bool) -> list[dict]:
        primary_id, unlabeled_id = ASSOC_TYPES[(from_type, to_type)]
        types = [{"category": "HUBSPOT_DEFINED", "typeId": primary_id, "label": "Primary"}] if primary else []
        return types + [{"category": "HUBSPOT_DEFINED", "typeId": unlabeled_id, "label": None}]

    @app.get("/crm/v4/objects/{raw_from}/{record_id}/associations/{raw_to}")
    async def v4_list(raw_from: str, record_id: str, raw_to: str, request: Request):
        call = gate(request)
        if not isinstance(call, _Call):
            return call
        f, t = object_type(raw_from), object_type(raw_to)
        if f is None or t is None or (f, t) not in ASSOC_TYPES:
            return _error(400, f"Unknown association {raw_from} -> {raw_to}", "VALIDATION_ERROR")
        limit = _int_param(request, "limit", 500)
        after = request.query_params.get("after")
        links = portal.associations(f, record_id, t)
        if after:
            links = [lk for lk in links if int(lk[0]) >= int(after)]
        page, rest = links[:limit], links[limit:]
        body: dict = {"results": [{"toObjectId": int(i), "associationTypes": assoc_types(f, t, p)} for i, p in page]}
        if rest:
            body["paging"] = {"next": {"after": rest[0][0], "link": _link(request, after=rest[0][0])}}
        return _ok(call, body)

    @app.post("/crm/v4/associations/{raw_from}/{raw_to}/batch/read")
    async def v4_batch_read(raw_from: str, raw_to: str, request: Request):
        call = gate(request)
        if not isinstance(call, _Call):
            return call
        f, t = object_type(raw_from), object_type(raw_to)
        if f is None or t is None or (f, t) not in ASSOC_TYPES:
            return _error(400, f"Unknown association {raw_from} -> {raw_to}", "VALIDATION_ERROR")
        try:
            inputs = [str(i["id"]) for i in (await request.json())["inputs"]]
        except (ValueError, KeyError, TypeError):
            return _error(400, "Invalid input JSON: expected {\"inputs\": [{\"id\": ...}]}", "VALIDATION_ERROR")
        if len(inputs) > BATCH_MAX:
            return _error(400, f"Batch input size {len(inputs)} is larger than the max of {BATCH_MAX}",
                          "VALIDATION_ERROR")
        started = iso_ms(portal.now_ms())
        results, errors = [], []
        single = {"contacts": "contact", "companies": "company", "deals": "deal"}
        for rid in dict.fromkeys(inputs):
            links = portal.associations(f, rid, t)
            if links:
                results.append({"from": {"id": rid}, "to": [{"toObjectId": int(i), "associationTypes": assoc_types(f, t, p)}
                                                            for i, p in links]})
            else:
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                               "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND", "context": {"fromObjectId": [rid]},
                               "message": f"No {single[t]} is associated with {single[f]} {rid}.", "errors": []})
        body: dict = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": iso_ms(portal.now_ms())}
        if errors:
            body.update({"numErrors": len(errors), "errors": errors})
            return _ok(call, body, status=207)
        return _ok(call, body)

    return app


# -------------------------------------------------------------------- search internals ---------------
OPERATORS = {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY",
             "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}


def _parse_search(portal: HubSpotPortal, otype: str, body: dict) -> tuple[Optional[str], dict]:
    try:
        limit = int(body.get("limit", 10))
        after = int(body.get("after") or 0)
    except (TypeError, ValueError):
        return "limit and after must be integers", {}
    if not 1 <= limit <= SEARCH_MAX:
        return f"limit must be between 1 and {SEARCH_MAX}", {}
    groups = body.get("filterGroups") or []
    if len(groups) > 5 or sum(len(g.get("filters") or []) for g in groups) > 25 or any(
            len(g.get("filters") or []) > 10 for g in groups):
        return "Too many filter groups or filters (max 5 groups, 10 filters per group, 25 in total)", {}
    for g in groups:
        for flt in g.get("filters") or []:
            if flt.get("operator") not in OPERATORS:
                return f"Unknown operator {flt.get('operator')!r} in filter {flt!r}", {}
    sorts = body.get("sorts") or []
    if len(sorts) > 1:
        return "Only one sort is supported per search request", {}
    sort, descending = None, False
    if sorts:
        s = sorts[0]
        if isinstance(s, str):
            sort, descending = s.lstrip("-"), s.startswith("-")
        else:
            sort, descending = s.get("propertyName"), (s.get("direction") or "ASCENDING").upper() == "DESCENDING"
    props = body.get("properties")
    return None, {"limit": limit, "after": after, "groups": groups, "sort": sort, "descending": descending,
                  "properties": list(props) if props else None}


def _value(portal: HubSpotPortal, otype: str, name: str, raw: Any) -> Any:
    """A property value (or filter value) in comparable form: ms for datetimes, numbers for numbers."""
    if raw is None:
        return None
    prop = portal.properties[otype].get(name)
    kind = prop.type if prop else "string"
    if name == "hs_object_id":
        kind = "number"
    s = str(raw)
    if kind in ("datetime", "date"):
        if s.lstrip("-").isdigit():
            return int(s)
        try:
            return to_ms(datetime.fromisoformat(s.replace("Z", "+00:00")))
        except ValueError:
            return s
    if kind == "number":
        try:
            return float(s)
        except ValueError:
            return s
    return s.lower()


def _matches(portal: HubSpotPortal, otype: str, snap: dict, groups: list) -> bool:
    if not groups:
        return True
    props = snap["properties"]
    for g in groups:
        ok = True
        for flt in g.get("filters") or []:
            name, op = flt.get("propertyName"), flt.get("operator")
            have = _value(portal, otype, name, props.get(name))
            want = _value(portal, otype, name, flt.get("value"))
            if op == "HAS_PROPERTY":
                ok = have is not None
            elif op == "NOT_HAS_PROPERTY":
                ok = have is None
            elif have is None:
                ok = op in ("NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN")
            elif op in ("IN", "NOT_IN"):
                vals = {_value(portal, otype, name, v) for v in flt.get("values") or []}
                ok = (have in vals) == (op == "IN")
            elif op == "BETWEEN":
                high = _value(portal, otype, name, flt.get("highValue"))
                ok = _cmp(want, have) <= 0 and _cmp(have, high) <= 0
            elif op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
                token = str(flt.get("value") or "").lower().strip("*")
                ok = (token in str(have)) == (op == "CONTAINS_TOKEN")
            else:
                c = _cmp(have, want)
                ok = {"EQ": c == 0, "NEQ": c != 0, "LT": c < 0, "LTE": c <= 0, "GT": c > 0, "GTE": c >= 0}[op]
            if not ok:
                break
        if ok:
            return True
    return False


def _cmp(a: Any, b: Any) -> int:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return (a > b) - (a < b)
    a, b = str(a), str(b)
    return (a > b) - (a < b)


def _tie(portal: HubSpotPortal, rec_id: str) -> Any:
    if portal.search_tie_order == "id":
        return int(rec_id)
    return (int(rec_id) * 2_654_435_761) % 4_294_967_296   # a fixed scramble: deterministic, not id order


def _sort_key(portal: HubSpotPortal, otype: str, rec_snap: tuple, sort: Optional[str]):
    rec, snap = rec_snap
    if not sort:
        return (0, 0, int(rec.id))
    v = _value(portal, otype, sort, snap["properties"].get(sort))
    missing = v is None
    if isinstance(v, (int, float)):
        v = (0, v, "")
    else:
        v = (1, 0, "" if v is None else str(v))
    return (missing, v, _tie(portal, rec.id))
