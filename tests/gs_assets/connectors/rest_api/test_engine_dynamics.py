"""The REST engine against the fake Dataverse (Dynamics 365 Web API) in process: client credentials at
the tenant's token endpoint with the org URL as scope, OData $select / $filter on modifiedon /
$orderby, `Prefer: odata.maxpagesize` paging by @odata.nextLink, records tied on modifiedon, the
service protection 429 with Retry-After, and a token that expires or is revoked mid-sync."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gs_assets.connectors.rest_api.auth import ConnectionAuthError, body_error
from gs_assets.connectors.rest_api.client import RestClient, asgi_transport
from gs_assets.connectors.rest_api.fakes.harness import Clock
from gs_assets.connectors.rest_api.spec import dig, load_system_spec
from gs_assets.connectors.rest_api.sync import CursorState, FieldInfo, discover_fields, read_stream
from gs_assets.connectors.rest_api.systems.dynamics.fake import (LOGIN_HOST, TOKEN_LIFETIME_S, DataverseOrg,
                                                                  create_app, odata_time)


class Recorder(httpx.BaseTransport):
    """The in-process transport into the fake, keeping every request and response."""

    def __init__(self, app):
        self.inner = asgi_transport(app)
        self.seen: list[tuple[httpx.Request, httpx.Response]] = []

    def handle_request(self, request):
        resp = self.inner.handle_request(request)
        resp.read()
        self.seen.append((request, resp))
        return resp

    def api(self, path_part: str = "/api/data/"):
        return [(q, r) for q, r in self.seen if path_part in q.url.path]

    def tokens(self):
        return [(q, r) for q, r in self.seen if q.url.host == LOGIN_HOST]


class World:
    def __init__(self):
        self.org = DataverseOrg(Clock())
        self.clock = self.org.clock
        self.client_id, self.client_secret = self.org.add_app()
        self.transport = Recorder(create_app(self.org))
        self.sleeps: list[float] = []

    def secrets(self, **over):
        return {"tenant_id": self.org.tenant_id, "client_id": self.client_id, "client_secret": self.client_secret,
                **over}

    def client(self, **kw) -> RestClient:
        def sleep(s):
            self.sleeps.append(s)
            self.clock.advance(seconds=s)
        args = dict(connection="d365", auth_method="client_credentials", secrets=self.secrets(),
                    domain=self.org.org, transport=self.transport, sleep=sleep,
                    now=lambda: self.clock.now().timestamp())
        args.update(kw)
        return RestClient(load_system_spec("dynamics"), **args)

    def read(self, stream: str, state=None, fields=None, client=None):
        s = load_system_spec("dynamics").stream(stream)
        names = fields or s.spec.fields
        c = client or self.client()
        try:
            return list(read_stream(c, s, fields=[FieldInfo(f) for f in names], state=state))
        finally:
            if client is None:
                c.close()

    def accounts(self, n: int, at=None, step_s: int = 60) -> list[dict]:
        t0 = at or self.clock.now() - timedelta(days=1)
        return [self.org.create("accounts", {"name": f"Account {i}"},
                                at=t0 + timedelta(seconds=0 if step_s == 0 else i * step_s)) for i in range(n)]


def ids(pages):
    return [i for p in pages for i in p.records.column("_source_id").to_pylist()]


@pytest.fixture
def w():
    return World()


def test_client_credentials_at_the_tenant_endpoint_with_the_org_url_as_scope(w):
    with w.client() as c:
        info = c.test_connection()
    (req, resp), = w.transport.tokens()
    assert str(req.url) == f"https://{LOGIN_HOST}/{w.org.tenant_id}/oauth2/v2.0/token"
    form = parse_qs(req.content.decode())
    assert form["grant_type"] == ["client_credentials"] and form["scope"] == ["https://contoso.crm.dynamics.com/.default"]
    assert resp.status_code == 200 and resp.json()["expires_in"] == TOKEN_LIFETIME_S
    whoami, = w.transport.api("/WhoAmI")
    assert str(whoami[0].url) == "https://contoso.crm.dynamics.com/api/data/v9.2/WhoAmI"
    assert whoami[0].headers["Authorization"].startswith("Bearer ") and whoami[1].status_code == 200
    assert info["api_host"] == "contoso.crm.dynamics.com" and info["login_host"] == "contoso.crm.dynamics.com"


def test_a_wrong_secret_tenant_or_org_is_one_paragraph_without_secrets(w):
    with pytest.raises(ConnectionAuthError) as e:
        w.client(secrets=w.secrets(client_secret="wrong-secret-value")).test_connection()
    msg = str(e.value)
    assert "refused the client secret" in msg and "AADSTS7000215" in msg and "wrong-secret-value" not in msg
    with pytest.raises(ConnectionAuthError) as e:
        w.client(secrets=w.secrets(tenant_id="0000aaaa-not-our-tenant")).test_connection()
    assert "tenant_id" in str(e.value) and "0000aaaa-not-our-tenant" not in str(e.value)
    with pytest.raises(ConnectionAuthError) as e:
        w.client(domain="nosuchorg").test_connection()
    assert "check the connection's domain" in str(e.value) and "invalid_resource" in str(e.value)


def test_full_read_pages_by_maxpagesize_and_next_link_under_the_upper_bound(w):
    rows = w.accounts(1200)
    late = w.org.create("accounts", {"name": "too new"}, at=w.clock.now() - timedelta(seconds=10))  # inside the lag
    pages = w.read("accounts")
    assert ids(pages) == [r["accountid"] for r in rows]  # (modifiedon, accountid) order, `late` not yet
    assert late["accountid"] not in ids(pages)
    api = w.transport.api("/accounts")
    assert len(api) == 3
    first = parse_qs(urlsplit(str(api[0][0].url)).query)
    assert first["$filter"] == [f"modifiedon lt {odata_time(w.clock.now() - timedelta(seconds=60))}"]
    assert first["$orderby"] == ["modifiedon asc,accountid asc"]
    assert "accountid" in first["$select"][0].split(",") and "modifiedon" in first["$select"][0].split(",")
    assert all("odata.maxpagesize=500" in q.headers["Prefer"] for q, _ in api)
    assert all(r.headers["Preference-Applied"].startswith("odata.maxpagesize=500") for _, r in api)
    assert "$skiptoken" in str(api[1][0].url) and api[1][0].url.host == "contoso.crm.dynamics.com"
    assert [p.num_records for p in pages] == [500, 500, 200]
    assert pages[-1].state == CursorState(rows[-1]["modifiedon"], (rows[-1]["accountid"],))
    assert "@odata.etag" not in pages[0].records.schema.names


def test_incremental_reads_from_the_cursor_minus_lookback_closed_and_ties_are_not_lost(w):
    w.accounts(10)
    tied_at = w.clock.now() - timedelta(hours=1)
    tied = w.accounts(1100, at=tied_at, step_s=0)  # one bulk import: 1,100 rows on one modifiedon
    pages = w.read("accounts")
    assert sorted(ids(pages)[10:]) == sorted(r["accountid"] for r in tied)
    state = pages[-1].state
    assert state.cursor == odata_time(tied_at) and len(state.pks) == 1100
    # a row committed afterwards with the same modifiedon (a late write in the same second) and a change
    w.clock.advance(minutes=5)
    same_second = w.org.create("accounts", {"name": "same second"}, at=tied_at)
    w.org.update("accounts", tied[3]["accountid"], {"name": "renamed"})
    w.clock.advance(minutes=2)
    n_before = len(w.transport.api("/accounts"))
    pages = w.read("accounts", state=state)
    got = ids(pages)
    assert same_second["accountid"] in got and tied[3]["accountid"] in got
    q = parse_qs(urlsplit(str(w.transport.api("/accounts")[n_before][0].url)).query)
    lower = odata_time(tied_at - timedelta(seconds=120))
    assert q["$filter"][0].startswith(f"modifiedon ge {lower} and modifiedon lt ")
    assert pages[-1].state.cursor == w.org.rows["accounts"][tied[3]["accountid"]]["modifiedon"]


def test_service_protection_429_waits_retry_after_and_continues(w):
    rows = w.accounts(1200)
    w.org.faults.throttle.append([2, 2, 37])  # after 2 API calls: two 429s asking 37 s
    pages = w.read("accounts")
    assert ids(pages) == [r["accountid"] for r in rows]
    throttled = [r for _, r in w.transport.api("/accounts") if r.status_code == 429]
    assert len(throttled) == 2 and throttled[0].headers["Retry-After"] == "37"
    assert throttled[0].json()["error"]["code"] == "0x80072322"
    assert w.sleeps == [37, 37]


def test_token_is_fetched_again_before_it_expires_mid_sync(w):
    rows = w.accounts(1200)
    s = load_system_spec("dynamics").stream("accounts")
    with w.client() as c:
        it = read_stream(c, s, fields=[FieldInfo(f) for f in s.spec.fields])
        first = next(it)
        w.clock.advance(seconds=TOKEN_LIFETIME_S - 200)  # inside the refresh margin: a new token first
        rest = list(it)
    assert ids([first, *rest]) == [r["accountid"] for r in rows]
    assert len(w.transport.tokens()) == 2
    assert all(r.status_code != 401 for _, r in w.transport.api())


def test_a_token_revoked_mid_sync_gets_one_401_then_a_new_token(w):
    rows = w.accounts(1200)
    w.org.faults.expire_tokens_after_calls = 1
    pages = w.read("accounts")
    assert ids(pages) == [r["accountid"] for r in rows]
    statuses = [r.status_code for _, r in w.transport.api()]
    assert statuses == [200, 401, 200, 200]
    assert len(w.transport.tokens()) == 2


def test_lookup_names_come_with_contacts_and_deletes_are_not_reported(w):
    acct = w.org.create("accounts", {"name": "A"}, at=w.clock.now() - timedelta(hours=2))
    boss = w.org.create("contacts", {"emailaddress1": "boss@a.example", "_parentcustomerid_value": acct["accountid"]},
                        at=w.clock.now() - timedelta(hours=2))
    w.org.create("contacts", {"emailaddress1": "kid@a.example", "_parentcustomerid_value": boss["contactid"]},
                 at=w.clock.now() - timedelta(hours=2))
    pages = w.read("contacts")
    rows = {r["emailaddress1"]: r for p in pages for r in p.records.to_pylist()}
    key = "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"
    assert rows["boss@a.example"][key] == "account" and rows["kid@a.example"][key] == "contact"
    w.org.delete("contacts", boss["contactid"])
    pages = w.read("contacts")
    assert all(p.deleted_ids == [] for p in pages) and len(ids(pages)) == 1


# ------------------------------------------------------------------ engine pieces Dataverse needed

def test_dig_reads_a_key_that_holds_dots():
    assert dig({"@odata.nextLink": "https://x/next", "a": {"b": 1}}, "@odata.nextLink") == "https://x/next"
    assert dig({"a": {"b": 1}}, "a.b") == 1


def test_body_error_reads_an_odata_error_object():
    info = body_error({"error": {"code": "0x80072322", "message": "Number of requests exceeded the limit"}})
    assert info["error_code"] == "0x80072322" and info["error_message"] == "Number of requests exceeded the limit"


def test_response_fields_are_columns_but_never_selected(w):
    acct = w.org.create("accounts", {"name": "A"}, at=w.clock.now() - timedelta(hours=2))
    w.org.create("contacts", {"emailaddress1": "orphan@x.example"}, at=w.clock.now() - timedelta(hours=2))
    w.org.create("contacts", {"emailaddress1": "boss@a.example", "_parentcustomerid_value": acct["accountid"]},
                 at=w.clock.now() - timedelta(hours=1))
    s = load_system_spec("dynamics").stream("contacts")
    key = "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"
    with w.client() as c:
        fields = discover_fields(c, s)
        assert key in [f.name for f in fields]
        pages = list(read_stream(c, s, fields=[f for f in fields if f.name in ("contactid", "_parentcustomerid_value", "modifiedon", key)]))
    q = parse_qs(urlsplit(str(w.transport.api("/contacts")[0][0].url)).query)
    assert q["$select"] == ["contactid,_parentcustomerid_value,modifiedon"]
    assert [r[key] for r in pages[0].records.to_pylist()] == [None, "account"]


def test_a_dynamics_connection_needs_its_org_domain():
    from pydantic import ValidationError

    from gs_assets.connectors.rest_api.config import RestApiConnection
    conn = RestApiConnection.model_validate({"type": "rest_api", "system": "dynamics", "domain": "acme",
                                             "auth": {"method": "client_credentials"}})
    assert conn.secret_env("d365") == {"tenant_id": "GSDP_D365_TENANT_ID", "client_id": "GSDP_D365_CLIENT_ID",
                                       "client_secret": "GSDP_D365_CLIENT_SECRET"}
    with pytest.raises(ValidationError) as e:
        RestApiConnection.model_validate({"type": "rest_api", "system": "dynamics", "auth": {"method": "client_credentials"}})
    assert "set domain (e.g. acme for acme.crm.dynamics.com)" in str(e.value)
