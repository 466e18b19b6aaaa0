"""The fake Dataverse behaves as Microsoft documents: only its two hosts, the token endpoint's
AADSTS errors, a bearer token for this org only, OData $select / $filter / $orderby errors, paging by
odata.maxpagesize with Preference-Applied and a nextLink whose paging cookie keeps its place when
rows change mid-paging, and the service protection limit (6,000 requests in 300 s) on the clock.
Driven in process through httpx.ASGITransport."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from gs_assets.connectors.rest_api.fakes.harness import Clock
from gs_assets.connectors.rest_api.systems.dynamics.fake import LOGIN_HOST, DataverseOrg, create_app


class Session:
    def __init__(self, org: DataverseOrg):
        self.org, self.app = org, create_app(org)
        self.client_id, self.client_secret = org.add_app()
        self.token = None

    def __call__(self, method: str, url: str, **kw) -> httpx.Response:
        async def go():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app)) as client:
                return await client.request(method, url, **kw)
        return asyncio.run(go())

    def get_token(self, **over) -> httpx.Response:
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.client_secret,
                "scope": f"https://{self.org.host}/.default", **over}
        tenant = form.pop("tenant", self.org.tenant_id)
        return self("POST", f"https://{LOGIN_HOST}/{tenant}/oauth2/v2.0/token", data=form)

    def api(self, path: str, **kw) -> httpx.Response:
        if self.token is None:
            self.token = self.get_token().json()["access_token"]
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return self("GET", f"{self.org.base_url}{path}", headers=headers, **kw)


def test_token_endpoint_errors_are_microsofts():
    s = Session(DataverseOrg(Clock()))
    ok = s.get_token()
    assert ok.status_code == 200 and ok.json()["token_type"] == "Bearer" and ok.json()["expires_in"] == 3599
    cases = [({"tenant": "other-tenant"}, 400, "invalid_request", 90002),
             ({"client_id": "nope"}, 400, "unauthorized_client", 700016),
             ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
             ({"scope": f"https://{s.org.host}/user_impersonation"}, 400, "invalid_scope", 1002012),
             ({"scope": "https://other.crm.dynamics.com/.default"}, 400, "invalid_resource", 500011)]
    for over, status, error, code in cases:
        r = s.get_token(**over)
        assert (r.status_code, r.json()["error"], r.json()["error_codes"]) == (status, error, [code]), over
        assert r.json()["error_description"].startswith(f"AADSTS{code}: ")


def test_api_needs_a_fresh_token_for_this_org_and_other_hosts_are_404():
    org = DataverseOrg(Clock())
    s = Session(org)
    r = s("GET", f"{org.base_url}/accounts")
    assert r.status_code == 401 and r.content == b"" and "authorization_uri" in r.headers["WWW-Authenticate"]
    assert s.api("/WhoAmI").json()["OrganizationId"] == org.organization_id
    org.clock.advance(seconds=3600)
    assert s.api("/accounts").status_code == 401
    assert s("GET", "https://other.crm.dynamics.com/api/data/v9.2/accounts").status_code == 404


def test_odata_query_errors_name_the_property():
    org = DataverseOrg(Clock())
    s = Session(org)
    r = s.api("/accounts", params={"$select": "name,nosuch"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "0x80060888"
    assert "Could not find a property named 'nosuch' on type 'Microsoft.Dynamics.CRM.account'" in r.json()["error"]["message"]
    assert s.api("/accounts", params={"$filter": "modifiedon ge notadate"}).status_code == 400
    assert s.api("/accounts", params={"$orderby": "nosuch asc"}).status_code == 400


def test_paging_with_maxpagesize_keeps_its_place_when_rows_change_mid_paging():
    org = DataverseOrg(Clock())
    t0 = org.clock.now() - timedelta(hours=1)
    rows = [org.create("accounts", {"name": f"A{i}"}, at=t0) for i in range(5)]  # tied on modifiedon
    s = Session(org)
    params = {"$select": "name,modifiedon", "$orderby": "modifiedon asc,accountid asc"}
    r = s.api("/accounts", params=params, headers={"Prefer": "odata.maxpagesize=2"})
    assert r.headers["Preference-Applied"] == "odata.maxpagesize=2"
    page1 = r.json()
    assert [v["accountid"] for v in page1["value"]] == sorted(x["accountid"] for x in rows)[:2]
    assert all(set(v) == {"@odata.etag", "name", "modifiedon", "accountid"} for v in page1["value"])
    org.delete("accounts", page1["value"][0]["accountid"])           # a row before the cookie goes away
    nxt = page1["@odata.nextLink"]
    assert nxt.startswith(org.base_url + "/accounts?") and "$skiptoken=%3Ccookie%20pagenumber%3D%222%22" in nxt
    seen = [v["accountid"] for v in page1["value"]]
    while nxt:
        page = s("GET", nxt, headers={"Authorization": f"Bearer {s.token}", "Prefer": "odata.maxpagesize=2"}).json()
        seen += [v["accountid"] for v in page["value"]]
        nxt = page.get("@odata.nextLink")
    assert seen == sorted(x["accountid"] for x in rows)  # nothing skipped, nothing twice
    assert "@odata.nextLink" not in s.api("/accounts", params={"$top": "1"}).json()


def test_service_protection_limit_is_6000_requests_in_300_seconds_on_the_clock():
    org = DataverseOrg(Clock())
    s = Session(org)
    for _ in range(6000):
        org.request_log.append(org.clock.now())  # another integration's calls in this window
    r = s.api("/WhoAmI")
    assert r.status_code == 429 and r.headers["Retry-After"] == "300"
    assert r.json()["error"]["code"] == "0x80072322"
    org.clock.advance(seconds=301)
    assert s.api("/WhoAmI").status_code == 200
