"""Dynamics 365 through Dagster: a `type: rest_api, system: dynamics` connection's out-of-the-box jobs
(systemusers -> User, accounts -> Company with the owner as CSM, contacts -> Person and Company Person
via parentcustomerid), run with `gsdp run` against the fake Dataverse served on 127.0.0.1 under
contoso.crm.dynamics.com and login.microsoftonline.com (host map).

Time is the fake's clock: the sync's client reads it for its "now" (cursor upper bound, token age)
and its backoff sleeps advance it, so nothing here waits for real time.
"""

from __future__ import annotations

import functools
import json
import re
import textwrap
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import duckdb
import pytest

from gs_assets.connectors.rest_api import resource as rest_resource
from gs_assets.connectors.rest_api.client import RestClient
from gs_assets.connectors.rest_api.fakes.harness import Clock, serve_on_loopback
from gs_assets.connectors.rest_api.systems.dynamics.fake import LOGIN_HOST, TOKEN_LIFETIME_S, DataverseOrg, create_app

# Syncs through Dagster against a fake on loopback: the full suite (CI) runs them, the fast lane does not.
pytestmark = pytest.mark.slow

JOBS = ["d365_users", "d365_accounts", "d365_contacts", "d365_contact_companies"]


class StatusLog:
    """ASGI wrapper: every (host, path, status) the fake answered, to count 401s and 429s."""

    def __init__(self, app):
        self.app, self.seen = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = dict(scope["headers"]).get(b"host", b"").decode().split(":")[0]

        async def capture(message):
            if message["type"] == "http.response.start":
                query = scope.get("query_string", b"").decode()
                self.seen.append((host, scope["path"] + ("?" + query if query else ""), message["status"]))
            await send(message)
        return await self.app(scope, receive, capture)

    def count(self, status: int, path_part: str = "") -> int:
        return sum(1 for _h, p, s in self.seen if s == status and path_part in p)


class DynamicsWorld:
    """A fake org on loopback, a config folder with one Dynamics connection, a warehouse."""

    def __init__(self, tmp_path, monkeypatch):
        self.tmp, self.monkeypatch = tmp_path, monkeypatch
        self.org = DataverseOrg(Clock())
        self.clock = self.org.clock
        self.log = StatusLog(create_app(self.org))
        self.server = serve_on_loopback(self.log)
        client_id, client_secret = self.org.add_app()
        monkeypatch.setenv("GSDP_REST_HOST_MAP", f"{self.org.host}={self.server.url},{LOGIN_HOST}={self.server.url}")
        monkeypatch.setenv("GSDP_CONFIG_DIR", str(tmp_path / "config"))
        monkeypatch.setenv("GSDP_WAREHOUSE", str(tmp_path / "wh.duckdb"))
        monkeypatch.setenv("GSDP_REST_TOKEN_DIR", str(tmp_path / "tokens"))
        monkeypatch.setenv("GSDP_D365_TENANT_ID", self.org.tenant_id)
        monkeypatch.setenv("GSDP_D365_CLIENT_ID", client_id)
        monkeypatch.setenv("GSDP_D365_CLIENT_SECRET", client_secret)
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
        monkeypatch.setattr(rest_resource, "RestClient", functools.partial(
            RestClient, now=lambda: self.clock.now().timestamp(), sleep=lambda s: self.clock.advance(seconds=s)))

    def configure(self, extra: str = "", records_per_load: int = 100) -> None:
        folder = self.tmp / "config"
        folder.mkdir(exist_ok=True)
        (folder / "jobs.yaml").write_text(textwrap.dedent(f"""\
            connections:
              d365:
                type: rest_api
                system: dynamics
                domain: {self.org.org}
                auth: {{method: client_credentials}}
                records_per_load: {records_per_load}
            """) + textwrap.indent(textwrap.dedent(extra), "    "))

    def run(self, job: str) -> int:
        from gs_assets.cli import main
        return main(["run", job])

    def run_all(self) -> list[int]:
        return [self.run(j) for j in JOBS]

    def sql(self, query: str, params=None) -> list[tuple]:
        con = duckdb.connect(str(self.tmp / "wh.duckdb"), read_only=True)
        try:
            return con.execute(query, params or []).fetchall()
        finally:
            con.close()

    def one(self, query: str, params=None):
        return self.sql(query, params)[0][0]

    def syncs(self) -> list[tuple]:
        return self.sql("SELECT source_object, mode, records, deleted, window_from, window_to, stopped, cursor_to "
                        "FROM gs_ops.syncs ORDER BY synced_at")

    def close(self) -> None:
        self.server.stop()


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = DynamicsWorld(tmp_path, monkeypatch)
    yield w
    w.close()


def query(path: str) -> dict:
    return parse_qs(urlsplit(path).query)


def seed(org: DataverseOrg, companies: int = 6, contacts_per_company: int = 2) -> dict:
    """Users (one an application user), accounts (each owned by a user), contacts at their account,
    one contact whose parent customer is another contact; distinct timestamps the day before now."""
    t0 = org.clock.now() - timedelta(days=1)
    stamp = iter(t0 + timedelta(minutes=i) for i in range(100_000))
    users = [org.create("systemusers", {"fullname": f"Csm {i}", "firstname": "Csm", "lastname": str(i),
                                        "internalemailaddress": f"csm{i}@contoso.example", "isdisabled": False},
                        at=next(stamp)) for i in range(3)]
    org.create("systemusers", {"fullname": "# integration", "internalemailaddress": "app@contoso.example",
                               "applicationid": "0c8c1f3e-aaaa-bbbb-cccc-000000000001"}, at=next(stamp))
    accounts, contacts = [], []
    for i in range(companies):
        a = org.create("accounts", {"name": f"Account {i}", "numberofemployees": 10 + i, "revenue": 1000.0 * (i + 1),
                                    "websiteurl": f"https://a{i}.example", "address1_country": "Germany",
                                    "_ownerid_value": users[i % 3]["systemuserid"]}, at=next(stamp))
        accounts.append(a)
        for j in range(contacts_per_company):
            contacts.append(org.create("contacts", {
                "firstname": f"P{i}", "lastname": f"L{j}", "emailaddress1": f"p{i}.{j}@a{i}.example", "jobtitle": "CTO",
                "address1_city": "Berlin", "address1_country": "Germany",
                "_parentcustomerid_value": a["accountid"]}, at=next(stamp)))
    assistant = org.create("contacts", {"firstname": "Assistant", "emailaddress1": "assistant@a0.example",
                                        "_parentcustomerid_value": contacts[0]["contactid"]}, at=next(stamp))
    return {"users": users, "accounts": accounts, "contacts": contacts, "assistant": assistant}


def test_dynamics_connection_gets_four_default_jobs_that_validate(world):
    from gs_assets.cli import _cfg
    world.configure()
    cfg = _cfg()
    assert sorted(j for j in cfg.jobs if j.startswith("d365_")) == sorted(JOBS)
    accounts = cfg.jobs["d365_accounts"]
    assert (accounts.destination, accounts.identifiers) == ("company", ["external_id"])
    assert [lk.target for lk in accounts.lookups] == ["parent_company", "csm"]
    assert cfg.jobs["d365_contact_companies"].destination == "company_person"


def test_full_sync_then_incremental_after_changes(world):
    data = seed(world.org)
    world.configure()
    world.clock.advance(minutes=5)
    assert world.run_all() == [0, 0, 0, 0]

    users = dict(world.sql('SELECT external_id, email FROM gs."user"'))
    assert users == {u["systemuserid"]: u["internalemailaddress"] for u in data["users"]}  # no application user
    rows = world.sql('SELECT c.external_id, u.email, c.status FROM gs.company c LEFT JOIN gs."user" u ON u.gsid = c.csm '
                     'ORDER BY c.name')
    assert rows == [(a["accountid"], f"csm{i % 3}@contoso.example", "Active") for i, a in enumerate(data["accounts"])]
    assert world.one("SELECT count(*) FROM gs.person") == 13
    # 12 contacts at an account; the assistant's parent customer is a contact: no Company Person
    assert world.one("SELECT count(*) FROM gs.company_person") == 12
    assert world.one("SELECT count(*) FROM gs.company_person cp JOIN gs.person p ON p.gsid = cp.person_id "
                     "JOIN gs.company c ON c.gsid = cp.company_id WHERE split_part(p.email, '@', 2) = "
                     "'a' || substr(c.name, 9) || '.example'") == 12
    assert world.one("SELECT count(*) FROM gs_ops.job_runs WHERE status <> 'Success'") == 0
    first = world.syncs()
    assert {s: m for s, m, *_ in reversed(first)} == {"systemusers": "full", "accounts": "full", "contacts": "full"}
    paged = [query(p) for h, p, s in world.log.seen if p.startswith("/api/data/v9.2/accounts")]
    assert paged and paged[0]["$filter"][0].startswith("modifiedon lt ") and "$select" in paged[0]

    # changes: an account renamed and deactivated, a contact's name changed, a new account
    world.clock.advance(minutes=10)
    world.org.update("accounts", data["accounts"][2]["accountid"], {"name": "Renamed Co", "statecode": 1})
    world.org.update("contacts", data["contacts"][5]["contactid"], {"firstname": "Changed"})
    new = world.org.create("accounts", {"name": "Brand New", "_ownerid_value": data["users"][0]["systemuserid"]})
    world.clock.advance(minutes=5)
    seen_before = len(world.log.seen)
    assert world.run("d365_accounts") == 0 and world.run("d365_contacts") == 0
    inc = world.syncs()[len(first):]
    assert [(s, m) for s, m, *_ in inc] == [("accounts", "incremental"), ("contacts", "incremental")]
    for source, _mode, records, _deleted, lower, upper, *_ in inc:
        # only what changed since the cursor, and the rows at the cursor's lookback re-read by the closed bound
        stamps = [r["modifiedon"] for r in world.org.rows[source].values()]
        assert records == sum(1 for t in stamps if lower <= t < upper) < len(stamps)
        assert records <= 4
    filters = [query(p)["$filter"][0] for _h, p, _s in world.log.seen[seen_before:] if "/accounts?" in p or "/contacts?" in p]
    assert len(filters) == 2 and all(re.fullmatch(r"modifiedon ge \S+Z and modifiedon lt \S+Z", f) for f in filters)
    assert world.sql("SELECT name, status FROM gs.company WHERE external_id = ?", [data["accounts"][2]["accountid"]]) == [
        ("Renamed Co", "Inactive")]
    assert world.one("SELECT count(*) FROM gs.company WHERE external_id = ?", [new["accountid"]]) == 1
    assert world.one("SELECT first_name FROM gs.person WHERE external_id = ?", [data["contacts"][5]["contactid"]]) == "Changed"
    assert world.one("SELECT count(*) FROM gs.company") == 7 and world.one("SELECT count(*) FROM gs.person") == 13

    # a hard delete: the Web API has no deleted feed, so nothing is reported and the Company stays
    world.org.delete("accounts", data["accounts"][4]["accountid"])
    world.clock.advance(minutes=5)
    assert world.run("d365_accounts") == 0
    assert world.syncs()[-1][3] == 0
    assert world.one("SELECT count(*) FROM gs.company") == 7


def test_records_tied_on_modifiedon_across_pages_and_a_late_one_at_the_cursor_land_once(world):
    world.configure(records_per_load=500)
    tied_at = world.clock.now() - timedelta(hours=1)
    for i in range(1200):  # one bulk import: one modifiedon, three pages of 500
        world.org.create("accounts", {"name": f"Bulk {i:04d}"}, at=tied_at)
    assert world.run("d365_accounts") == 0
    assert world.one("SELECT count(*) FROM gs.company") == 1200
    state = json.loads(world.syncs()[-1][-1])
    assert len(state["pks"]) == 1200
    late = world.org.create("accounts", {"name": "Late same second"}, at=tied_at)
    world.clock.advance(minutes=5)
    assert world.run("d365_accounts") == 0
    assert world.sql("SELECT count(*), count(DISTINCT external_id) FROM gs.company") == [(1201, 1201)]
    assert world.one("SELECT count(*) FROM gs.company WHERE external_id = ?", [late["accountid"]]) == 1
    # the incremental run read the 1,200 tied rows again (closed lower bound) plus the late one; the upsert
    # absorbed the re-reads: 1,201 inserts in all
    assert world.sql("SELECT sum(rows_read), sum(inserted) FROM gs_ops.job_runs WHERE job = 'd365_accounts'") == [
        (1200 + 1201, 1201)]


def test_service_protection_429_is_retried_after_retry_after(world):
    seed(world.org)
    world.configure()
    world.clock.advance(minutes=5)
    world.org.faults.throttle.append([world.org.calls, 1, 45])  # the next API call
    before = world.clock.now()
    assert world.run("d365_accounts") == 0
    assert world.log.count(429) == 1
    assert (world.clock.now() - before).total_seconds() >= 45  # waited as Retry-After asked (fake clock)
    assert world.one("SELECT count(*) FROM gs.company") == 6


def test_token_expiring_mid_sync_is_fetched_again(world):
    world.configure()
    for i in range(1200):
        world.org.create("accounts", {"name": f"A {i:04d}"}, at=world.clock.now() - timedelta(hours=2, seconds=-i))
    o = world.org
    # mid-sync the clock jumps inside the refresh margin (a new token before expiry), later the tokens
    # are revoked (one 401, one new token, the same request again)
    o.faults.drift.append((o.calls + 1, lambda: o.clock.advance(seconds=TOKEN_LIFETIME_S - 100)))
    o.faults.expire_tokens_after_calls = o.calls + 2
    assert world.run("d365_accounts") == 0
    assert world.one("SELECT count(*) FROM gs.company") == 1200
    assert o.token_requests == 3
    assert world.log.count(401) == 1


def test_connection_test_shows_the_organization_without_secrets(world):
    from gs_assets.cli import _cfg
    from gs_assets.connectors.rest_api.connection_test import connection_check
    world.configure()
    check = connection_check(_cfg(), "d365")
    lines = dict(check.lines)
    assert check.error is None
    assert lines["organization id"] == world.org.organization_id
    assert lines["API host"] == "contoso.crm.dynamics.com"
    text = repr(check)
    assert world.org.tenant_id not in text and all(a.client_secret not in text for a in world.org.apps.values())

    world.monkeypatch.setenv("GSDP_D365_CLIENT_SECRET", "not-the-secret")
    check = connection_check(_cfg(), "d365")
    assert "refused the client secret" in check.error and "not-the-secret" not in check.error


def test_an_unreachable_org_host_is_named_as_configured(world):
    from gs_assets.cli import _cfg
    from gs_assets.connectors.rest_api.connection_test import connection_check
    from gs_assets.connectors.rest_api.fakes.harness import free_port
    dead = f"http://127.0.0.1:{free_port()}"
    world.monkeypatch.setenv("GSDP_REST_HOST_MAP", f"{world.org.host}={dead},{LOGIN_HOST}={world.server.url}")
    world.configure()
    check = connection_check(_cfg(), "d365")
    assert "on contoso.crm.dynamics.com did not succeed" in check.error, check.error
    assert f"contoso.crm.dynamics.com is sent to {dead}" in check.error and "could not be reached" in check.error


def test_no_secret_reaches_the_logs_or_the_warehouse(world, caplog, capsys):
    import logging
    caplog.set_level(logging.DEBUG)
    seed(world.org)
    world.configure()
    world.clock.advance(minutes=5)
    assert world.run("d365_accounts") == 0
    out, err = capsys.readouterr()
    app = next(iter(world.org.apps.values()))
    secrets = [world.org.tenant_id, app.client_secret, *world.org.tokens]
    for text in (caplog.text, out, err, json.dumps(world.sql("SELECT * FROM gs_ops.syncs"), default=str)):
        assert not [s for s in secrets if s in text]
