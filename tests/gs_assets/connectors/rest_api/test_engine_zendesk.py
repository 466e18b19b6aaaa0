"""The REST engine against the fake Zendesk (in process): API token and OAuth auth on the account's
subdomain, the cursor-based ticket/user exports (start_time once, then cursor=after_cursor until
end_of_stream; the last after_cursor kept as the stream's state and the next sync's start), same-second
records, the one-minute visibility lag, deleted tickets, the time-based organization export with its
duplicates across pages removed, and the 10 requests a minute with 429 + Retry-After."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

import pytest

from gs_assets.connectors.rest_api.auth import ConnectionAuthError
from gs_assets.connectors.rest_api.client import ApiError, RestClient, asgi_transport
from gs_assets.connectors.rest_api.fakes.harness import Clock
from gs_assets.connectors.rest_api.spec import load_system_spec
from gs_assets.connectors.rest_api.sync import CursorState, FieldInfo, read_stream
from gs_assets.connectors.rest_api.systems.zendesk.fake import ZendeskAccount, create_app, decode_cursor, epoch_s

T0 = datetime(2026, 11, 30, 10, 0, 0, tzinfo=timezone.utc)


class World:
    def __init__(self, page_limit: int = 1000, enforce_rate_limits: bool = False):
        self.clock = Clock()
        self.acct = ZendeskAccount(self.clock, page_limit=page_limit, enforce_rate_limits=enforce_rate_limits)
        self.email, self.token = self.acct.add_api_token()
        self.app = create_app(self.acct)
        self.sleeps: list[float] = []

    def client(self, method: str = "api_token", secrets=None, domain: str = "acme") -> RestClient:
        def sleep(s: float) -> None:
            self.sleeps.append(s)
            self.clock.advance(seconds=s)
        return RestClient(load_system_spec("zendesk"), connection="zd", auth_method=method,
                          secrets=secrets or {"email": self.email, "api_token": self.token}, domain=domain,
                          transport=asgi_transport(self.app), sleep=sleep, now=lambda: self.clock.now().timestamp())

    def read(self, stream: str, state=None, client=None, window=None) -> list:
        spec = load_system_spec("zendesk").stream(stream)
        c = client or self.client()
        with c:
            return list(read_stream(c, spec, fields=[FieldInfo(f) for f in spec.spec.fields], state=state,
                                    window=window, now=self.clock.now()))

    def exports(self) -> list[dict]:
        return [parse_qs(q) for p, q, s in self.acct.requests if "/incremental/" in p and s == 200]


def ids(pages) -> list[int]:
    return [int(i) for p in pages for i in p.records.column("_source_id").to_pylist()]


def ticket(w: World, id: int, at: datetime, **kw) -> dict:
    return w.acct.put("tickets", id, at=at, subject=f"T{id}", status=kw.pop("status", "open"), priority="normal",
                      via={"channel": "email", "source": {"from": {}, "to": {}}}, requester_id=7001, **kw)


# ------------------------------------------------------------------------------------------ auth

def test_api_token_is_basic_email_slash_token_on_the_subdomain_and_oauth_is_bearer():
    w = World()
    ticket(w, 1, T0)
    assert ids(w.read("tickets")) == [1]
    tok = w.acct.add_oauth_token("zd-oauth-xyz")
    assert ids(w.read("tickets", client=w.client("oauth", {"access_token": tok}))) == [1]
    with pytest.raises(ConnectionAuthError) as e:
        w.read("tickets", client=w.client(secrets={"email": w.email, "api_token": "wrong-token-value"}))
    assert "wrong-token-value" not in str(e.value) and "zd" in str(e.value)
    with pytest.raises(ApiError) as e:  # another subdomain is not this account
        w.read("tickets", client=w.client(domain="other"))
    assert "404" in str(e.value)


def test_a_connection_without_its_subdomain_is_a_config_error():
    from pydantic import ValidationError

    from gs_assets.connectors.rest_api.config import RestApiConnection
    with pytest.raises(ValidationError) as e:
        RestApiConnection.model_validate({"type": "rest_api", "system": "zendesk", "auth": {"method": "api_token"}})
    assert "domain" in str(e.value) and "acme.zendesk.com" in str(e.value)
    ok = RestApiConnection.model_validate({"type": "rest_api", "system": "zendesk", "domain": "acme",
                                           "auth": {"method": "api_token"}})
    assert ok.secret_env("zd") == {"email": "GSDP_ZD_EMAIL", "api_token": "GSDP_ZD_API_TOKEN"}


# ------------------------------------------------------------------------------------------ cursor export

def test_full_sync_pages_by_after_cursor_until_end_of_stream_and_keeps_the_last_after_cursor():
    w = World(page_limit=2)
    for i in range(1, 6):
        ticket(w, i, T0 + timedelta(seconds=i))
    pages = w.read("tickets")
    assert ids(pages) == [1, 2, 3, 4, 5]
    q = w.exports()
    assert q[0] == {"start_time": ["0"], "per_page": ["1000"]}  # a full sync starts at 0
    assert all("start_time" not in x and "cursor" in x for x in q[1:])  # then only the cursor
    last = pages[-1].state
    assert last.token is not None and decode_cursor(last.token) == (epoch_s(T0) + 5, 5)
    assert last.cursor == str(epoch_s(T0) + 5) and last.pks == ("5",)


def test_next_sync_resumes_from_the_stored_after_cursor_with_no_start_time():
    w = World()
    for i in range(1, 4):
        ticket(w, i, T0 + timedelta(seconds=i))
    state = w.read("tickets")[-1].state
    w.clock.advance(minutes=5)
    ticket(w, 2, w.clock.now() - timedelta(minutes=2), status="solved")
    ticket(w, 9, w.clock.now() - timedelta(minutes=2))
    w.acct.requests.clear()
    pages = w.read("tickets", state=state)
    assert ids(pages) == [2, 9]
    assert w.exports() == [{"cursor": [state.token], "per_page": ["1000"]}]
    assert pages[-1].mode == "incremental" and pages[-1].state.token != state.token


def test_same_second_records_across_pages_and_made_visible_later_are_not_lost():
    """estuary/connectors#5205: records share a second; one stamped at the checkpoint's second is
    visible only after the sync that read the others. A `>` on the stored second would drop it."""
    w = World(page_limit=2)
    t = T0 + timedelta(seconds=7)
    for i in (1, 2, 3):
        ticket(w, i, t)
    first = w.read("tickets")
    assert ids(first) == [1, 2, 3]
    assert first[-1].state.cursor == str(epoch_s(t)) and first[-1].state.pks == ("1", "2", "3")
    ticket(w, 4, t)  # committed late with the same second
    w.clock.advance(minutes=1)
    assert ids(w.read("tickets", state=first[-1].state)) == [4]


def test_changes_in_the_last_minute_wait_for_the_next_sync():
    w = World()
    now = w.clock.now()
    ticket(w, 1, now - timedelta(seconds=90))
    ticket(w, 2, now - timedelta(seconds=30))
    pages = w.read("tickets")
    assert ids(pages) == [1]
    w.clock.advance(seconds=45)
    assert ids(w.read("tickets", state=pages[-1].state)) == [2]


def test_a_deleted_ticket_is_reported_as_a_delete_not_a_record():
    w = World()
    ticket(w, 1, T0)
    ticket(w, 2, T0)
    w.acct.delete_ticket(2, at=T0 + timedelta(seconds=1))
    pages = w.read("tickets")
    assert ids(pages) == [1]
    assert [d for p in pages for d in p.deleted_ids] == ["2"]


def test_users_export_is_cursor_based_too():
    w = World(page_limit=1)
    w.acct.put("users", 7001, at=T0, name="Ann Lee", email="ann@c.example", role="end-user")
    w.acct.put("users", 901, at=T0, name="Agent A", email="a@vendor.example", role="agent")
    pages = w.read("users")
    assert ids(pages) == [901, 7001]
    assert "cursor" in w.exports()[-1] and pages[-1].state.token


def test_a_window_resync_reads_from_the_window_start_and_keeps_the_stored_state():
    from gs_assets.connectors.incremental import Window
    w = World()
    ticket(w, 1, T0 - timedelta(days=3))
    ticket(w, 2, T0)
    state = CursorState(str(epoch_s(T0)), ("2",), "tok-kept")
    pages = w.read("tickets", state=state, window=Window(T0 - timedelta(days=1), T0 + timedelta(minutes=1)))
    assert ids(pages) == [2]
    assert w.exports()[0]["start_time"] == [str(epoch_s(T0 - timedelta(days=1)))]
    assert pages[-1].state == state


# ------------------------------------------------------------------------------------------ time-based export

def org(w: World, id: int, at: datetime) -> dict:
    return w.acct.put("organizations", id, at=at, name=f"Org {id}", domain_names=[f"o{id}.example"])


def test_organizations_duplicates_across_pages_at_the_same_second_are_removed():
    w = World(page_limit=2)
    org(w, 1, T0)
    org(w, 2, T0 + timedelta(seconds=1))
    org(w, 3, T0 + timedelta(seconds=1))
    org(w, 4, T0 + timedelta(seconds=2))
    pages = w.read("organizations")
    starts = [x["start_time"][0] for x in w.exports()]
    assert starts[0] == "0" and starts[1] == str(epoch_s(T0) + 1)  # next_page starts at end_time
    assert ids(pages) == [1, 2, 3, 4]  # org 2 came twice (pages 1 and 2): kept once
    assert pages[-1].state.cursor == "2026-11-30T10:00:02Z" and pages[-1].state.pks == ("4",)


def test_organizations_incremental_reads_from_the_cursor_minus_lookback_closed():
    w = World()
    t = T0 + timedelta(seconds=5)
    org(w, 1, t)
    org(w, 2, t)
    state = w.read("organizations")[-1].state
    assert state == CursorState("2026-11-30T10:00:05Z", ("1", "2"))
    org(w, 3, t)  # same second as the stored cursor, visible late
    w.clock.advance(minutes=2)
    w.acct.requests.clear()
    pages = w.read("organizations", state=state)
    assert w.exports()[0]["start_time"] == [str(epoch_s(t) - 60)]
    assert sorted(ids(pages)) == [1, 2, 3]  # 1 and 2 again (the upsert absorbs them), 3 not lost


def test_a_start_time_less_than_a_minute_old_is_refused_with_the_vendor_message():
    w = World()
    state = CursorState((w.clock.now() + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ"), ())
    with pytest.raises(ApiError) as e:
        w.read("organizations", state=state)
    assert "one minute in the past" in str(e.value)


# ------------------------------------------------------------------------------------------ rate limit

def test_ten_export_requests_a_minute_then_429_retry_after_is_waited_out():
    w = World(page_limit=1, enforce_rate_limits=True)
    for i in range(1, 16):
        ticket(w, i, T0 + timedelta(seconds=i))
    pages = w.read("tickets")
    assert ids(pages) == list(range(1, 16))
    limited = [r for r in w.acct.requests if r[2] == 429]
    assert limited and w.sleeps and all(s <= 60 for s in w.sleeps)
    assert len([r for r in w.acct.requests if r[2] == 200]) == 15


def test_test_connection_reaches_the_subdomain_and_the_fake_refuses_start_time_with_cursor():
    w = World()
    with w.client() as c:
        info = c.test_connection()
        assert info["api_host"] == "acme.zendesk.com"
        from gs_assets.connectors.rest_api.spec import RequestSpec
        with pytest.raises(ApiError) as e:  # Zendesk: start_time on the first request only, then cursor
            c.send(RequestSpec(path="/api/v2/incremental/tickets/cursor.json",
                               params={"start_time": "0", "cursor": "MTB8fDF8"}))
        assert "InvalidPaginationParameter" in str(e.value)
    w2 = World(enforce_rate_limits=True)
    ticket(w2, 1, T0)
    for _ in range(10):
        w2.read("tickets")
    import httpx
    r = httpx.Client(transport=asgi_transport(w2.app)).get(
        "https://acme.zendesk.com/api/v2/incremental/tickets/cursor.json?start_time=0", auth=(f"{w2.email}/token", w2.token))
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.json()["description"] == "Number of allowed incremental export API requests per minute exceeded"
