"""The REST engine against HubSpot's documented behaviour (respx): private-app token, OAuth with
its 30-minute expiry refreshed by age, list `after` paging, search with the 10,000-result cap,
archived records, associations, rate-limit headers and the secondly / daily 429s."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from gs_assets.connectors.rest_api.auth import NeedsReauthorization
from gs_assets.connectors.rest_api.client import BudgetExhausted, RestClient
from gs_assets.connectors.rest_api.spec import load_system_spec
from gs_assets.connectors.rest_api.sync import CursorState, FieldInfo, discover_fields, read_stream
from tests.gs_assets.connectors.rest_api.vendor_mocks import HS_TOKEN, HsPortal, hs_headers, iso_hs, mount_hubspot, utc

NOW = utc(2026, 11, 30, 12, 0, 0)
OAUTH = {"client_id": "hs-client-id-1", "client_secret": "hs-client-secret-2", "refresh_token": "hs-refresh-3"}


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Now:
    def __init__(self, t=NOW.timestamp()):
        self.t = t

    def __call__(self) -> float:
        return self.t


def hs_client(sleeps=None, **kw) -> RestClient:
    args = dict(connection="hs", auth_method="private_app", secrets={"access_token": HS_TOKEN},
                sleep=sleeps if sleeps is not None else Sleeps(), now=lambda: NOW.timestamp())
    args.update(kw)
    return RestClient(load_system_spec("hubspot"), **args)


def companies():
    return load_system_spec("hubspot").stream("companies")


def ids(pages):
    return [i for p in pages for i in p.records.column("_source_id").to_pylist()]


def test_private_app_token_is_a_bearer_header_and_usage_headers_are_read():
    portal = HsPortal()
    portal.add(1, NOW - timedelta(days=1))
    with respx.mock(assert_all_called=False) as router:
        mount_hubspot(router, portal)
        with hs_client() as c:
            fields = discover_fields(c, companies())
            pages = list(read_stream(c, companies(), fields=fields, now=NOW))
        assert router.calls[-1].request.headers["Authorization"] == f"Bearer {HS_TOKEN}"
    assert ids(pages) == ["1"]
    row = pages[0].records.to_pylist()[0]
    assert row["name"] == "Company 1" and row["id"] == "1" and row["archived"] == "false"
    assert c.usage.daily_limit == 250000 and c.usage.daily_remaining == 249000 and c.usage.secondly_remaining == 9


def test_list_paging_full_sync_offers_a_state_only_on_its_last_page():
    portal = HsPortal()
    for i in range(1, 251):
        portal.add(i, NOW - timedelta(hours=5, minutes=-i))
    portal.add(999, NOW - timedelta(seconds=10))  # modified after now - visibility lag: not a state
    with respx.mock(assert_all_called=False) as router:
        mount_hubspot(router, portal)
        with hs_client() as c:
            pages = list(read_stream(c, companies(), fields=discover_fields(c, companies()), now=NOW))
        lists = [call.request for call in router.calls if call.request.method == "GET" and "/objects/" in call.request.url.path]
    assert sorted(map(int, ids(pages))) == [*range(1, 251), 999]
    assert [parse_qs(r.url.query.decode()).get("after") for r in lists[:3]] == [None, ["100"], ["200"]]
    main = [p for p in pages if p.records.num_rows]
    assert [p.state for p in main[:-1]] == [None, None]
    assert main[-1].state == CursorState(iso_hs(NOW - timedelta(hours=5, minutes=-250)), ("250",))
    assert any(parse_qs(r.url.query.decode()).get("archived") == ["true"] for r in lists)


@pytest.mark.slow  # 12,000 records through the search paginator
def test_search_past_10000_tied_records_skips_nothing():
    """12,000 modified records, 10,500 of them on one hs_lastmodifieddate: `after` may not pass
    10,000 (HubSpot answers 400), and only one sort rule is allowed."""
    portal = HsPortal()
    base = NOW - timedelta(hours=2)
    tied = base + timedelta(minutes=10)
    for i in range(1, 801):
        portal.add(i, base + timedelta(seconds=i))
    for i in range(801, 11301):
        portal.add(i, tied)
    for i in range(11301, 12001):
        portal.add(i, tied + timedelta(seconds=i - 11300))
    state = CursorState(iso_hs(base - timedelta(minutes=1)), ())
    with respx.mock(assert_all_called=False) as router:
        mount_hubspot(router, portal)
        with hs_client() as c:
            pages = list(read_stream(c, companies(), fields=[FieldInfo("name"), FieldInfo("hs_lastmodifieddate")],
                                     state=state, now=NOW))
    got = ids(pages)
    assert set(map(int, got)) == set(range(1, 12001))
    assert all(len(b["sorts"]) == 1 for b in portal.searches)
    assert all(int(b.get("after") or 0) + b["limit"] <= 10_000 for b in portal.searches)
    assert pages[-1].state == CursorState(iso_hs(tied + timedelta(seconds=700)), ("12000",))
    tie_pages = [p for p in pages if "hs_object_id>" in p.request]
    assert tie_pages and all(p.state.cursor == iso_hs(tied) for p in tie_pages)
    assert len(pages[-1].state.pks) == 1


def test_search_window_is_closed_below_and_bounded_by_now_minus_lag():
    portal = HsPortal()
    portal.add(1, NOW - timedelta(minutes=10))
    state = CursorState(iso_hs(NOW - timedelta(minutes=10)), ("1",))
    with respx.mock(assert_all_called=False) as router:
        mount_hubspot(router, portal)
        with hs_client() as c:
            pages = list(read_stream(c, companies(), fields=[FieldInfo("name")], state=state, now=NOW))
    (f_lo, f_hi) = portal.searches[0]["filterGroups"][0]["filters"]
    assert f_lo == {"propertyName": "hs_lastmodifieddate", "operator": "GTE",
                    "value": str(int((NOW - timedelta(minutes=15)).timestamp() * 1000))}
    assert f_hi["operator"] == "LT" and f_hi["value"] == str(int((NOW - timedelta(minutes=1)).timestamp() * 1000))
    assert ids(pages) == ["1"]  # the boundary record re-read; the upsert absorbs it
    assert pages[0].state == state


def test_contacts_search_on_lastmodifieddate():
    spec = load_system_spec("hubspot")
    assert spec.stream("contacts").spec.incremental.cursor_field == "lastmodifieddate"
    assert spec.stream("deals").spec.incremental.cursor_field == "hs_lastmodifieddate"


def test_oauth_refreshes_before_the_30_minute_expiry_not_on_401():
    now = Now()
    with respx.mock as router:
        tokens = router.post("https://api.hubapi.com/oauth/v1/token").mock(side_effect=[
            httpx.Response(200, json={"token_type": "bearer", "refresh_token": OAUTH["refresh_token"],
                                      "access_token": "CJSP5qf1KhICAQEYs-gDIIGOBii1", "expires_in": 1800}),
            httpx.Response(200, json={"token_type": "bearer", "refresh_token": OAUTH["refresh_token"],
                                      "access_token": "CJSP5qf1KhICAQEYs-gDIIGOBii2", "expires_in": 1800})])
        api = router.get("https://api.hubapi.com/account-info/v3/details").mock(
            return_value=httpx.Response(200, json={"portalId": 62515}, headers=hs_headers()))
        with hs_client(auth_method="oauth", secrets=OAUTH, now=now) as c:
            c.send(c.spec.connection.test_request)
            now.t += 20 * 60
            c.send(c.spec.connection.test_request)
            now.t += 6 * 60  # 26 minutes: inside the 5-minute margin
            c.send(c.spec.connection.test_request)
        auths = [call.request.headers["Authorization"] for call in api.calls]
    assert tokens.call_count == 2
    assert auths == ["Bearer CJSP5qf1KhICAQEYs-gDIIGOBii1"] * 2 + ["Bearer CJSP5qf1KhICAQEYs-gDIIGOBii2"]


def test_expired_authentication_401_refreshes_once():
    with respx.mock as router:
        tokens = router.post("https://api.hubapi.com/oauth/v1/token").mock(return_value=httpx.Response(
            200, json={"token_type": "bearer", "refresh_token": "r", "access_token": "a", "expires_in": 1800}))
        router.get("https://api.hubapi.com/account-info/v3/details").mock(side_effect=[
            httpx.Response(401, json={"status": "error", "message": "The OAuth token used to make this call expired 0 second(s) ago.",
                                      "correlationId": "x", "category": "EXPIRED_AUTHENTICATION"}),
            httpx.Response(200, json={"portalId": 62515})])
        with hs_client(auth_method="oauth", secrets=OAUTH) as c:
            assert c.send(c.spec.connection.test_request).status_code == 200
    assert tokens.call_count == 2


def test_revoked_refresh_token_needs_reauthorization():
    with respx.mock as router:
        tokens = router.post("https://api.hubapi.com/oauth/v1/token").mock(return_value=httpx.Response(
            400, json={"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token",
                       "correlationId": "9c8c2d7e-5e1f-4b0e-a1b0-1c1e0f0a0b0c"}))
        with hs_client(auth_method="oauth", secrets=OAUTH) as c, pytest.raises(NeedsReauthorization) as e:
            c.send(c.spec.connection.test_request)
    assert tokens.call_count == 1 and "'hs'" not in str(e.value) and "connection hs" in str(e.value)
    assert OAUTH["refresh_token"] not in str(e.value)


def test_secondly_429_retries_and_daily_429_stops_cleanly():
    sleeps = Sleeps()
    secondly = {"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT",
                "correlationId": "c1", "policyName": "SECONDLY", "groupName": "publicapi"}
    daily = {"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
             "correlationId": "c2", "policyName": "DAILY", "groupName": "publicapi"}
    with respx.mock as router:
        api = router.get("https://api.hubapi.com/account-info/v3/details").mock(side_effect=[
            httpx.Response(429, json=secondly, headers={**hs_headers(), "Retry-After": "1"}),
            httpx.Response(200, json={"portalId": 1}, headers=hs_headers()),
            httpx.Response(429, json=daily, headers=hs_headers(remaining=0))])
        with hs_client(sleeps) as c:
            c.send(c.spec.connection.test_request)
            with pytest.raises(BudgetExhausted) as e:
                c.send(c.spec.connection.test_request)
    assert sleeps == [1.0] and api.call_count == 3
    assert "daily API limit" in str(e.value) and "resumes on the next run" in str(e.value)


def test_contact_company_associations_are_a_child_stream_of_contacts():
    seen = []

    def batch_read(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        seen.append(inputs)
        results = [{"from": {"id": i["id"]}, "to": [{"toObjectId": 900 + int(i["id"]), "associationTypes": [
            {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"}]}]} for i in inputs if i["id"] != "3"]
        return httpx.Response(207 if len(results) < len(inputs) else 200, json={"status": "COMPLETE", "results": results})

    with respx.mock as router:
        router.post("https://api.hubapi.com/crm/v4/associations/contacts/companies/batch/read").mock(side_effect=batch_read)
        with hs_client() as c:
            child = c.spec.stream("contact_companies")
            pages = list(read_stream(c, child, fields=discover_fields(c, child), parent_ids=["1", "2", "3"], now=NOW))
    assert seen == [[{"id": "1"}, {"id": "2"}, {"id": "3"}]]
    rows = pages[0].records.to_pylist()
    assert [(r["from.id"], r["toObjectId"], r["_source_id"]) for r in rows] == [("1", "901", "1:901"), ("2", "902", "2:902")]


def test_test_connection_reports_hosts_and_usage_without_secrets(caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    texts = []
    with respx.mock as router:
        router.post("https://api.hubapi.com/oauth/v1/token").mock(side_effect=[
            httpx.Response(200, json={"token_type": "bearer", "refresh_token": "hs-rotated-refresh-4",
                                      "access_token": "CJSP5qf1-access-5", "expires_in": 1800}),
            httpx.Response(400, json={"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"})])
        router.get("https://api.hubapi.com/account-info/v3/details").mock(side_effect=[
            httpx.Response(429, json={"status": "error", "message": "You have reached your secondly limit.",
                                      "errorType": "RATE_LIMIT", "policyName": "SECONDLY"}, headers=hs_headers()),
            httpx.Response(200, json={"portalId": 62515}, headers=hs_headers(remaining=1234)),
            httpx.Response(401, json={"status": "error", "message": "The OAuth token used to make this call expired 0 second(s) ago.",
                                      "category": "EXPIRED_AUTHENTICATION"})])
        with hs_client(auth_method="oauth", secrets=OAUTH) as c:
            info = c.test_connection()
            texts += [repr(c), repr(c.auth.__dict__), repr(c.auth.token_store), str(info)]
            with pytest.raises(NeedsReauthorization) as e:
                c.test_connection()
            texts += [str(e.value), repr(e.value)]
    assert info == {"system": "hubspot", "connection": "hs", "auth_method": "oauth", "environment": None,
                    "login_host": None, "api_host": "api.hubapi.com", "usage": "1234 daily API calls remaining of 250000"}
    assert c.auth.token_store.get("hs") == "hs-rotated-refresh-4"
    texts += [r.getMessage() for r in caplog.records]
    for secret in [*OAUTH.values(), "hs-rotated-refresh-4", "CJSP5qf1-access-5"]:
        assert not any(secret in t for t in texts), secret
