"""ServiceNow through Dagster: a `type: rest_api, system: servicenow` connection's out-of-the-box jobs
(sys_user -> User, core_company -> Company, customer_contact -> Person, incident -> Case with its
company, caller and assignee matched by sys_id), run with `gsdp run` against the fake instance served
on 127.0.0.1 under acme.service-now.com (host map).

Time is the fake's clock: the sync's client reads it for its "now" (cursor upper bound, token age)
and its backoff sleeps advance it, so nothing here waits for real time.
"""

from __future__ import annotations

import functools
import textwrap
from datetime import timedelta

import duckdb
import pytest

from gs_assets.connectors.rest_api import resource as rest_resource
from gs_assets.connectors.rest_api.client import RestClient
from gs_assets.connectors.rest_api.fakes.harness import Clock, serve_on_loopback
from gs_assets.connectors.rest_api.systems.servicenow.fake import Instance, create_app, sn_time

pytestmark = pytest.mark.slow

JOBS = ["sn_users", "sn_companies", "sn_contacts", "sn_incidents"]
PASSWORD = "Integr@tion-pass-41"


class StatusLog:
    def __init__(self, app):
        self.app, self.seen = app, []

    async def __call__(self, scope, receive, send):
        async def capture(message):
            if message["type"] == "http.response.start":
                self.seen.append((scope["method"], scope["path"], scope.get("query_string", b"").decode(),
                                  message["status"]))
            await send(message)
        return await self.app(scope, receive, capture)

    def count(self, status: int, path_part: str = "") -> int:
        return sum(1 for _m, p, _q, s in self.seen if s == status and path_part in p)


class World:
    def __init__(self, tmp_path, monkeypatch):
        self.tmp, self.monkeypatch = tmp_path, monkeypatch
        self.inst = Instance(Clock(), name="acme")
        self.clock = self.inst.clock
        self.inst.add_user_credentials("gsdp.integration", PASSWORD)
        self.log = StatusLog(create_app(self.inst))
        self.server = serve_on_loopback(self.log)
        monkeypatch.setenv("GSDP_REST_HOST_MAP", f"acme.service-now.com={self.server.url}")
        monkeypatch.setenv("GSDP_CONFIG_DIR", str(tmp_path / "config"))
        monkeypatch.setenv("GSDP_WAREHOUSE", str(tmp_path / "wh.duckdb"))
        monkeypatch.setenv("GSDP_REST_TOKEN_DIR", str(tmp_path / "tokens"))
        monkeypatch.setenv("GSDP_SN_USERNAME", "gsdp.integration")
        monkeypatch.setenv("GSDP_SN_PASSWORD", PASSWORD)
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
        monkeypatch.setattr(rest_resource, "RestClient", functools.partial(
            RestClient, now=lambda: self.clock.now().timestamp(), sleep=lambda s: self.clock.advance(seconds=s)))

    def configure(self, auth: str = "{method: basic}", records_per_load: int = 100) -> None:
        folder = self.tmp / "config"
        folder.mkdir(exist_ok=True)
        (folder / "jobs.yaml").write_text(textwrap.dedent(f"""\
            connections:
              sn:
                type: rest_api
                system: servicenow
                domain: acme
                auth: {auth}
                records_per_load: {records_per_load}
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

    def syncs(self) -> list[tuple]:
        return self.sql("SELECT source_object, mode, records, deleted FROM gs_ops.syncs ORDER BY synced_at")


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = World(tmp_path, monkeypatch)
    yield w
    w.server.stop()


def assert_no_stack_trace(text: str) -> None:
    assert "Traceback" not in text and "Stack Trace" not in text and "unexpected error" not in text, text


def test_servicenow_connection_gets_four_default_jobs(world):
    from gs_assets.cli import _cfg
    world.configure()
    cfg = _cfg()
    assert sorted(j for j in cfg.jobs if j.startswith("sn_")) == sorted(JOBS)
    inc = cfg.jobs["sn_incidents"]
    assert (inc.destination, inc.identifiers) == ("case", ["external_id"])
    assert [lk.target for lk in inc.lookups] == ["company_id", "person_id", "owner_id"]


def test_full_sync_then_incremental_after_changes_and_a_hard_delete(world):
    data = world.inst.seed()
    world.configure()
    assert world.run_all() == [0, 0, 0, 0]
    assert world.one('SELECT count(*) FROM gs."user"') == 3
    assert world.one("SELECT count(*) FROM gs.company") == 3  # the vendor is filtered out
    assert world.one("SELECT count(*) FROM gs.person") == 6
    assert world.one("SELECT count(*) FROM gs.case") == 12
    # every incident's references resolved to the records the other jobs keep
    rows = world.sql("SELECT c.external_id, co.external_id, p.external_id, u.external_id, c.status, c.priority, "
                     "c.origin FROM gs.case c LEFT JOIN gs.company co ON co.gsid = c.company_id "
                     "LEFT JOIN gs.person p ON p.gsid = c.person_id LEFT JOIN gs.\"user\" u ON u.gsid = c.owner_id")
    by_id = {r[0]: r[1:] for r in rows}
    for inc in data["incident"]:
        assert by_id[inc["sys_id"]][:3] == (inc["company"], inc["caller_id"], inc["assigned_to"])
    assert {r[4] for r in rows} <= {"New", "Open", "On Hold", "Solved", "Closed"} and all(r[4] for r in rows)
    assert world.one("SELECT count(*) FROM gs_ops.job_runs WHERE status <> 'Success'") == 0
    assert {s: m for s, m, *_ in world.syncs()} == {
        "sys_user": "full", "core_company": "full", "customer_contact": "full", "incident": "full"}

    # changes: a renamed incident, a new one, a deleted one
    world.clock.advance(minutes=10)
    changed = data["incident"][2]
    world.inst.put("incident", changed["sys_id"], at=world.clock.now() - timedelta(minutes=5), short_description="Renamed")
    new = world.inst.put("incident", at=world.clock.now() - timedelta(minutes=4), short_description="Brand new",
                         state="1", priority="2", caller_id=data["customer_contact"][0]["sys_id"],
                         company=data["core_company"][0]["sys_id"], contact_type="email")
    gone = data["incident"][5]
    world.inst.delete("incident", gone["sys_id"], at=world.clock.now() - timedelta(minutes=3))
    world.log.seen.clear()
    assert world.run("sn_incidents") == 0
    source, mode, records, deleted = world.syncs()[-1]
    assert (source, mode, deleted) == ("incident", "incremental", 1)
    assert records <= 4  # the changed, the new, and the re-read at the stored second; not the other 10
    assert world.one("SELECT subject FROM gs.case WHERE external_id = ?", [changed["sys_id"]]) == "Renamed"
    assert world.one("SELECT status FROM gs.case WHERE external_id = ?", [new["sys_id"]]) == "New"
    assert world.one("SELECT count(*) FROM gs.case WHERE external_id = ?", [gone["sys_id"]]) == 0
    assert world.one("SELECT count(*) FROM gs.case") == 12
    queries = [q for _m, p, q, _s in world.log.seen if p.endswith("/incident")]
    assert queries and all("sys_updated_on%3E%3D" in q for q in queries)  # a lower bound, in ServiceNow's format


def test_same_second_ties_across_a_page_boundary_land_once_and_a_late_tie_is_picked_up(world):
    world.inst.max_limit = 3  # pages of 3 (the instance's cap per request)
    t = world.clock.now() - timedelta(hours=1)
    tied = [world.inst.put("incident", at=t, short_description=f"Tie {i}", state="1") for i in range(7)]
    world.configure()
    assert world.run("sn_incidents") == 0
    assert world.one("SELECT count(*) FROM gs.case") == 7
    assert world.one("SELECT count(DISTINCT external_id) FROM gs.case") == 7
    late = world.inst.put("incident", at=t, short_description="Late tie", state="1")  # committed late, same second
    world.clock.advance(minutes=2)
    assert world.run("sn_incidents") == 0
    assert world.one("SELECT count(*) FROM gs.case") == 8
    assert world.one("SELECT subject FROM gs.case WHERE external_id = ?", [late["sys_id"]]) == "Late tie"
    _s, mode, records, _d = world.syncs()[-1]
    assert mode == "incremental" and records == 8  # the 7 at the stored second re-read (upsert absorbs), the late one
    assert world.one("SELECT max(t) FROM (SELECT count(*) t FROM gs.case GROUP BY external_id)") == 1
    assert len(tied) == 7


def test_429_from_a_rate_limit_rule_is_retried_after_retry_after(world):
    world.inst.seed()
    world.inst.faults.rate_limit_next, world.inst.faults.retry_after_s = 1, 120
    world.configure()
    before = world.clock.now()
    assert world.run("sn_companies") == 0
    assert world.log.count(429) == 1
    assert world.clock.now() - before >= timedelta(seconds=120)  # waited as Retry-After asked (fake clock)
    assert world.one("SELECT count(*) FROM gs.company") == 3


def test_wrong_password_is_one_clear_paragraph_without_the_password(world, capsys, monkeypatch):
    world.inst.seed()
    wrong = "not-the-right-password-77"
    monkeypatch.setenv("GSDP_SN_PASSWORD", wrong)
    world.configure()
    assert world.run("sn_incidents") == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "ServiceNow refused the user name and password" in text and "connection sn" in text
    assert_no_stack_trace(text)
    assert wrong not in text and PASSWORD not in text
    assert world.log.count(401) == 1  # no retry storm
    assert world.one("SELECT count(*) FROM gs.case") == 0


def test_oauth_password_grant_sync(world, monkeypatch):
    world.inst.seed()
    cid, secret = world.inst.add_oauth_client()
    monkeypatch.setenv("GSDP_SN_CLIENT_ID", cid)
    monkeypatch.setenv("GSDP_SN_CLIENT_SECRET", secret)
    world.configure(auth="{method: oauth_password}")
    assert world.run("sn_contacts") == 0
    assert world.one("SELECT count(*) FROM gs.person") == 6
    assert world.inst.token_requests == 1 and world.log.count(401) == 0
    assert sn_time(world.clock.now())  # the fake's clock drove the sync


def test_a_record_updated_while_the_sync_pages_shifts_offsets_and_nothing_is_lost(world):
    world.inst.max_limit = 3
    t0 = world.clock.now() - timedelta(hours=1)
    recs = [world.inst.put("incident", at=t0 + timedelta(seconds=i), short_description=f"R{i}", state="1")
            for i in range(7)]
    # after page 1 someone edits its first record: it leaves the window, later records move forward
    world.inst.faults.after_call[1] = lambda: world.inst.put("incident", recs[0]["sys_id"], short_description="Edited")
    world.configure()
    assert world.run("sn_incidents") == 0
    missing = world.sql("SELECT ? NOT IN (SELECT external_id FROM gs.case)", [recs[3]["sys_id"]])[0][0]
    assert missing  # the shift skipped it in this run
    world.clock.advance(minutes=5)
    assert world.run("sn_incidents") == 0
    assert world.one("SELECT count(*) FROM gs.case") == 7
    assert world.one("SELECT subject FROM gs.case WHERE external_id = ?", [recs[3]["sys_id"]]) == "R3"
    assert world.one("SELECT subject FROM gs.case WHERE external_id = ?", [recs[0]["sys_id"]]) == "Edited"
