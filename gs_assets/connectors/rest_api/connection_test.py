""""Test connection" (Connectors 2.0): authorize a configured REST API connection and make its
system's one test call, reporting what a person checks (system, environment, hosts, the account
reached, API usage) or one paragraph saying what failed. Nothing here holds or prints a secret:
the account id is the one non-secret field the spec names (`connection.account_id`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlsplit

from gs_assets.connectors.kind import ConnectionCheck
from gs_assets.connectors.rest_api.auth import ConnectionAuthError, NeedsReauthorization, json_or_none
from gs_assets.connectors.rest_api.client import ApiError, ApiUsage, BudgetExhausted
from gs_assets.connectors.rest_api.config import RestApiConnection
from gs_assets.connectors.rest_api.resource import ConnectionSetupError, parse_host_map, rest_client
from gs_assets.connectors.rest_api.spec import dig, render


@dataclass
class ConnectionTest:
    name: str
    system: str
    label: str
    environment: Optional[str]
    auth_method: str
    login_host: Optional[str] = None
    api_host: Optional[str] = None
    account_label: str = "account"
    account_id: Optional[str] = None
    usage: str = ""
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


def usage_text(u: ApiUsage) -> str:
    """used/limit of the daily budget where the system reports it, else the calls made."""
    if u.daily_limit is not None and (u.daily_used is not None or u.daily_remaining is not None):
        used = u.daily_used if u.daily_used is not None else u.daily_limit - (u.daily_remaining or 0)
        return f"{used}/{u.daily_limit} daily API calls used"
    return f"{u.calls} API call(s) made; the system reported no daily budget on this call"


def _account(conn: RestApiConnection, client, resp) -> Optional[str]:
    acc = conn.spec.connection.account_id
    if acc is None:
        return None
    data = json_or_none(resp) if acc.source == "test_response" else client.auth.token_public
    value = dig(data, acc.path)
    if value is None:
        return None
    if acc.pattern:
        m = re.search(acc.pattern, str(value))
        return m.group(1) if m else None
    return str(value)


def check_connection(name: str, conn: RestApiConnection, **client_kwargs: Any) -> ConnectionTest:
    """Authorize and make the spec's test call. Never raises for a failure of the connection (wrong
    credentials, revoked token, unreachable host): the result's `error` says it in one paragraph."""
    spec = conn.spec
    out = ConnectionTest(name=name, system=spec.system, label=spec.label or spec.system,
                         environment=conn.environment_name, auth_method=conn.auth.method,
                         account_label=spec.connection.account_id.label if spec.connection.account_id else "account")
    # a test makes one call: no backoff between attempts (a person is waiting for the answer)
    client_kwargs.setdefault("sleep", lambda seconds: None)
    try:
        with rest_client(name, conn, **client_kwargs) as client:
            out.login_host = client.auth.login_host
            req = spec.connection.test_request
            resp = client.send(req) if req is not None else None
            out.api_host = urlsplit(client.auth.base_url).hostname
            out.account_id = _account(conn, client, resp) if resp is not None else None
            out.usage = usage_text(client.usage)
    except NeedsReauthorization as e:
        out.error = f"{e} The connection needs re-authorization; nothing was retried."
    except ConnectionAuthError as e:
        out.error = str(e)
    except ConnectionSetupError as e:
        out.error = str(e)
    except BudgetExhausted as e:
        out.error = f"{e} (the credentials work; the API refused more calls for now)"
    except ApiError as e:
        m = re.search(r": (\w+ \S+) kept failing \((.+?)\) after (\d+) attempts", str(e))
        if m is None:
            out.error = str(e)
        else:  # retries ran out (network errors, 5xx, 429): say so without the sync's resume advice
            out.error = (f"{m.group(1)} on {urlsplit(_base_url(conn) or '').hostname or 'the API host'} "
                         f"did not succeed ({m.group(2)}, {m.group(3)} attempts).")
            if re.search(r"Connect|Network|Timeout|ReadError", m.group(2)):
                out.error += _unreachable_hint(spec, conn)
    return out


def _base_url(conn: RestApiConnection) -> Optional[str]:
    """The spec's base URL, on the connection's own host when it names the login host (ServiceNow)."""
    c = conn.spec.connection
    if c.base_url and ("{login_host}" in c.base_url or "{domain}" in c.base_url):
        host = (render(c.custom_domain, {"domain": conn.domain}) if conn.domain and c.custom_domain else
                c.environments[conn.environment_name].login_host if conn.environment_name else "")
        return render(c.base_url, {"login_host": host, "domain": conn.domain or ""})
    return c.base_url


def _unreachable_hint(spec, conn: RestApiConnection) -> str:
    from gs_assets.settings import Settings

    mapped = parse_host_map(Settings.from_env().rest_host_map)
    base = _base_url(conn)
    hosts = sorted({urlsplit(base).hostname} if base else set()) or \
        sorted(e.login_host for e in spec.connection.environments.values())
    where = "; ".join(f"{h} is sent to {mapped[h]} by GSDP_REST_HOST_MAP" for h in hosts if h in mapped)
    return (f" The host could not be reached: check the network, proxy and firewall"
            + (f" ({where}: is that server running?)" if where else "") + ".")


def connection_check(cfg, name: str) -> ConnectionCheck:
    """The kind's `gsdp connections test NAME`."""
    t = check_connection(name, cfg.connections[name])
    lines = [("system", f"{t.system} ({t.label})"), ("environment", t.environment or "(one fixed host)"),
             ("auth method", t.auth_method), ("login host", t.login_host or "-"), ("API host", t.api_host or "-"),
             (f"{t.account_label} id", t.account_id or "(not in the response)"), ("API usage", t.usage)]
    return ConnectionCheck(summary=f"connection {name} ({t.label}, {t.environment or 'its one host'}, auth method "
                                   f"{t.auth_method})", lines=lines, error=t.error)
