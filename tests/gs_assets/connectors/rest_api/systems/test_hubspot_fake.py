"""The fake HubSpot behaves as HubSpot documents: hosts, private-app and OAuth auth (30-minute expiry,
exact error bodies), list paging with opt-in properties, archived records, search with its 10,000
cap, index lag, associations (v3 and v4), owners, properties and drift, rate limits on the clock, and
5xx bursts. Driven in process through httpx.ASGITransport, once on loopback and once as the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from gs_assets.connectors.rest_api.fakes.harness import Clock, free_port, serve_on_loopback
from gs_assets.connectors.rest_api.systems.hubspot.fake import (FaultPlan, HubSpotPortal, PropertyDef, RateLimits,
                                                                 create_app, iso_ms)

ROOT = Path(__file__).resolve().parents[5]
BASE = "https://api.hubapi.com"
UNLIMITED = RateLimits(enforce=False)


def bearer(token: str) -> dict:
    return {"headers": {"Authorization": f"Bearer {token}"}}


def portal_with(n_companies: int = 0, **kw) -> tuple[HubSpotPortal, str]:
    portal = HubSpotPortal(Clock(), **kw)
    token = portal.add_private_app("pat-na1-test")
    for i in range(n_companies):
        portal.create("companies", {"name": f"Co {i}", "domain": f"co{i}.com"})
        portal.clock.advance(seconds=1)
    return portal, token


class Session:
    """One in-process client for a sequence of calls (the app keeps its gate state across them)."""

    def __init__(self, portal: HubSpotPortal):
        self.portal = portal
        self.app = create_app(portal)

    def __call__(self, method: str, path: str, host_base: str = BASE, **kw) -> httpx.Response:
        async def go():
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url=host_base) as client:
                return await client.request(method, path, **kw)
        return asyncio.run(go())


# ---------------------------------------------------------------------------------------- hosts, auth

def test_only_api_hubapi_com_is_served():
    portal, token = portal_with(1)
    s = Session(portal)
    assert s("GET", "/crm/v3/objects/companies", **bearer(token)).status_code == 200
    other = s("GET", "/crm/v3/objects/companies", host_base="https://api.hubspot.com", **bearer(token))
    assert other.status_code == 404
    assert s("GET", "/crm/v3/objects/companies", host_base="https://login.salesforce.com",
             **bearer(token)).status_code == 404


def test_private_app_token_and_bad_or_missing_tokens():
    portal, token = portal_with(1)
    s = Session(portal)
    ok = s("GET", "/crm/v3/objects/companies", **bearer(token))
    assert ok.status_code == 200
    assert ok.headers["X-HubSpot-RateLimit-Daily"] == "250000"
    assert ok.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "249999"
    for kw in ({}, bearer("pat-na1-wrong"), {"headers": {"Authorization": "Basic abc"}}):
        r = s("GET", "/crm/v3/objects/companies", **kw)
        assert r.status_code == 401
        body = r.json()
        assert body["status"] == "error" and body["category"] == "INVALID_AUTHENTICATION"
        assert body["correlationId"] and "Authentication credentials not found" in body["message"]


def test_oauth_refresh_token_grant_30_minute_expiry_and_exact_expired_body():
    portal = HubSpotPortal(Clock())
    client_id, secret, refresh = portal.add_oauth_app()
    portal.create("contacts", {"email": "a@x.com"})
    s = Session(portal)
    tok = s("POST", "/oauth/v1/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                             "client_secret": secret, "refresh_token": refresh})
    assert tok.status_code == 200
    body = tok.json()
    assert body["expires_in"] == 1800 and body["token_type"] == "bearer" and body["refresh_token"] == refresh
    access = body["access_token"]
    ok = s("GET", "/crm/v3/objects/contacts", **bearer(access))
    assert ok.status_code == 200
    assert "X-HubSpot-RateLimit-Daily" not in ok.headers        # OAuth calls carry no daily headers
    assert ok.headers["X-HubSpot-RateLimit-Max"] == "100"
    portal.clock.advance(seconds=1799)
    assert s("GET", "/crm/v3/objects/contacts", **bearer(access)).status_code == 200
    portal.clock.advance(seconds=1)
    expired = s("GET", "/crm/v3/objects/contacts", **bearer(access))
    assert expired.status_code == 401
    e = expired.json()
    assert e["status"] == "error" and e["category"] == "EXPIRED_AUTHENTICATION" and e["correlationId"]
    assert e["message"] == "The OAuth token used to make this call expired 0 second(s) ago."
    portal.clock.advance(seconds=7)
    assert s("GET", "/crm/v3/objects/contacts", **bearer(access)).json()["message"] == \
        "The OAuth token used to make this call expired 7 second(s) ago."
    again = s("POST", "/oauth/v1/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                               "client_secret": secret, "refresh_token": refresh}).json()
    assert s("GET", "/crm/v3/objects/contacts", **bearer(again["access_token"])).status_code == 200
    assert portal.token_requests == 2 and portal.calls == 5     # the token endpoint is not an API call


def test_oauth_errors_revoked_refresh_token_bad_secret_and_single_use_code():
    portal = HubSpotPortal(Clock())
    client_id, secret, refresh = portal.add_oauth_app()
    s = Session(portal)

    def grant(**form):
        return s("POST", "/oauth/v1/token", data={"client_id": client_id, "client_secret": secret, **form})

    portal.revoke_refresh_token(refresh)
    r = grant(grant_type="refresh_token", refresh_token=refresh)
    assert r.status_code == 400
    assert r.json()["status"] == "BAD_REFRESH_TOKEN" and r.json()["message"] == "missing or unknown refresh token"
    assert r.json()["correlationId"]
    bad = s("POST", "/oauth/v1/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                             "client_secret": "nope", "refresh_token": refresh})
    assert bad.status_code == 400 and bad.json()["status"] == "BAD_CLIENT_SECRET"
    code = portal.add_auth_code(client_id)
    first = grant(grant_type="authorization_code", code=code, redirect_uri="http://localhost/cb")
    assert first.status_code == 200 and first.json()["expires_in"] == 1800
    new_refresh = first.json()["refresh_token"]
    assert grant(grant_type="refresh_token", refresh_token=new_refresh).status_code == 200
    reuse = grant(grant_type="authorization_code", code=code, redirect_uri="http://localhost/cb")
    assert reuse.status_code == 400 and reuse.json()["status"] == "BAD_AUTH_CODE"


@pytest.mark.parametrize("how", ["after_calls", "at_time"])
def test_fault_plan_expires_oauth_tokens_mid_sync(how):
    portal = HubSpotPortal(Clock())
    client_id, secret, refresh = portal.add_oauth_app()
    for i in range(5):
        portal.create("contacts", {"email": f"c{i}@x.com"})
    if how == "after_calls":
        portal.faults.oauth_expire_after_calls = 2
    else:
        portal.faults.oauth_expire_at = portal.clock.now() + timedelta(minutes=5)
    s = Session(portal)
    form = {"grant_type": "refresh_token", "client_id": client_id, "client_secret": secret, "refresh_token": refresh}
    access = s("POST", "/oauth/v1/token", data=form).json()["access_token"]
    page = s("GET", "/crm/v3/objects/contacts", params={"limit": 2}, **bearer(access))
    page2 = s("GET", "/crm/v3/objects/contacts", params={"limit": 2, "after": page.json()["paging"]["next"]["after"]},
              **bearer(access))
    assert page2.status_code == 200
    if how == "at_time":
        portal.clock.advance(minutes=5)
    mid = s("GET", "/crm/v3/objects/contacts", params={"limit": 2}, **bearer(access))
    assert mid.status_code == 401 and mid.json()["category"] == "EXPIRED_AUTHENTICATION"
    fresh = s("POST", "/oauth/v1/token", data=form).json()["access_token"]
    assert s("GET", "/crm/v3/objects/contacts", params={"limit": 2}, **bearer(fresh)).status_code == 200


# ---------------------------------------------------------------------------------------- list endpoints

def test_list_pages_with_after_and_limit_cap():
    portal, token = portal_with(250)
    s = Session(portal)
    seen, after, pages = [], None, 0
    while True:
        params = {"limit": 100, **({"after": after} if after else {})}
        body = s("GET", "/crm/v3/objects/companies", params=params, **bearer(token)).json()
        seen += [r["id"] for r in body["results"]]
        pages += 1
        nxt = body.get("paging", {}).get("next")
        if not nxt:
            break
        assert nxt["link"].startswith("https://api.hubapi.com/crm/v3/objects/companies?") and f"after={nxt['after']}" in nxt["link"]
        after = nxt["after"]
    assert pages == 3 and len(seen) == 250 and len(set(seen)) == 250
    too_big = s("GET", "/crm/v3/objects/companies", params={"limit": 101}, **bearer(token))
    assert too_big.status_code == 400 and too_big.json()["category"] == "VALIDATION_ERROR"


def test_properties_are_opt_in_with_the_right_last_modified_property():
    portal, token = portal_with()
    portal.create("contacts", {"email": "a@x.com", "firstname": "A", "city": "Leeds"})
    portal.create("companies", {"name": "Acme", "domain": "acme.com", "industry": "Software"})
    s = Session(portal)
    contact = s("GET", "/crm/v3/objects/contacts", params={"properties": "email,phone,nonexistent"},
                **bearer(token)).json()["results"][0]
    assert set(contact["properties"]) == {"email", "phone", "hs_object_id", "createdate", "lastmodifieddate"}
    assert contact["properties"]["phone"] is None and contact["properties"]["email"] == "a@x.com"
    assert contact["properties"]["hs_object_id"] == contact["id"]
    assert contact["properties"]["lastmodifieddate"] == iso_ms(int(portal.clock.now().timestamp() * 1000))
    assert contact["archived"] is False and contact["createdAt"].endswith("Z")
    company = s("GET", "/crm/v3/objects/companies", params=[("properties", "name"), ("properties", "industry")],
                **bearer(token)).json()["results"][0]
    assert set(company["properties"]) == {"name", "industry", "hs_object_id", "createdate", "hs_lastmodifieddate"}
    default = s("GET", "/crm/v3/objects/companies", **bearer(token)).json()["results"][0]
    assert set(default["properties"]) == {"createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"}


def test_archived_records_leave_list_and_search_and_show_with_archived_true():
    portal, token = portal_with(3)
    victim = sorted(portal.records["companies"])[1]
    portal.clock.advance(minutes=1)
    portal.archive("companies", victim)
    s = Session(portal)
    live = s("GET", "/crm/v3/objects/companies", **bearer(token)).json()["results"]
    assert victim not in [r["id"] for r in live] and len(live) == 2
    gone = s("GET", "/crm/v3/objects/companies", params={"archived": "true"}, **bearer(token)).json()["results"]
    assert [r["id"] for r in gone] == [victim]
    assert gone[0]["archived"] is True and gone[0]["archivedAt"] == iso_ms(int(portal.clock.now().timestamp() * 1000))
    found = s("POST", "/crm/v3/objects/companies/search", json={"limit": 10}, **bearer(token)).json()
    assert found["total"] == 2 and victim not in [r["id"] for r in found["results"]]


def test_owners_paging_and_archived():
    portal, token = portal_with()
    for i in range(7):
        portal.add_owner(f"u{i}@gsdp-demo.io", f"U{i}", "Smith", archived=(i == 6))
    s = Session(portal)
    first = s("GET", "/crm/v3/owners/", params={"limit": 4}, **bearer(token)).json()
    assert len(first["results"]) == 4 and first["paging"]["next"]["after"]
    rest = s("GET", "/crm/v3/owners/", params={"limit": 4, "after": first["paging"]["next"]["after"]},
             **bearer(token)).json()
    emails = [o["email"] for o in first["results"] + rest["results"]]
    assert emails == [f"u{i}@gsdp-demo.io" for i in range(6)] and "paging" not in rest
    o = first["results"][0]
    assert set(o) >= {"id", "email", "firstName", "lastName", "userId", "createdAt", "updatedAt", "archived"}
    archived = s("GET", "/crm/v3/owners/", params={"archived": "true"}, **bearer(token)).json()["results"]
    assert [a["email"] for a in archived] == ["u6@gsdp-demo.io"] and archived[0]["archived"] is True


# ---------------------------------------------------------------------------------------- associations

def test_contact_company_associations_v3_and_v4():
    portal, token = portal_with(2)
    co1, co2 = sorted(portal.records["companies"])
    c1 = portal.create("contacts", {"email": "a@x.com"}).id
    c2 = portal.create("contacts", {"email": "b@x.com"}).id
    lonely = portal.create("contacts", {"email": "c@x.com"}).id
    portal.associate(c1, co1, primary=True)
    portal.associate(c1, co2, primary=False)
    portal.associate(c2, co2, primary=True)
    s = Session(portal)
    listed = s("GET", "/crm/v3/objects/contacts", params={"associations": "companies"}, **bearer(token)).json()["results"]
    by_id = {r["id"]: r for r in listed}
    assert by_id[c1]["associations"]["companies"]["results"] == [
        {"id": co1, "type": "contact_to_company"}, {"id": co1, "type": "contact_to_company_unlabeled"},
        {"id": co2, "type": "contact_to_company_unlabeled"}]
    assert "associations" not in by_id[lonely]
    one = s("GET", f"/crm/v4/objects/contacts/{c1}/associations/companies", **bearer(token)).json()
    assert [(r["toObjectId"], [t["typeId"] for t in r["associationTypes"]]) for r in one["results"]] == \
        [(int(co1), [1, 279]), (int(co2), [279])]
    batch = s("POST", "/crm/v4/associations/contacts/companies/batch/read",
              json={"inputs": [{"id": c1}, {"id": c2}]}, **bearer(token))
    assert batch.status_code == 200 and batch.json()["status"] == "COMPLETE"
    assert {r["from"]["id"]: [t["toObjectId"] for t in r["to"]] for r in batch.json()["results"]} == \
        {c1: [int(co1), int(co2)], c2: [int(co2)]}
    partial = s("POST", "/crm/v4/associations/contacts/companies/batch/read",
                json={"inputs": [{"id": c2}, {"id": lonely}]}, **bearer(token))
    assert partial.status_code == 207
    assert partial.json()["numErrors"] == 1 and partial.json()["errors"][0]["context"] == {"fromObjectId": [lonely]}
    back = s("POST", "/crm/v4/associations/companies/contacts/batch/read", json={"inputs": [{"id": co2}]},
             **bearer(token)).json()
    assert [t["toObjectId"] for t in back["results"][0]["to"]] == [int(c1), int(c2)]


# ---------------------------------------------------------------------------------------- properties, drift

def test_properties_endpoint_and_drift_between_calls():
    portal, token = portal_with(2)
    s = Session(portal)
    props = {p["name"]: p for p in s("GET", "/crm/v3/properties/companies", **bearer(token)).json()["results"]}
    assert props["hs_lastmodifieddate"]["type"] == "datetime" and props["name"]["label"] == "Company name"
    assert {"name", "label", "type", "fieldType"} <= set(props["name"])
    contact_props = {p["name"] for p in s("GET", "/crm/v3/properties/contacts", **bearer(token)).json()["results"]}
    assert "lastmodifieddate" in contact_props and "hs_lastmodifieddate" not in contact_props
    # one property added and one removed after the next call
    portal.schedule_property_change(portal.calls + 1, "companies",
                                    add=PropertyDef("health_score", "Health score", "number", "number"),
                                    remove="domain", value=7)
    before = {p["name"] for p in s("GET", "/crm/v3/properties/companies", **bearer(token)).json()["results"]}
    assert "domain" in before and "health_score" not in before
    after = {p["name"] for p in s("GET", "/crm/v3/properties/companies", **bearer(token)).json()["results"]}
    assert "domain" not in after and "health_score" in after
    rec = s("GET", "/crm/v3/objects/companies", params={"properties": "domain,health_score"},
            **bearer(token)).json()["results"][0]
    assert rec["properties"]["health_score"] == "7" and "domain" not in rec["properties"]


# ---------------------------------------------------------------------------------------- search

def _search(s, token, otype, body):
    return s("POST", f"/crm/v3/objects/{otype}/search", json=body, **bearer(token))


def test_search_filters_and_sorts_on_the_last_modified_property():
    portal, token = portal_with(5, rate_limits=UNLIMITED)
    ids = sorted(portal.records["companies"], key=int)
    t0 = portal.records["companies"][ids[1]].updated_ms
    t3 = portal.records["companies"][ids[3]].updated_ms
    portal.create("contacts", {"email": "x@y.com"})
    s = Session(portal)
    body = {"filterGroups": [{"filters": [
        {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(t0)},
        {"propertyName": "hs_lastmodifieddate", "operator": "LT", "value": iso_ms(t3)}]}],
        "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["name"], "limit": 200}
    r = _search(s, token, "companies", body)
    assert r.status_code == 200
    out = r.json()
    assert out["total"] == 2 and [x["id"] for x in out["results"]] == ids[1:3]
    assert set(out["results"][0]["properties"]) == {"name", "hs_object_id", "createdate", "hs_lastmodifieddate"}
    assert "X-HubSpot-RateLimit-Max" not in r.headers           # search responses carry no rate-limit headers
    desc = _search(s, token, "companies", {"sorts": ["-hs_lastmodifieddate"], "limit": 2}).json()
    assert [x["id"] for x in desc["results"]] == [ids[4], ids[3]] and desc["paging"]["next"]["after"] == "2"
    contacts = _search(s, token, "contacts", {"filterGroups": [{"filters": [
        {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(t0)}]}]}).json()
    assert contacts["total"] == 1
    assert _search(s, token, "companies", {"limit": 201}).status_code == 400
    assert _search(s, token, "companies", {"sorts": ["name", "domain"]}).status_code == 400


@pytest.mark.slow  # 10,001 records through the search API
def test_search_past_10000_results_returns_400_even_with_10001_records_on_one_timestamp():
    portal, token = portal_with(rate_limits=UNLIMITED)
    portal.create_many("companies", ({"name": f"Bulk {i}"} for i in range(10_001)))
    assert len({r.updated_ms for r in portal.records["companies"].values()}) == 1
    ts = next(iter(portal.records["companies"].values())).updated_ms
    s = Session(portal)
    window = {"filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(ts)}]}],
              "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}], "limit": 200,
              "properties": ["name"]}
    seen, after = set(), None
    for _ in range(60):                       # 51 pages at most; a fake without the cap would loop
        r = _search(s, token, "companies", {**window, **({"after": after} if after else {})})
        if r.status_code != 200:
            break
        body = r.json()
        assert body["total"] == 10_001
        seen |= {x["id"] for x in body["results"]}
        after = body.get("paging", {}).get("next", {}).get("after")
        assert after is not None, "the fake must offer the page past the cap, as HubSpot does"
    else:
        pytest.fail("search paged on past 10,000 results without the 400")
    assert after == "10000" and len(seen) == 10_000
    assert r.status_code == 400
    err = r.json()
    assert err["status"] == "error" and err["category"] == "VALIDATION_ERROR" and err["correlationId"]
    # ties on one timestamp come back in no id order (HubSpot promises none): the one left out is not the last id
    missing = set(portal.records["companies"]) - seen
    assert len(missing) == 1 and missing != {max(portal.records["companies"], key=int)}
    # the documented way out: the same timestamp, keyed by hs_object_id, re-issued instead of paging
    by_id = {"filterGroups": [{"filters": [
        {"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": str(ts)},
        {"propertyName": "hs_object_id", "operator": "GT", "value": "0"}]}],
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}], "limit": 200}
    got, last = [], "0"
    for _ in range(60):
        by_id["filterGroups"][0]["filters"][1]["value"] = last
        page = _search(s, token, "companies", by_id).json()["results"]
        if not page:
            break
        got += [x["id"] for x in page]
        last = page[-1]["id"]
    assert len(got) == 10_001 == len(set(got))


def test_writes_become_searchable_only_after_the_index_lag():
    portal, token = portal_with(2, rate_limits=UNLIMITED, faults=FaultPlan(index_lag=timedelta(seconds=30)))
    portal.clock.advance(seconds=30)
    cid = sorted(portal.records["companies"], key=int)[0]
    old_ts = portal.records["companies"][cid].updated_ms
    portal.clock.advance(seconds=5)
    portal.update("companies", cid, {"name": "Renamed"})
    new = portal.create("companies", {"name": "Brand new"})
    s = Session(portal)
    listed = {r["id"]: r for r in s("GET", "/crm/v3/objects/companies", **bearer(token)).json()["results"]}
    assert listed[cid]["properties"]["name"] == "Renamed" and new.id in listed     # reads are immediate
    stale = {r["id"]: r for r in _search(s, token, "companies", {"limit": 10}).json()["results"]}
    assert new.id not in stale and stale[cid]["properties"]["name"] == "Co 0"
    assert stale[cid]["properties"]["hs_lastmodifieddate"] == iso_ms(old_ts)
    portal.clock.advance(seconds=30)
    fresh = {r["id"]: r for r in _search(s, token, "companies", {"limit": 10}).json()["results"]}
    assert new.id in fresh and fresh[cid]["properties"]["name"] == "Renamed"


# ---------------------------------------------------------------------------------------- rate limits, 5xx

def test_burst_limit_429_with_retry_after_follows_the_clock():
    portal, token = portal_with(1, rate_limits=RateLimits(burst_limit=3, burst_window_s=10))
    s = Session(portal)
    remaining = [s("GET", "/crm/v3/objects/companies", **bearer(token)).headers["X-HubSpot-RateLimit-Remaining"]
                 for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    r = s("GET", "/crm/v3/objects/companies", **bearer(token))
    assert r.status_code == 429
    body = r.json()
    assert {k: body[k] for k in ("status", "message", "errorType", "policyName")} == {
        "status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT",
        "policyName": "SECONDLY"}
    assert body["correlationId"] and r.headers["Retry-After"] == "10"
    portal.clock.advance(seconds=9)
    assert s("GET", "/crm/v3/objects/companies", **bearer(token)).status_code == 429
    portal.clock.advance(seconds=1)
    assert s("GET", "/crm/v3/objects/companies", **bearer(token)).status_code == 200


def test_search_has_its_own_lower_limit():
    portal, token = portal_with(1, rate_limits=RateLimits(search_per_second=5))
    s = Session(portal)
    assert [_search(s, token, "companies", {}).status_code for _ in range(6)] == [200] * 5 + [429]
    assert s("GET", "/crm/v3/objects/companies", **bearer(token)).status_code == 200   # other endpoints still fine
    portal.clock.advance(seconds=1)
    assert _search(s, token, "companies", {}).status_code == 200


def test_daily_limit_429_and_fault_plan_rate_limit_after_n_calls():
    portal, token = portal_with(1, rate_limits=RateLimits(daily_limit=2))
    s = Session(portal)
    assert [s("GET", "/crm/v3/objects/companies", **bearer(token)).status_code for _ in range(3)] == [200, 200, 429]
    r = s("GET", "/crm/v3/objects/companies", **bearer(token))
    assert r.json()["policyName"] == "DAILY" and r.json()["message"] == "You have reached your daily limit."
    assert r.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    portal.clock.advance(days=1)
    assert s("GET", "/crm/v3/objects/companies", **bearer(token)).status_code == 200

    portal, token = portal_with(1, faults=FaultPlan(rate_limit_after_calls=2, rate_limit_policy="SECONDLY"))
    s = Session(portal)
    assert [s("GET", "/crm/v3/objects/companies", **bearer(token)).status_code for _ in range(3)] == [200, 200, 429]
    portal.clock.advance(seconds=10)
    assert s("GET", "/crm/v3/objects/companies", **bearer(token)).status_code == 200


def test_5xx_burst_then_recovery():
    portal, token = portal_with(1)
    portal.fail_next(2, status=503, after_calls=1)
    portal.fail_next(1, status=502, after_calls=3)
    s = Session(portal)
    codes = [s("GET", "/crm/v3/objects/companies", **bearer(token)) for _ in range(6)]
    assert [c.status_code for c in codes] == [200, 503, 503, 502, 200, 200]
    assert codes[1].json()["status"] == "error" and "text/html" in codes[3].headers["content-type"]


# ---------------------------------------------------------------------------------------- loopback, CLI

def test_on_loopback_with_the_vendor_host_name():
    portal = HubSpotPortal(Clock())
    counts = portal.seed_demo(companies=10, contacts_per_company=2, deals=3)
    client_id, secret, refresh = portal.add_oauth_app()
    with serve_on_loopback(create_app(portal)) as server:
        with httpx.Client(base_url=server.url, headers={"Host": "api.hubapi.com"}, timeout=30) as http:
            tok = http.post("/oauth/v1/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                     "client_secret": secret, "refresh_token": refresh}).json()
            auth = {"Authorization": f"Bearer {tok['access_token']}"}
            companies = http.get("/crm/v3/objects/companies", params={"limit": 100, "properties": "name,gsdp_account_id"},
                                 headers=auth).json()["results"]
            owners = http.get("/crm/v3/owners/", headers=auth).json()["results"]
            other = httpx.get(f"{server.url}/crm/v3/owners/", headers={**auth, "Host": "127.0.0.1"}, timeout=30)
    assert counts == {"owners": 50, "companies": 10, "contacts": 20, "deals": 3}
    assert len(companies) == 9             # the last seeded company is archived
    assert companies[0]["properties"]["name"] == "Acme Inc 000" and companies[0]["properties"]["gsdp_account_id"] == "A00000"
    assert owners[0]["email"] == "ava.smith0@gsdp-demo.io" and len(owners) == 49
    assert other.status_code == 404


@pytest.mark.slow
def test_cli_serves_the_seeded_demo_by_hand():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gs_assets.connectors.rest_api.systems.hubspot.fake",
                             "--port", str(port), "--seed", "demo", "--token", "pat-na1-by-hand"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline, r = time.monotonic() + 120, None
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/crm/v3/objects/contacts", params={"limit": 3},
                              headers={"Host": "api.hubapi.com", "Authorization": "Bearer pat-na1-by-hand"}, timeout=10)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert r is not None, "the fake did not start within 120 s"
        assert r.status_code == 200 and len(r.json()["results"]) == 3
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out = proc.stdout.read()
    assert "fake HubSpot on" in out and "pat-na1-by-hand" in out
