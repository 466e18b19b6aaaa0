"""The fake Zendesk's HTTP surface: `create_app(account)` serves https://<subdomain>.zendesk.com as
Zendesk documents its incremental exports
(https://developer.zendesk.com/documentation/ticketing/managing-tickets/using-the-incremental-export-api).

- cursor-based exports for tickets and users: `/api/v2/incremental/{tickets,users}/cursor.json`, the
  first request with `start_time` (epoch seconds), every later one with `cursor=<after_cursor>` only;
  `{tickets|users, after_url, after_cursor, before_url, before_cursor, end_of_stream}`; the cursor is a
  position in (timestamp, id) order, so records that share a second are neither lost nor repeated;
  `after_cursor` is given on the last page too: it is where the next export starts;
- the time-based export for organizations: `/api/v2/incremental/organizations.json?start_time=`,
  `{organizations, next_page, end_time, count, end_of_stream}`; the next page starts *at* `end_time`,
  so items of that second come again (Zendesk: "exclude duplicate items" is the client's job);
- up to 1000 items a page (`per_page`); items changed within the minute before the request are left
  out; a `start_time` in the future or less than a minute old is refused (400);
- deleted tickets stay in the ticket export with status `deleted` (unless `exclude_deleted=true`);
- 10 incremental export requests a minute, then 429 with `Retry-After` (seconds);
- API token (`Basic base64(email/token:api_token)`) or OAuth access token (`Bearer`); other 401.

Fake's choices where the documentation is silent: a request with both start_time and cursor is
refused (400); a full time-based page whose items all share its start second is extended to every item
of that second and its end_time is the next second (so paging advances instead of repeating the page).
"""

from __future__ import annotations

import base64
import binascii
from typing import Optional
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from gs_assets.connectors.rest_api.fakes.harness import request_host

from .account import ZendeskAccount, epoch_s

CURSOR_RESOURCES = ("tickets", "users")


def _error(status: int, error: str, description: str = "", headers: Optional[dict] = None) -> JSONResponse:
    body = {"error": error, **({"description": description} if description else {})}
    return JSONResponse(body, status_code=status, headers=headers)


def encode_cursor(ts: int, id: int) -> str:
    return base64.urlsafe_b64encode(f"{ts}.0||{id}|".encode()).decode().rstrip("=")


def decode_cursor(token: str) -> Optional[tuple[int, int]]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        ts, _, rest = raw.partition("||")
        return int(float(ts)), int(rest.strip("|"))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def create_app(account: ZendeskAccount) -> FastAPI:
    app = FastAPI(title="fake Zendesk")
    a = account

    def logged(request: Request, resp: Response) -> Response:
        a.requests.append((request.url.path, request.url.query, resp.status_code))
        return resp

    def gate(request: Request, export: bool) -> Optional[Response]:
        if request_host(request.headers) != a.host:
            return _error(404, "RecordNotFound", "Not found")
        header = request.headers.get("authorization") or ""
        scheme, _, cred = header.partition(" ")
        ok = False
        if scheme.lower() == "basic":
            try:
                user, _, secret = base64.b64decode(cred.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, secret = "", ""
            email, _, kind = user.partition("/")
            ok = kind == "token" and a.api_tokens.get(email) == secret and bool(secret)
        elif scheme.lower() == "bearer":
            ok = cred.strip() in a.oauth_tokens
        if not ok:
            return _error(401, "Couldn't authenticate you")
        if export:
            wait = a.take_export_call()
            if wait is not None:
                return JSONResponse(
                    {"error": "APIRateLimitExceeded",
                     "description": "Number of allowed incremental export API requests per minute exceeded"},
                    status_code=429, headers={"Retry-After": str(wait)})
        return None

    def per_page(request: Request) -> int:
        try:
            n = int(request.query_params.get("per_page") or a.page_limit)
        except ValueError:
            n = a.page_limit
        return max(1, min(n, a.page_limit))

    def check_start(raw: Optional[str]) -> tuple[Optional[int], Optional[Response]]:
        if raw is None or not raw.lstrip("-").isdigit():
            return None, _error(400, "InvalidValue", "start_time is required: a Unix epoch time in seconds")
        start = int(raw)
        now = epoch_s(a.clock.now())
        if start > now:
            return None, _error(400, "InvalidValue", "start_time cannot be in the future")
        if start > now - a.visibility_lag_seconds:
            return None, _error(400, "InvalidValue", "start_time must be more than one minute in the past")
        return start, None

    @app.get("/api/v2/users/me.json")
    async def me(request: Request):
        bad = gate(request, export=False)
        if bad is not None:
            return logged(request, bad)
        return logged(request, JSONResponse({"user": {"id": 1, "name": "API user", "role": "admin",
                                                      "url": f"https://{a.host}/api/v2/users/1.json"}}))

    @app.get("/api/v2/incremental/{resource}/cursor.json")
    async def cursor_export(resource: str, request: Request):
        if resource not in CURSOR_RESOURCES:
            return logged(request, _error(404, "InvalidEndpoint", "Not found"))
        bad = gate(request, export=True)
        if bad is not None:
            return logged(request, bad)
        q = request.query_params
        if q.get("cursor") and q.get("start_time") is not None:
            return logged(request, _error(400, "InvalidPaginationParameter",
                                          "send start_time on the first request only, then cursor"))
        if q.get("cursor"):
            pos = decode_cursor(q["cursor"])
            if pos is None:
                return logged(request, _error(400, "InvalidPaginationParameter", "cursor is invalid"))
        else:
            start, bad = check_start(q.get("start_time"))
            if bad is not None:
                return logged(request, bad)
            pos = (start - 1, 2 ** 62)  # every item stamped at or after start_time
        items = [x for x in a.visible(resource, a.clock.now(), exclude_deleted=q.get("exclude_deleted") == "true")
                 if (x[0], x[1]) > pos]
        n = per_page(request)
        page = items[:n]
        last = (page[-1][0], page[-1][1]) if page else pos
        after = encode_cursor(*last)
        body = {resource: [dict(x[2]) for x in page],
                "after_url": f"https://{a.host}/api/v2/incremental/{resource}/cursor.json?"
                             + urlencode({"cursor": after, **({"per_page": q["per_page"]} if "per_page" in q else {})}),
                "after_cursor": after, "before_url": None, "before_cursor": None,
                "end_of_stream": len(items) <= n}
        return logged(request, JSONResponse(body))

    @app.get("/api/v2/incremental/organizations.json")
    async def organizations_export(request: Request):
        bad = gate(request, export=True)
        if bad is not None:
            return logged(request, bad)
        q = request.query_params
        start, bad = check_start(q.get("start_time"))
        if bad is not None:
            return logged(request, bad)
        items = [x for x in a.visible("organizations", a.clock.now()) if x[0] >= start]
        n = per_page(request)
        page = items[:n]
        end_time = page[-1][0] if page else start
        if len(page) == n and end_time == start:
            # one second fills the page: all of it, and the next page starts after it (or it would loop)
            page = [x for x in items if x[0] == start]
            end_time = start + 1
        end_of_stream = len(page) == len(items)
        next_page = (f"https://{a.host}/api/v2/incremental/organizations.json?"
                     + urlencode({"start_time": end_time, **({"per_page": q["per_page"]} if "per_page" in q else {})}))
        body = {"organizations": [dict(x[2]) for x in page], "next_page": next_page, "count": len(page),
                "end_time": end_time, "end_of_stream": end_of_stream}
        return logged(request, JSONResponse(body))

    return app
