"""Zendesk through Dagster: a `type: rest_api, system: zendesk` connection's out-of-the-box jobs
(organizations -> Company, end-users -> Person, agents -> User, tickets -> Case), run with `gsdp run`
against the fake Zendesk served on 127.0.0.1 under acme.zendesk.com (host map).

Time is the fake's clock: the sync's client reads it for its "now" and its backoff sleeps advance it,
so the 10-requests-a-minute limit and the one-minute visibility lag behave the same on any machine.
"""

from __future__ import annotations

import functools
import json
import textwrap
from datetime import timedelta

import duckdb
import pytest

from gs_assets.connectors.rest_api import resource as rest_resource
from gs_assets.connectors.rest_api.client import RestClient
from gs_assets.connectors.rest_api.fakes.harness import Clock, serve_on_loopback
from gs_assets.connectors.rest_api.systems.zendesk.fake import ZendeskAccount, create_app

pytestmark = pytest.mark.slow

JOBS = ["zd_organizations", "zd_end_users", "zd_agents", "zd_tickets"]


class ZendeskWorld:
    def __init__(self, tmp_path, monkeypatch, **account_kw):
        self.tmp, self.monkeypatch = tmp_path, monkeypatch
        self.clock = Clock()
        self.acct = ZendeskAccount(self.clock, **account_kw)
        self.server = serve_on_loopback(create_app(self.acct))
        email, token = self.acct.add_api_token("admin@acme.example", "zd-token-secret-123")
        monkeypatch.setenv("GSDP_ZD_EMAIL", email)
        monkeypatch.setenv("GSDP_ZD_API_TOKEN", token)
        monkeypatch.setenv("GSDP_REST_HOST_MAP", f"acme.zendesk.com={self.server.url}")
        monkeypatch.setenv("GSDP_CONFIG_DIR", str(tmp_path / "config"))
        monkeypatch.setenv("GSDP_WAREHOUSE", str(tmp_path / "wh.duckdb"))
        monkeypatch.setenv("GSDP_REST_TOKEN_DIR", str(tmp_path / "tokens"))
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
        monkeypatch.setattr(rest_resource, "RestClient", functools.partial(
            RestClient, now=lambda: self.clock.now().timestamp(), sleep=lambda s: self.clock.advance(seconds=s)))
        folder = tmp_path / "config"
        folder.mkdir()
        (folder / "jobs.yaml").write_text(textwrap.dedent("""\
            connections:
              zd:
                type: rest_api
                system: zendesk
                domain: acme
                auth: {method: api_token}
                records_per_load: 100
            """))

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

    def last_sync(self, source: str) -> tuple:
        return self.sql("SELECT mode, records, deleted, cursor_to FROM gs_ops.syncs WHERE source_object = ? "
                        "ORDER BY synced_at DESC LIMIT 1", [source])[0]


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = ZendeskWorld(tmp_path, monkeypatch)
    yield w
    w.server.stop()


def test_zendesk_connection_gets_four_default_jobs(world):
    from gs_assets.cli import _cfg
    cfg = _cfg()
    assert sorted(j for j in cfg.jobs if j.startswith("zd_")) == sorted(JOBS)
    assert (cfg.jobs["zd_tickets"].destination, cfg.jobs["zd_tickets"].deletes.policy.value) == ("case", "delete")
    assert cfg.jobs["zd_end_users"].destination == "person" and cfg.jobs["zd_agents"].destination == "user"


def test_full_then_incremental_sync_with_same_second_records_and_deleted_tickets(world):
    counts = world.acct.seed_demo(companies=5)
    assert world.run_all() == [0, 0, 0, 0]
    assert world.one("SELECT count(*) FROM gs.company") == 5
    assert world.one("SELECT count(*) FROM gs.person") == 10
    assert world.one('SELECT count(*) FROM gs."user"') == 3
    assert world.one("SELECT count(*) FROM gs.case") == counts["tickets"] == 10
    # each case points at its organization's company, its requester and its assignee
    assert world.one("SELECT count(*) FROM gs.case WHERE company_id IS NULL OR person_id IS NULL "
                     "OR owner_id IS NULL") == 0
    assert world.one("SELECT status FROM gs.case WHERE case_number = '2'") == "Open"
    assert world.one("SELECT count(*) FROM gs_ops.job_runs WHERE status <> 'Success'") == 0
    mode, _records, _deleted, cursor = world.last_sync("tickets")
    assert mode == "full" and json.loads(cursor)["token"]
    assert world.one("SELECT max(window_to) FROM gs_ops.syncs") == "2026-11-30T11:59:00Z"  # now - 1 min, epoch s

    # changes: a ticket solved, one deleted, two new tickets stamped in one second, one of them only
    # visible after the next sync (committed late with that same second)
    world.clock.advance(minutes=10)
    t = world.clock.now() - timedelta(minutes=2)
    world.acct.put("tickets", 2, at=t, status="solved")
    world.acct.delete_ticket(3, at=t)
    world.acct.put("tickets", 50, at=t, subject="Same second A", status="new", priority="high",
                   via={"channel": "web"}, requester_id=7000, assignee_id=900, organization_id=5000)
    world.acct.requests.clear()
    assert world.run("zd_tickets") == 0
    mode, records, deleted, _ = world.last_sync("tickets")
    assert (mode, records, deleted) == ("incremental", 2, 1)
    exports = [q for p, q, s in world.acct.requests if "/incremental/tickets" in p and s == 200]
    # resumed from the kept after_cursor, no start_time
    assert exports and all("cursor=" in q and "start_time" not in q for q in exports)
    assert world.one("SELECT status FROM gs.case WHERE case_number = '2'") == "Solved"
    assert world.one("SELECT count(*) FROM gs.case WHERE case_number = '3'") == 0  # the job's delete policy
    run = world.sql("SELECT deleted, deletes_applied FROM gs_ops.job_runs WHERE job = 'zd_tickets' "
                    "ORDER BY started_at")[-1]
    assert run == (1, 1)

    world.acct.put("tickets", 51, at=t, subject="Same second B", status="open", priority="low",
                   via={"channel": "email"}, requester_id=7001, organization_id=5000)
    world.clock.advance(minutes=1)
    assert world.run("zd_tickets") == 0
    assert world.last_sync("tickets")[:2] == ("incremental", 1)
    assert world.one("SELECT subject FROM gs.case WHERE case_number = '51'") == "Same second B"
    assert world.one("SELECT count(*) FROM gs.case") == 11


def test_organizations_time_based_export_duplicates_across_pages_are_removed(tmp_path, monkeypatch):
    w = ZendeskWorld(tmp_path, monkeypatch, page_limit=2)
    try:
        t0 = w.clock.now() - timedelta(hours=1)
        for i, sec in enumerate([0, 1, 1, 2, 2, 3]):
            w.acct.put("organizations", 100 + i, at=t0 + timedelta(seconds=sec), name=f"Org {i}")
        assert w.run("zd_organizations") == 0
        assert w.one("SELECT count(*) FROM gs.company") == 6
        mode, records, _d, _c = w.last_sync("organizations")
        assert (mode, records) == ("full", 6)  # the repeated boundary records were not landed twice
        assert w.sql("SELECT rows_read, inserted, superseded FROM gs_ops.job_runs") == [(6, 6, 0)]
    finally:
        w.server.stop()


def test_429_with_retry_after_is_waited_out(tmp_path, monkeypatch):
    w = ZendeskWorld(tmp_path, monkeypatch, page_limit=1)
    try:
        t0 = w.clock.now() - timedelta(hours=1)
        for i in range(14):
            w.acct.put("organizations", 100 + i, at=t0 + timedelta(seconds=i), name=f"Org {i}")
        before = w.clock.now()
        assert w.run("zd_organizations") == 0
        assert w.one("SELECT count(*) FROM gs.company") == 14
        statuses = [s for p, _q, s in w.acct.requests if "/incremental/" in p]
        assert statuses.count(429) >= 1 and statuses.count(200) > 10  # more than a minute's 10
        assert (w.clock.now() - before).total_seconds() >= 60  # waited as Retry-After asked, on the fake's clock
    finally:
        w.server.stop()
