"""The REST engine against the fake ServiceNow instance in process (ASGI): the Table API's encoded
query on sys_updated_on ('YYYY-MM-DD HH:MM:SS', UTC, one-second resolution), Link-header paging,
basic auth and OAuth on the customer's instance host, the rate-limit rule's 429 + Retry-After, and
hard deletes from sys_audit_delete."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from gs_assets.connectors.rest_api.auth import ConnectionAuthError
from gs_assets.connectors.rest_api.client import ApiError, RestClient, asgi_transport
from gs_assets.connectors.rest_api.fakes.harness import Clock
from gs_assets.connectors.rest_api.spec import load_system_spec
from gs_assets.connectors.rest_api.sync import CursorState, FieldInfo, read_stream
from gs_assets.connectors.rest_api.systems.servicenow.fake import Instance, RateLimitRule, create_app, sn_time

PASSWORD = "Wr0ng-Or-Right!pw"


class Log:
    """ASGI wrapper recording each (method, path?query, status)."""

    def __init__(self, app):
        self.app, self.seen = app, []

    async def __call__(self, scope, receive, send):
        async def capture(message):
            if message["type"] == "http.response.start":
                self.seen.append((scope["method"], scope["path"], scope.get("query_string", b"").decode(),
                                  message["status"]))
            await send(message)
        return await self.app(scope, receive, capture)

    def queries(self, path_part: str) -> list[dict]:
        return [parse_qs(q) for _m, p, q, _s in self.seen if path_part in p]


def world(**kw):
    inst = Instance(Clock(), name="acme", **kw)
    inst.add_user_credentials("gsdp.integration", PASSWORD)
    return inst, Log(create_app(inst))


def client(inst, log, method="basic", secrets=None, sleeps=None) -> RestClient:
    secrets = secrets or {"username": "gsdp.integration", "password": PASSWORD}
    return RestClient(load_system_spec("servicenow"), connection="sn", auth_method=method, secrets=secrets,
                      domain="acme", transport=asgi_transport(log),
                      sleep=(sleeps.append if sleeps is not None else (lambda s: inst.clock.advance(seconds=s))),
                      now=lambda: inst.clock.now().timestamp())


def stream(name="incident"):
    return load_system_spec("servicenow").stream(name)


def fields(name="incident"):
    return [FieldInfo(f) for f in stream(name).spec.fields]


def ids(pages):
    return [i for p in pages for i in p.records.column("_source_id").to_pylist()]


def test_full_sync_pages_by_link_header_with_the_bounds_as_servicenow_writes_them():
    inst, log = world(max_limit=2)
    t0 = inst.clock.now() - timedelta(hours=1)
    made = [inst.put("incident", at=t0 + timedelta(seconds=i), short_description=f"i{i}") for i in range(5)]
    inst.put("incident", at=inst.clock.now() - timedelta(seconds=30), short_description="too fresh")  # < 60 s lag
    with client(inst, log) as c:
        pages = list(read_stream(c, stream(), fields=fields(), now=inst.clock.now()))
    assert ids(pages) == [r["sys_id"] for r in made]
    qs = log.queries("/api/now/table/incident")
    upper = sn_time(inst.clock.now() - timedelta(seconds=60))
    assert qs[0]["sysparm_query"] == [f"sys_updated_on<{upper}^ORDERBYsys_updated_on^ORDERBYsys_id"]
    assert [q.get("sysparm_offset") for q in qs] == [None, ["2"], ["4"]]  # Link rel="next"
    assert qs[0]["sysparm_display_value"] == ["false"] and qs[0]["sysparm_exclude_reference_link"] == ["true"]
    assert qs[0]["sysparm_fields"][0].split(",")[:3] == ["sys_id", "number", "short_description"]
    assert pages[-1].state == CursorState(made[-1]["sys_updated_on"], (made[-1]["sys_id"],))
    assert all(s == 200 for *_x, s in log.seen)
    host = {urlsplit(u).hostname for u in [c.auth.base_url]}
    assert host == {"acme.service-now.com"}


def test_same_second_ties_across_a_page_boundary_and_a_late_record_at_that_second_are_read():
    inst, log = world(max_limit=2)
    t = inst.clock.now() - timedelta(minutes=10)
    tied = [inst.put("incident", at=t, short_description=f"tie{i}") for i in range(5)]  # one second, 3 pages
    with client(inst, log) as c:
        first = list(read_stream(c, stream(), fields=fields(), now=inst.clock.now()))
    assert sorted(ids(first)) == sorted(r["sys_id"] for r in tied) and len(ids(first)) == 5
    state = first[-1].state
    assert state.cursor == sn_time(t) and set(state.pks) == {r["sys_id"] for r in tied}
    # a write committed late with the same second, and one later change
    late = inst.put("incident", at=t, short_description="late tie")
    inst.clock.advance(minutes=5)
    changed = inst.put("incident", tied[1]["sys_id"], at=inst.clock.now() - timedelta(minutes=2), short_description="changed")
    with client(inst, log) as c:
        second = list(read_stream(c, stream(), fields=fields(), state=state, now=inst.clock.now()))
    got = ids(second)
    assert late["sys_id"] in got and changed["sys_id"] in got
    assert got[-1] == changed["sys_id"]
    q = [q for q in log.queries("/api/now/table/incident") if ">=" in q["sysparm_query"][0]][0]
    assert q["sysparm_query"][0].startswith(f"sys_updated_on>={sn_time(t)}^sys_updated_on<")
    assert second[-1].state == CursorState(changed["sys_updated_on"], (changed["sys_id"],))


def test_a_429_from_a_rate_limit_rule_is_retried_after_retry_after():
    inst, log = world(rate_limit=RateLimitRule(limit=1000))
    inst.put("incident", at=inst.clock.now() - timedelta(hours=1))
    inst.faults.rate_limit_next, inst.faults.retry_after_s = 1, 42
    sleeps: list[float] = []
    with client(inst, log, sleeps=sleeps) as c:
        pages = list(read_stream(c, stream(), fields=fields(), now=inst.clock.now()))
        assert c.usage.headers.get("X-RateLimit-Limit") == "1000"
    assert len(ids(pages)) == 1
    assert [s for *_x, s in log.seen] == [429, 200]
    assert sleeps == [42.0]


def test_hourly_rule_exhausted_waits_until_the_next_hour():
    inst, log = world(rate_limit=RateLimitRule(limit=2), max_limit=1)
    for i in range(3):
        inst.put("incident", at=inst.clock.now() - timedelta(hours=1, seconds=i))
    with client(inst, log) as c:  # backoff sleeps advance the fake clock
        pages = list(read_stream(c, stream(), fields=fields(), now=inst.clock.now()))
    assert len(ids(pages)) == 3
    assert [s for *_x, s in log.seen] == [200, 200, 429, 200]


def test_wrong_password_is_one_clear_paragraph_without_the_password():
    inst, log = world()
    with client(inst, log, secrets={"username": "gsdp.integration", "password": "not-the-password-9"}) as c:
        with pytest.raises(ApiError) as e:  # the spec's 401 rule for basic auth: fail, with its message
            list(read_stream(c, stream(), fields=fields(), now=inst.clock.now()))
    msg = str(e.value)
    assert "ServiceNow refused the user name and password" in msg and "connection sn (auth method basic)" in msg
    assert "not-the-password-9" not in msg and "\n" not in msg and "Traceback" not in msg
    assert [s for *_x, s in log.seen] == [401]  # no retry storm


@pytest.mark.parametrize("method", ["oauth_password", "oauth_client_credentials"])
def test_oauth_on_the_instance_token_endpoint_and_a_refresh_when_the_token_ages(method):
    inst, log = world(max_limit=1)
    cid, secret = inst.add_oauth_client()
    inst.token_lifetime_s = 1800
    for i in range(3):
        inst.put("sys_user", at=inst.clock.now() - timedelta(hours=1, seconds=i), email=f"u{i}@acme.com")
    secrets = {"client_id": cid, "client_secret": secret}
    if method == "oauth_password":
        secrets.update(username="gsdp.integration", password=PASSWORD)
    with client(inst, log, method=method, secrets=secrets) as c:
        assert len(ids(read_stream(c, stream("sys_user"), fields=fields("sys_user"), now=inst.clock.now()))) == 3
        inst.clock.advance(seconds=1750)  # within the refresh margin: a new token before the next call
        assert len(ids(read_stream(c, stream("sys_user"), fields=fields("sys_user"), now=inst.clock.now()))) == 3
    assert inst.token_requests == 2
    assert all(s == 200 for *_x, s in log.seen)
    assert ("POST", "/oauth_token.do", "", 200) in log.seen


def test_bad_oauth_client_secret_is_one_clear_paragraph():
    inst, log = world()
    cid, secret = inst.add_oauth_client()
    with client(inst, log, method="oauth_client_credentials",
                secrets={"client_id": cid, "client_secret": "bad-secret-77"}) as c:
        with pytest.raises(ConnectionAuthError) as e:
            list(read_stream(c, stream(), fields=fields(), now=inst.clock.now()))
    assert "/oauth_token.do refused the credentials (HTTP 401)" in str(e.value)
    assert "bad-secret-77" not in str(e.value)


def test_hard_deletes_come_from_sys_audit_delete_for_the_stream_table_and_window():
    inst, log = world()
    t = inst.clock.now() - timedelta(hours=2)
    a = inst.put("incident", at=t)
    b = inst.put("incident", at=t + timedelta(seconds=1))
    co = inst.put("core_company", at=t, name="X", customer=True)
    with client(inst, log) as c:
        state = list(read_stream(c, stream(), fields=fields(), now=inst.clock.now()))[-1].state
    inst.clock.advance(minutes=10)
    inst.delete("incident", a["sys_id"], at=inst.clock.now() - timedelta(minutes=5))
    inst.delete("core_company", co["sys_id"], at=inst.clock.now() - timedelta(minutes=5))
    inst.delete("incident", b["sys_id"], at=inst.clock.now() - timedelta(seconds=10))  # inside the lag: next run
    with client(inst, log) as c:
        pages = list(read_stream(c, stream(), fields=fields(), state=state, now=inst.clock.now()))
    assert [d for p in pages for d in p.deleted_ids] == [a["sys_id"]]
    q = log.queries("sys_audit_delete")[-1]
    assert q["sysparm_query"][0].startswith(f"tablename=incident^sys_created_on>={sn_time(t + timedelta(seconds=1))}^")


def test_a_servicenow_connection_needs_its_instance():
    from pydantic import ValidationError

    from gs_assets.connectors.rest_api.config import RestApiConnection

    with pytest.raises(ValidationError) as e:
        RestApiConnection.model_validate({"type": "rest_api", "system": "servicenow", "auth": {"method": "basic"}})
    assert "domain: servicenow's API runs on the customer's own instance; set domain (e.g. acme for " \
           "acme.service-now.com)" in str(e.value)
    ok = RestApiConnection.model_validate({"type": "rest_api", "system": "servicenow", "domain": "acme",
                                           "auth": {"method": "oauth_password"}})
    assert ok.secret_env("sn") == {"client_id": "GSDP_SN_CLIENT_ID", "client_secret": "GSDP_SN_CLIENT_SECRET",
                                   "username": "GSDP_SN_USERNAME", "password": "GSDP_SN_PASSWORD"}


def test_test_connection_to_an_unreachable_instance_names_the_instance_host(monkeypatch):
    from gs_assets.connectors.rest_api.config import RestApiConnection
    from gs_assets.connectors.rest_api.connection_test import check_connection
    from gs_assets.connectors.rest_api.fakes.harness import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("GSDP_REST_HOST_MAP", f"acme.service-now.com={dead}")
    monkeypatch.setenv("GSDP_SN_USERNAME", "gsdp.integration")
    monkeypatch.setenv("GSDP_SN_PASSWORD", PASSWORD)
    conn = RestApiConnection.model_validate({"type": "rest_api", "system": "servicenow", "domain": "acme",
                                             "auth": {"method": "basic"}})
    t = check_connection("sn", conn)
    assert t.error and "GET /api/now/table/sys_user on acme.service-now.com did not succeed" in t.error
    assert f"acme.service-now.com is sent to {dead} by GSDP_REST_HOST_MAP" in t.error
    assert "{login_host}" not in t.error and PASSWORD not in t.error


def test_a_record_updated_mid_read_shifts_the_offsets_and_the_state_stays_before_the_shift():
    """Offset paging: a record read on page 1 and updated before page 2 leaves the window, so every
    later record moves one place forward and the first one of page 2 is never served. The total
    count changes (X-Total-Count): the pages after it offer no state past page 1's, so the next run
    reads from there and gets the skipped record."""
    inst, log = world(max_limit=2)
    t0 = inst.clock.now() - timedelta(hours=1)
    recs = [inst.put("incident", at=t0 + timedelta(seconds=i), short_description=f"r{i}") for i in range(6)]
    inst.faults.after_call[1] = lambda: inst.put("incident", recs[0]["sys_id"], short_description="edited now")
    with client(inst, log) as c:
        first = list(read_stream(c, stream(), fields=fields(), now=inst.clock.now()))
    skipped = recs[2]["sys_id"]
    assert skipped not in ids(first)  # the fake really shifted the pages
    state = first[-1].state
    assert state == CursorState(recs[1]["sys_updated_on"], (recs[1]["sys_id"],))  # page 1's, not the last read
    inst.clock.advance(minutes=5)
    with client(inst, log) as c:
        second = list(read_stream(c, stream(), fields=fields(), state=state, now=inst.clock.now()))
    assert skipped in ids(second) and recs[0]["sys_id"] in ids(second)
