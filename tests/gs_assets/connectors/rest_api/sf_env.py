"""The Salesforce fake on loopback, wired to a tmp platform (config, warehouse, Dagster home,
token dir) through env vars, as `gsdp run` and the Dagster definitions read them. Shared by the
Salesforce sync tests and drills (kept in its own module, not conftest, to avoid merge conflicts)."""

from __future__ import annotations

import os
import textwrap
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import duckdb

from gs_assets.connectors.rest_api.fakes.harness import Clock, serve_on_loopback
from gs_assets.connectors.rest_api.systems.salesforce.fake import SalesforceOrg, create_app
from gs_assets.connectors.rest_api.systems.salesforce.fake.org import RefreshGrant

CLIENT_ID = "3MVG9fake.gsdp.test.consumer.key"
CLIENT_SECRET = "fake-test-consumer-secret-7c1d"
REFRESH_TOKEN = "5Aep861fakeTestRefreshToken-91be"
ALL_LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")


def clock_start() -> datetime:
    """Noon on a day of the previous calendar month (>= 10 days ago, whatever today is): records are
    in the past for the sync's upper bound (real now - visibility lag) and in an earlier monthly
    partition than the latest ("sync now") one, with room to advance the fake's clock a few days."""
    first = date.today().replace(day=1)
    day = first - timedelta(days=20)
    return datetime(day.year, day.month, day.day, 12, 0, 0, tzinfo=timezone.utc)


class RequestLog:
    """An ASGI wrapper recording (host, method, path) of every request the fake serves."""

    def __init__(self, app):
        self.app = app
        self.seen: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.api_requests = 0
        # n -> (status, headers, body): the n-th API request (/services/data) gets this answer instead, as
        # a gateway in front of the org would give it (Salesforce documents no 429 of its own)
        self.answer: dict[int, tuple[int, dict, bytes]] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode().split(":")[0].lower()
            with self.lock:
                self.seen.append((host, scope["method"], scope["path"]))
                canned = None
                if scope["path"].startswith("/services/data"):
                    self.api_requests += 1
                    canned = self.answer.pop(self.api_requests, None)
            if canned is not None:
                status, headers, body = canned
                await send({"type": "http.response.start", "status": status,
                            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def token_calls(self) -> list[str]:
        return [h for h, _, p in self.seen if p.endswith("/oauth2/token")]

    def api_hosts(self) -> set[str]:
        return {h for h, _, p in self.seen if p.startswith("/services/data")}


@dataclass
class SfPlatform:
    org: SalesforceOrg
    root: Path
    log: RequestLog
    url: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def warehouse(self) -> Path:
        return self.root / "wh.duckdb"

    @property
    def token_dir(self) -> Path:
        return self.root / "tokens"

    def write_config(self, connection_extra: str = "", jobs_yaml: str = "") -> None:
        cfg = self.root / "config"
        cfg.mkdir(parents=True, exist_ok=True)
        (cfg / "connections.yaml").write_text(textwrap.dedent("""\
            connections:
              sfdc:
                type: rest_api
                system: salesforce
                auth: {method: refresh_token}
            """) + textwrap.indent(textwrap.dedent(connection_extra), " " * 4))
        if jobs_yaml:
            (cfg / "jobs.yaml").write_text(textwrap.dedent(jobs_yaml))

    def rows(self, sql: str, params=None):
        con = duckdb.connect(str(self.warehouse), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    def one(self, sql: str, params=None):
        return self.rows(sql, params)[0][0]

    def run(self, job: str, *extra: str) -> int:
        """`gsdp run <job>` in this process (the CLI's own code path)."""
        from gs_assets.cli import main
        return main(["run", job, *extra])

    def accounts(self, include_deleted: bool = False) -> set[str]:
        return {r["Id"] for r in self.org.records("Account", include_deleted=include_deleted)}

    def companies(self) -> list[tuple]:
        return self.rows("SELECT external_id, name, status FROM gs.company ORDER BY external_id")


def new_org(environment: str = "production", my_domain: Optional[str] = "gsdp-test", **kw) -> SalesforceOrg:
    org = SalesforceOrg(clock=Clock(start=clock_start()), environment=environment, my_domain=my_domain, **kw)
    user = org.user_by_username(None)["Username"]
    org.register_app(CLIENT_ID, CLIENT_SECRET, run_as_username=user)
    org.refresh_tokens[REFRESH_TOKEN] = RefreshGrant(CLIENT_ID, user)
    return org


def start(tmp_path: Path, monkeypatch, org: SalesforceOrg, *, extra_hosts=ALL_LOGIN_HOSTS):
    """Serve the org on 127.0.0.1 and point every Salesforce host the client may pick at it (the
    fake refuses a host that is not the org's), with the platform's env vars set."""
    log = RequestLog(create_app(org))
    srv = serve_on_loopback(log)
    hosts = sorted(set(org.token_hosts()) | {org.api_host} | set(extra_hosts))
    env = {
        "GSDP_REST_HOST_MAP": ",".join(f"{h}={srv.url}" for h in hosts),
        "GSDP_SFDC_CLIENT_ID": CLIENT_ID,
        "GSDP_SFDC_CLIENT_SECRET": CLIENT_SECRET,
        "GSDP_SFDC_REFRESH_TOKEN": REFRESH_TOKEN,
        "GSDP_CONFIG_DIR": str(tmp_path / "config"),
        "GSDP_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "GSDP_REST_TOKEN_DIR": str(tmp_path / "tokens"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "GSDP_REST_MAX_RETRY_WAIT_SECONDS": "0",  # retries wait as asked, on paper only: no real sleeping
    }
    os.makedirs(env["DAGSTER_HOME"], exist_ok=True)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    p = SfPlatform(org, tmp_path, log, srv.url, env)
    p.write_config()
    return p, srv
