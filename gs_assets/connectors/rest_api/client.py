"""The HTTP client of one sync: one httpx.Client, tenacity retries, the spec's error rules and
rate-limit signals.

- Retries: 5xx / timeouts / 429 (honouring Retry-After) with exponential backoff, bounded by
  attempts and by the total time waited; the sleep is injectable (tests never sleep).
- Error rules from the spec: refresh_and_retry (once per request), retry, stop_and_resume
  (`BudgetExhausted`), reauthorize (`NeedsReauthorization`), fail (`ApiError` with the rule's message).
- `ApiUsage` is parsed from the spec's usage headers after every response; when the daily remaining
  calls reach the spec's reserve the *next* request raises `BudgetExhausted`, so a sync stops at a
  page boundary with every page it got committed.
- `host_map` (vendor host -> local base URL, Host header kept) and `transport` (e.g.
  httpx.ASGITransport for an in-process fake) let tests and the demo reach fakes under the vendor's
  real host names.
- Secrets never reach a log line or an exception: tokens go in headers only, headers are never
  logged, and messages are built from vendor error codes.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Optional
from urllib.parse import urlsplit

import httpx
import tenacity

from gs_assets.connectors.rest_api.auth import (
    Authenticator, ConnectionAuthError, NeedsReauthorization, TokenStore, body_error, json_or_none, rule_matches)
from gs_assets.connectors.rest_api.spec import RequestSpec, SystemSpec, render

log = logging.getLogger("gs_assets.rest_api.client")

__all__ = ["ApiError", "ApiUsage", "BudgetExhausted", "ConnectionAuthError", "NeedsReauthorization",
           "RestClient", "HostMapTransport", "asgi_transport"]


class ApiError(Exception):
    """The API answered with an error the spec says to fail on (or one no rule covers)."""

    def __init__(self, message: str, status: int = 0, error_code: str = ""):
        self.status = status
        self.error_code = error_code
        super().__init__(message)


class BudgetExhausted(Exception):
    """The system's daily API budget (less the reserve) is spent: stop at this page boundary and
    resume on the next run."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: Optional[float] = None):
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason)


@dataclass
class ApiUsage:
    daily_used: Optional[int] = None
    daily_limit: Optional[int] = None
    daily_remaining: Optional[int] = None
    secondly_limit: Optional[int] = None
    secondly_remaining: Optional[int] = None
    calls: int = 0
    headers: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        if self.daily_used is not None and self.daily_limit is not None:
            return f"{self.daily_used}/{self.daily_limit} daily API calls used"
        if self.daily_remaining is not None:
            return f"{self.daily_remaining} daily API calls remaining" + (
                f" of {self.daily_limit}" if self.daily_limit is not None else "")
        return f"{self.calls} API calls this sync"


class HostMapTransport(httpx.BaseTransport):
    """Sends requests for mapped vendor hosts to a local base URL, keeping the Host header (so a
    fake can tell login.salesforce.com from test.salesforce.com)."""

    def __init__(self, host_map: Mapping[str, str], inner: Optional[httpx.BaseTransport] = None):
        self.host_map = {h.lower(): urlsplit(u) for h, u in host_map.items()}
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = self.host_map.get(request.url.host.lower())
        if target is not None:
            request.url = request.url.copy_with(scheme=target.scheme, host=target.hostname, port=target.port)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def asgi_transport(app) -> httpx.BaseTransport:
    """A synchronous transport into an ASGI app in this process (a fake), as Starlette's TestClient
    does it (httpx.ASGITransport is async-only and the sync client cannot use it)."""
    from starlette.testclient import TestClient

    return TestClient(app)._transport


def retry_after_seconds(value: Optional[str], now: float) -> Optional[float]:
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


class RestClient:
    """One sync's client for one connection of one system."""

    def __init__(self, spec: SystemSpec, *, connection: str, auth_method: str, secrets: Mapping[str, Any],
                 environment: Optional[str] = None, domain: Optional[str] = None,
                 token_store: Optional[TokenStore] = None, host_map: Optional[Mapping[str, str]] = None,
                 transport: Optional[httpx.BaseTransport] = None, sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], float] = time.time, variables: Optional[Mapping[str, str]] = None,
                 daily_budget_reserve: Optional[int] = None):
        self.spec = spec
        self.connection = connection
        self._sleep = sleep
        self._now = now
        c = spec.client
        if isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError("the sync client needs a sync transport: wrap an in-process ASGI app with "
                            "gs_assets.connectors.rest_api.client.asgi_transport(app)")
        if host_map:
            transport = HostMapTransport(host_map, transport)
        self._transport = transport
        timeout = httpx.Timeout(c.timeout_seconds, connect=c.connect_timeout_seconds)
        http_kwargs: dict[str, Any] = {"timeout": timeout}
        if transport is not None:
            http_kwargs["transport"] = transport
        self.http = httpx.Client(**http_kwargs)
        self.auth = Authenticator(spec, connection=connection, method=auth_method, secrets=secrets,
                                  environment=environment, domain=domain, token_store=token_store,
                                  http_kwargs=http_kwargs, now=now)
        self.variables = {**spec.connection.variables, **(variables or {})}
        self.usage = ApiUsage()
        self.reserve = c.daily_budget_reserve if daily_budget_reserve is None else daily_budget_reserve
        self.waits: list[float] = []  # every backoff asked for (seconds), for tests and run metadata
        self.last_response: Optional[httpx.Response] = None  # the last successful response (its headers)

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "RestClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RestClient(system={self.spec.system!r}, connection={self.connection!r}, auth={self.auth.method_name!r})"

    def test_connection(self) -> dict[str, Any]:
        """Authorize and make the spec's one test call ("test connection"): what a person checks,
        without any secret."""
        req = self.spec.connection.test_request
        if req is not None:
            self.send(req)
        return {"system": self.spec.system, "connection": self.connection, "auth_method": self.auth.method_name,
                "environment": self.auth.environment, "login_host": self.auth.login_host,
                "api_host": urlsplit(self.auth.base_url).hostname, "usage": self.usage.summary()}

    # ---------------------------------------------------------------- requests
    def url_for(self, path: str) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            return path
        return self.auth.base_url.rstrip("/") + "/" + path.lstrip("/")

    def send(self, req: RequestSpec, values: Optional[Mapping[str, Any]] = None, *,
             params: Optional[Mapping[str, Any]] = None, body: Any = None, url: Optional[str] = None) -> httpx.Response:
        """Render a request spec and send it (retries, rules, usage)."""
        vals = {**self.variables, **(values or {})}
        p = render(req.params, vals) if url is None else {}
        if params:
            p.update(params)
        b = render(req.body, vals) if req.body is not None else None
        if body is not None:
            b = body
        target = url or render(req.path, vals)
        return self.request(req.method, target, params=p or None, json=b, headers=render(req.headers, vals) or None)

    def get_json(self, req: RequestSpec, values: Optional[Mapping[str, Any]] = None, **kw) -> Any:
        return self.send(req, values, **kw).json()

    def request(self, method: str, path_or_url: str, *, params: Optional[Mapping[str, Any]] = None,
                json: Any = None, headers: Optional[Mapping[str, str]] = None) -> httpx.Response:
        r = self.spec.client.retries
        self._check_budget()

        def stop(rs: tenacity.RetryCallState) -> bool:
            return rs.attempt_number >= r.max_attempts or rs.idle_for >= r.max_total_wait_seconds

        backoff = tenacity.wait_exponential(multiplier=r.initial_backoff_seconds, max=r.max_backoff_seconds)

        def wait(rs: tenacity.RetryCallState) -> float:
            exc = rs.outcome.exception() if rs.outcome else None
            left = max(0.0, r.max_total_wait_seconds - rs.idle_for)
            if isinstance(exc, _Retryable) and exc.retry_after is not None:
                if exc.retry_after > left:  # the system asks for a longer pause than a sync may wait
                    raise BudgetExhausted(
                        f"connection {self.connection!r}: {exc.reason}: the system asks to wait "
                        f"{exc.retry_after:.0f} s (Retry-After), more than the {left:.0f} s of backoff left; the "
                        f"sync stopped at a page boundary and resumes on the next run.")
                w = exc.retry_after
            else:
                w = min(backoff(rs), left)
            self.waits.append(w)
            return w

        retrying = tenacity.Retrying(stop=stop, wait=wait, sleep=self._sleep, reraise=True,
                                     retry=tenacity.retry_if_exception_type(_Retryable))
        try:
            return retrying(self._attempt, method, path_or_url, params, json, headers)
        except _Retryable as e:
            raise ApiError(
                f"connection {self.connection!r}: {method} {self._where(path_or_url)} kept failing ({e.reason}) "
                f"after {r.max_attempts} attempts / {sum(self.waits):.0f} s of backoff; the sync stops here and "
                f"the next run resumes from the last committed page.") from None

    def _where(self, path_or_url: str) -> str:
        return urlsplit(path_or_url).path or path_or_url

    def _check_budget(self) -> None:
        u = self.usage
        if self.reserve is not None and u.daily_remaining is not None and u.daily_remaining <= self.reserve:
            raise BudgetExhausted(
                f"connection {self.connection!r}: the daily API budget is spent down to its reserve "
                f"({u.summary()}, reserve {self.reserve}); the sync stopped at a page boundary and resumes on the next run.")

    def _attempt(self, method: str, path_or_url: str, params, json_body, headers) -> httpx.Response:
        refreshed = False
        while True:
            url = self.url_for(path_or_url)
            h = {**(headers or {}), **self.auth.headers()}
            try:
                resp = self.http.request(method, url, params=params, json=json_body, headers=h)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as e:
                log.warning("connection %s: %s %s: %s, will retry", self.connection, method, self._where(url), type(e).__name__)
                raise _Retryable(type(e).__name__) from None
            self.usage.calls += 1
            self._read_usage(resp)
            log.debug("connection %s: %s %s -> %s", self.connection, method, self._where(url), resp.status_code)
            if resp.status_code < 400:
                self.last_response = resp
                return resp
            body = json_or_none(resp)
            info = body_error(body)
            values = {"connection": self.connection, "auth_method": self.auth.method_name,
                      "status": resp.status_code, **info}
            for rule in self.spec.client.errors:
                if rule.scope != "api" or not rule_matches(rule, resp.status_code, body) \
                        or (rule.grants and self.auth.method.type not in rule.grants):
                    continue
                msg = render(rule.message, values)
                if rule.action == "refresh_and_retry":
                    if refreshed:
                        raise ConnectionAuthError(self.connection, self.auth.method_name, msg)
                    refreshed = True
                    log.info("connection %s: %s, refreshing the token once", self.connection, info["error_code"] or resp.status_code)
                    self.auth.refresh()
                    break
                if rule.action == "retry":
                    raise _Retryable(f"HTTP {resp.status_code} {info['error_code']}".strip(),
                                     retry_after_seconds(resp.headers.get("Retry-After"), self._now()))
                if rule.action == "stop_and_resume":
                    raise BudgetExhausted(msg)
                if rule.action == "reauthorize":
                    raise NeedsReauthorization(self.connection, self.auth.method_name, msg)
                raise ApiError(msg, resp.status_code, info["error_code"])
            else:
                self._default_error(method, url, resp, info)
            continue  # refreshed: send again

    def _default_error(self, method: str, url: str, resp: httpx.Response, info: dict) -> None:
        status = resp.status_code
        if status == 429 or status in self.spec.client.retries.retry_statuses:
            raise _Retryable(f"HTTP {status}", retry_after_seconds(resp.headers.get("Retry-After"), self._now()))
        if status in (401, 403):
            raise ConnectionAuthError(self.connection, self.auth.method_name, (
                f"connection {self.connection!r} (auth method {self.auth.method_name}): {method} "
                f"{self._where(url)} was refused (HTTP {status} {info['error_code']}: {info['error_message']}); "
                f"check the connection's credentials, its user's permissions and the app's scopes."))
        raise ApiError(
            f"connection {self.connection!r}: {method} {self._where(url)} failed with HTTP {status} "
            f"{info['error_code']}: {info['error_message']}".rstrip(": "), status, info["error_code"])

    def _read_usage(self, resp: httpx.Response) -> None:
        u = self.usage
        for uh in self.spec.client.usage_headers:
            raw = resp.headers.get(uh.header)
            if raw is None:
                continue
            u.headers[uh.header] = raw
            if uh.pattern:
                m = re.search(uh.pattern, raw)
                if not m:
                    continue
                parts = {k: int(v) for k, v in m.groupdict().items() if v is not None}
            else:
                try:
                    parts = {uh.kind: int(raw.strip())}
                except ValueError:
                    continue
            if uh.budget == "daily":
                if "used" in parts:
                    u.daily_used = parts["used"]
                if "limit" in parts:
                    u.daily_limit = parts["limit"]
                if "remaining" in parts:
                    u.daily_remaining = parts["remaining"]
                elif u.daily_used is not None and u.daily_limit is not None:
                    u.daily_remaining = u.daily_limit - u.daily_used
            elif uh.budget == "secondly":
                if "limit" in parts:
                    u.secondly_limit = parts["limit"]
                if "remaining" in parts:
                    u.secondly_remaining = parts["remaining"]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
