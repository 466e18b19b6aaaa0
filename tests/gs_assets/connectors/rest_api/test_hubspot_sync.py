"""HubSpot through Dagster: a `type: rest_api, system: hubspot` connection's out-of-the-box jobs
(owners -> User, companies -> Company with the owner as CSM, contacts -> Person and Company Person),
run with `gsdp run` against the fake HubSpot served on 127.0.0.1 under api.hubapi.com (host map).

Time is the fake's clock: the sync's client reads it for its "now" (cursor upper bound, token age)
and its backoff sleeps advance it, so nothing here waits for real time and the fake's rate limits
(burst window, search's 5 per second, the daily budget) behave the same on any machine.
"""

from __future__ import annotations

import functools
import json
import textwrap
from datetime import datetime

import duckdb
import pytest

from gs_assets.connectors.rest_api import resource as rest_resource
from gs_assets.connectors.rest_api.client import RestClient
from gs_assets.connectors.rest_api.fakes.harness import Clock, serve_on_loopback
from gs_assets.connectors.rest_api.systems.hubspot.fake import FaultPlan, HubSpotPortal, RateLimits, create_app, to_ms

# Syncs through Dagster against a fake on loopback: the full suite (CI) runs them, the fast lane does not.
pytestmark = pytest.mark.slow

JOBS = ["hs_owners", "hs_companies", "hs_contacts", "hs_contact_companies"]


class StatusLog:
    """ASGI wrapper: every (method, path, status) the fake answered, to count 401s and 429s."""

    def __init__(self, app):
        self.app, self.seen, self.search_bodies = app, [], []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        if scope["path"].endswith("/search"):
            body = b""
            more = True
            messages = []
            while more:
                message = await receive()
                messages.append(message)
                body += message.get("body", b"")
                more = message.get("more_body", False)
            try:
                sorts = json.loads(body).get("filterGroups")[0]["filters"][0]["propertyName"]
            except (ValueError, TypeError, KeyError, IndexError):
                sorts = None
            self.search_bodies.append((scope["path"], sorts))
            replay = iter(messages)

            async def receive():  # noqa: F811 (the body again, for the app)
                return next(replay)

        async def capture(message):
            if message["type"] == "http.response.start":
                query = scope.get("query_string", b"").decode()
                self.seen.append((scope["method"], scope["path"] + ("?" + query if query else ""), message["status"]))
            await send(message)
        return await self.app(scope, receive, capture)

    def count(self, status: int, path_part: str = "") -> int:
        return sum(1 for _m, p, s in self.seen if s == status and path_part in p)


class HubSpotWorld:
    """A fake portal on loopback, a config folder with one HubSpot connection, a warehouse."""

    def __init__(self, tmp_path, monkeypatch, portal: HubSpotPortal):
        self.tmp, self.portal, self.clock = tmp_path, portal, portal.clock
        self.log = StatusLog(create_app(portal))
        self.search_bodies = self.log.search_bodies
        self.server = serve_on_loopback(self.log)
        self.monkeypatch = monkeypatch
        monkeypatch.setenv("GSDP_REST_HOST_MAP", f"api.hubapi.com={self.server.url}")
        monkeypatch.setenv("GSDP_CONFIG_DIR", str(tmp_path / "config"))
        monkeypatch.setenv("GSDP_WAREHOUSE", str(tmp_path / "wh.duckdb"))
        monkeypatch.setenv("GSDP_REST_TOKEN_DIR", str(tmp_path / "tokens"))
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
        # the sync's client lives on the fake's clock: its now, and its backoff sleeps advance it
        monkeypatch.setattr(rest_resource, "RestClient", functools.partial(
            RestClient, now=lambda: self.clock.now().timestamp(), sleep=lambda s: self.clock.advance(seconds=s)))

    def configure(self, auth: str = "{method: private_app}", extra: str = "", records_per_load: int = 100) -> None:
        folder = self.tmp / "config"
        folder.mkdir(exist_ok=True)
        (folder / "jobs.yaml").write_text(textwrap.dedent(f"""\
            connections:
              hs:
                type: rest_api
                system: hubspot
                auth: {auth}
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

    def private_app(self) -> None:
        self.portal.add_private_app("pat-na1-test-token")
        self.monkeypatch.setenv("GSDP_HS_ACCESS_TOKEN", "pat-na1-test-token")

    def syncs(self) -> list[tuple]:
        return self.sql("SELECT source_object, mode, records, deleted, window_from, window_to, stopped, cursor_to "
                        "FROM gs_ops.syncs ORDER BY synced_at")

    def close(self) -> None:
        self.server.stop()


def _world(tmp_path, monkeypatch, **portal_kw) -> HubSpotWorld:
    portal = HubSpotPortal(Clock(), **portal_kw)
    return HubSpotWorld(tmp_path, monkeypatch, portal)


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = _world(tmp_path, monkeypatch)
    yield w
    w.close()


def seed(portal: HubSpotPortal, companies: int = 6, contacts_per_company: int = 2) -> dict:
    """Owners, companies (each owned by one), contacts at their primary company, spread over the
    day before the clock's now (distinct timestamps)."""
    from datetime import timedelta

    from gs_assets.connectors.rest_api.systems.hubspot.fake import to_ms
    t0 = portal.clock.now() - timedelta(days=1)
    stamp = iter(to_ms(t0 + timedelta(minutes=i)) for i in range(100_000))
    owners = [portal.add_owner(f"owner{i}@vendor.io", f"Own{i}", f"Er{i}") for i in range(3)]
    portal.add_owner("gone@vendor.io", "Gone", "Owner", archived=True)
    comps, contacts = [], []
    for i in range(companies):
        c = portal.create("companies", {"name": f"Company {i}", "industry": "Software", "numberofemployees": 10 + i,
                                        "annualrevenue": 1000 * (i + 1), "website": f"https://c{i}.example",
                                        "country": "Germany", "hubspot_owner_id": owners[i % 3].id},
                          at_ms=next(stamp))
        comps.append(c)
        for j in range(contacts_per_company):
            p = portal.create("contacts", {"email": f"p{i}.{j}@c{i}.example", "firstname": f"P{i}", "lastname": f"L{j}",
                                           "jobtitle": "CTO", "city": "Berlin", "country": "Germany"}, at_ms=next(stamp))
            portal.associate(p.id, c.id, primary=True)
            contacts.append(p)
    return {"owners": owners, "companies": comps, "contacts": contacts}


# ---------------------------------------------------------------------------------------------- jobs

def test_hubspot_connection_gets_four_default_jobs_that_validate(world):
    from gs_assets.cli import _cfg
    world.configure()
    cfg = _cfg()
    assert sorted(j for j in cfg.jobs if j.startswith("hs_")) == sorted(JOBS)
    companies = cfg.jobs["hs_companies"]
    assert (companies.destination, companies.identifiers, companies.schedule.cron_expression()) == (
        "company", ["external_id"], "0 * * * *")
    assert [lk.target for lk in companies.lookups] == ["csm"]
    assert cfg.jobs["hs_owners"].identifiers == ["email"]
    assert cfg.jobs["hs_contact_companies"].destination == "company_person"


def test_a_bad_override_of_a_hubspot_default_job_names_the_connection_key(world):
    from gs_assets.cli import _cfg
    from gs_assets.validators.errors import ConfigError
    world.configure(extra="""\
        default_jobs:
          companies: {mappings: [{source: name, target: nope}]}
        """)
    with pytest.raises(ConfigError) as e:
        _cfg()
    assert "connections.hs.default_jobs.companies" in str(e.value) and "unknown field 'nope'" in str(e.value)


def test_private_app_sync_of_all_four_jobs_then_incremental_changes_only(world):
    data = seed(world.portal)
    world.portal.add_private_app("pat-na1-test-token")
    world.monkeypatch.setenv("GSDP_HS_ACCESS_TOKEN", "pat-na1-test-token")
    world.configure()
    world.clock.advance(minutes=5)  # past the visibility lag
    assert world.run_all() == [0, 0, 0, 0]

    users = dict(world.sql('SELECT external_id, email FROM gs."user"'))
    assert users == {o.id: o.email for o in data["owners"]}  # the archived owner is no User
    assert world.one('SELECT name FROM gs."user" WHERE email = ?', ["owner1@vendor.io"]) == "Own1 Er1"
    rows = world.sql('SELECT c.external_id, u.email FROM gs.company c LEFT JOIN gs."user" u ON u.gsid = c.csm '
                     'ORDER BY c.external_id')
    assert rows == [(c.id, data["owners"][i % 3].email) for i, c in enumerate(data["companies"])]  # CSM set
    assert world.one("SELECT count(*) FROM gs.person") == 12
    assert world.one("SELECT count(*) FROM gs.company_person") == 12
    assert world.one("SELECT count(*) FROM gs.company_person cp JOIN gs.person p ON p.gsid = cp.person_id "
                     "JOIN gs.company c ON c.gsid = cp.company_id WHERE split_part(p.email, '@', 2) = "
                     "'c' || substr(c.name, 9) || '.example'") == 12
    first = world.sql("SELECT source_object, mode FROM gs_ops.syncs ORDER BY synced_at")
    assert {s: m for s, m in reversed(first)} == {"owners": "full", "companies": "full", "contacts": "full"}
    assert world.one("SELECT count(*) FROM gs_ops.job_runs WHERE status <> 'Success'") == 0
    # a contact read again by search (the cursor's lookback) still names its company: none filtered out
    assert world.one("SELECT sum(filtered) FROM gs_ops.job_runs WHERE job = 'hs_contact_companies'") == 0

    # changes: one company renamed, one contact's name changed (each stamps its own last-modified property)
    world.clock.advance(minutes=10)
    world.portal.update("companies", data["companies"][2].id, {"name": "Renamed Co"})
    world.portal.update("contacts", data["contacts"][5].id, {"firstname": "Changed"})
    world.clock.advance(minutes=5)
    seen_before, syncs_before = len(world.log.seen), len(first)
    assert world.run("hs_companies") == 0 and world.run("hs_contacts") == 0
    inc = world.sql("SELECT source_object, mode, records, window_from, window_to FROM gs_ops.syncs "
                    "ORDER BY synced_at")[syncs_before:]
    assert [(s, m) for s, m, *_ in inc] == [("companies", "incremental"), ("contacts", "incremental")]
    for source, _mode, records, lower, upper in inc:
        # only what changed since the cursor (and the records at the cursor's lookback, re-read by the rule)
        stamps = [r.updated_ms for r in world.portal.records[source].values()]
        lo, hi = (to_ms(datetime.fromisoformat(v.replace("Z", "+00:00"))) for v in (lower, upper))
        assert records == sum(1 for t in stamps if lo <= t < hi) < len(stamps)
    # each read by a search on its own last-modified property, no list of the whole object
    calls = world.log.seen[seen_before:]
    lists = [p for _m, p, _s in calls if p.split("?")[0] in ("/crm/v3/objects/companies", "/crm/v3/objects/contacts")]
    assert lists and all("archived=true" in p for p in lists)  # only the archived lists (deletes)
    filters = {p: b for p, b in world.search_bodies}
    assert filters["/crm/v3/objects/companies/search"] == "hs_lastmodifieddate"
    assert filters["/crm/v3/objects/contacts/search"] == "lastmodifieddate"
    assert world.one("SELECT name FROM gs.company WHERE external_id = ?", [data["companies"][2].id]) == "Renamed Co"
    assert world.one("SELECT first_name FROM gs.person WHERE external_id = ?", [data["contacts"][5].id]) == "Changed"
    assert world.one("SELECT count(*) FROM gs.company") == 6 and world.one("SELECT count(*) FROM gs.person") == 12


# ------------------------------------------------------------------------------------ 10k search cap

@pytest.mark.slow
def test_more_than_10000_records_modified_on_one_timestamp_all_land_exactly_once(world):
    """HubSpot's search returns at most 10,000 results per query (paging past it is a 400): a bulk
    edit that stamps 10,050 companies with one hs_lastmodifieddate must still reach every one."""
    world.private_app()
    world.configure(records_per_load=50_000)
    created = world.portal.create_many("companies", ({"name": f"Co {i}", "industry": "Software"}
                                                      for i in range(10_050)))
    world.clock.advance(minutes=5)
    assert world.run("hs_companies") == 0  # first sync: the list endpoint (no search, no cap)
    assert world.one("SELECT count(*) FROM gs.company") == 10_050

    world.clock.advance(minutes=10)
    world.portal.bulk_update("companies", [r.id for r in created], {"industry": "Retail"})  # one timestamp
    world.clock.advance(minutes=5)
    assert world.run("hs_companies") == 0
    source, mode, records, *_ = world.syncs()[-1]
    assert (source, mode, records) == ("companies", "incremental", 10_050)  # each exactly once
    assert world.log.count(400, "/search") == 0  # never paged past the cap
    assert len(world.search_bodies) > 10_000 // 200  # the capped query was re-issued
    assert world.sql("SELECT industry, count(*) FROM gs.company GROUP BY 1") == [("Retail", 10_050)]
    runs = world.sql("SELECT rows_read, updated, superseded FROM gs_ops.job_runs WHERE job = 'hs_companies' "
                     "ORDER BY started_at")
    assert runs[-1] == (10_050, 10_050, 0)


# ------------------------------------------------------------------------------------ OAuth expiry

def test_oauth_token_expiring_mid_sync_is_refreshed_without_a_401_storm(world):
    client_id, secret, refresh = world.portal.add_oauth_app()
    for name, value in (("CLIENT_ID", client_id), ("CLIENT_SECRET", secret), ("REFRESH_TOKEN", refresh)):
        world.monkeypatch.setenv(f"GSDP_HS_{name}", value)
    world.configure(auth="{method: oauth}")
    world.portal.create_many("contacts", ({"email": f"c{i}@x.example", "firstname": "C"} for i in range(450)),
                             at_ms=to_ms(world.clock.now()) - 3_600_000)
    p = world.portal
    # mid-sync the clock jumps: first 26 minutes (inside the 5-minute refresh margin: the client
    # refreshes before the token expires), later past the next token's 30 minutes (one 401, one refresh)
    p.faults.drift.append((p.calls + 3, lambda: p.clock.advance(minutes=26)))
    p.faults.drift.append((p.calls + 6, lambda: p.clock.advance(minutes=31)))
    assert world.run("hs_contacts") == 0
    assert world.one("SELECT count(*) FROM gs.person") == 450
    assert p.token_requests == 3
    assert world.log.count(401) == 1  # the one request that met the expired token; no storm
    assert not p.faults.drift


# ------------------------------------------------------------------------------------ archived = deletes

def test_archived_records_are_reported_as_deletes_and_mark_the_company(world):
    data = seed(world.portal)
    world.private_app()
    world.configure()
    world.clock.advance(minutes=5)
    assert world.run("hs_owners") == 0 and world.run("hs_companies") == 0
    world.clock.advance(minutes=10)
    gone = data["companies"][1]
    world.portal.archive("companies", gone.id)
    world.clock.advance(minutes=5)
    assert world.run("hs_companies") == 0
    source, mode, _records, deleted, *_ = world.syncs()[-1]
    assert (source, mode, deleted) == ("companies", "incremental", 1)
    assert world.one("SELECT status FROM gs.company WHERE external_id = ?", [gone.id]) == "Inactive"
    assert world.one("SELECT count(*) FROM gs.company WHERE status = 'Inactive'") == 1
    run = world.sql("SELECT deleted, deletes_applied FROM gs_ops.job_runs WHERE job = 'hs_companies' "
                    "ORDER BY started_at")[-1]
    assert run == (1, 1)


# ------------------------------------------------------------------------------------ rate limits

def test_secondly_429_is_retried_after_retry_after(world):
    seed(world.portal)
    world.private_app()
    world.configure()
    world.clock.advance(minutes=5)
    p = world.portal
    p.faults.rate_limit_after_calls = p.calls + 2  # the portal's burst budget is used up (another app)
    before = p.clock.now()
    assert world.run("hs_companies") == 0
    assert world.log.count(429) == 1
    waited = (p.clock.now() - before).total_seconds()
    assert waited >= p.rate_limits.burst_window_s  # the client waited as Retry-After asked (on the fake's clock)
    assert world.one("SELECT count(*) FROM gs.company") == 6


def test_daily_429_stops_at_a_committed_page_and_the_next_run_resumes(world):
    seed(world.portal)
    world.private_app()
    world.configure()
    world.clock.advance(minutes=5)
    assert world.run("hs_owners") == 0 and world.run("hs_companies") == 0
    first_cursor = json.loads(world.syncs()[-1][-1])["cursor"]
    base = to_ms(world.clock.now())
    new = [world.portal.create("companies", {"name": f"New {i}"}, at_ms=base + i * 1000).id for i in range(450)]
    world.clock.advance(minutes=15)
    p = world.portal
    p.faults.rate_limit_after_calls = p.calls + 2  # properties, one search page, then the daily limit
    p.faults.rate_limit_policy = "DAILY"
    assert world.run("hs_companies") == 0  # stopped cleanly, not failed
    stopped = world.syncs()[-1]
    assert stopped[1] == "incremental" and stopped[2] == 200
    cursor = json.loads(stopped[-1])["cursor"]
    assert cursor > first_cursor
    landed = world.one("SELECT count(*) FROM gs.company WHERE name LIKE 'New %'")
    cursor_ms = to_ms(datetime.fromisoformat(cursor.replace("Z", "+00:00")))
    assert landed == sum(1 for i in new if p.records["companies"][i].updated_ms <= cursor_ms) < 450
    daily_429s = world.log.count(429)
    assert daily_429s == 1  # no retry storm against a daily limit

    # the same day: still limited, the run stops at once and loses nothing
    assert world.run("hs_companies") == 0
    assert world.log.count(429) == daily_429s + 1
    assert json.loads(world.syncs()[-1][-1])["cursor"] == cursor

    p.clock.advance(days=1)  # the daily budget resets: the next run resumes from the committed cursor
    assert world.run("hs_companies") == 0
    resumed = world.syncs()[-1]
    assert resumed[1] == "incremental"
    assert world.sql("SELECT count(*), count(DISTINCT external_id) FROM gs.company WHERE name LIKE 'New %'") == [(450, 450)]
    assert sorted(world.sql("SELECT external_id FROM gs.company WHERE name LIKE 'New %'")) == sorted((i,) for i in new)
