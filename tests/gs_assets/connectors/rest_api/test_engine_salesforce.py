"""The REST engine against Salesforce's documented behaviour (respx): auth methods and hosts,
refresh on INVALID_SESSION_ID once, revoked refresh token, retries, budget, the cursor rule."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from urllib.parse import parse_qs

from gs_assets.connectors.rest_api.auth import ConnectionAuthError, InMemoryTokenStore, NeedsReauthorization
from gs_assets.connectors.rest_api.client import ApiError, BudgetExhausted, RestClient
from gs_assets.connectors.rest_api.spec import load_system_spec
from gs_assets.connectors.rest_api.sync import CursorState, FieldInfo, Window, discover_fields, read_stream
from tests.gs_assets.connectors.rest_api.vendor_mocks import (
    API, SF_ACCESS, SF_INSTANCE, SF_LOGIN, SF_SECRETS, SfOrg, mount_salesforce, sf_error, sf_token_body, utc)

NOW = utc(2026, 11, 30, 12, 0, 0)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def sf_client(sleeps=None, **kw) -> RestClient:
    args = dict(connection="sf_prod", auth_method="refresh_token", secrets=SF_SECRETS,
                environment="production", sleep=sleeps if sleeps is not None else Sleeps(),
                now=lambda: NOW.timestamp())
    args.update(kw)
    return RestClient(load_system_spec("salesforce"), **args)


def account():
    return load_system_spec("salesforce").stream("account")


def ids(pages):
    return [i for p in pages for i in p.records.column("_source_id").to_pylist()]


# ------------------------------------------------------------------------------------------ hosts & auth

@pytest.mark.parametrize("env,domain,host", [
    ("production", None, "login.salesforce.com"),
    ("sandbox", None, "test.salesforce.com"),
    ("production", "acme", "acme.my.salesforce.com"),
])
def test_refresh_token_goes_to_the_environments_login_host_and_api_calls_to_instance_url(env, domain, host):
    org = SfOrg()
    org.add("001A", NOW - timedelta(hours=2))
    with respx.mock(assert_all_called=False) as router:
        mount_salesforce(router, org, login=f"https://{host}", instance="https://acme--dev.sandbox.my.salesforce.com")
        with sf_client(environment=env, domain=domain) as c:
            fields = discover_fields(c, account())
            pages = list(read_stream(c, account(), fields=fields, now=NOW))
        token_call = router.calls[0].request
        assert token_call.url.host == host
        form = parse_qs(token_call.content.decode())
        assert form["grant_type"] == ["refresh_token"]
        assert form["refresh_token"] == [SF_SECRETS["refresh_token"]]
        api = router.calls[-1].request
        assert api.url.host == "acme--dev.sandbox.my.salesforce.com"
        assert api.headers["Authorization"] == f"Bearer {SF_ACCESS}"
    assert [f.name for f in fields] == ["Id", "Name", "SystemModstamp", "IsDeleted"]  # address excluded
    assert ids(pages) == ["001A"]
    assert c.usage.daily_limit == 5000 and c.usage.daily_used is not None


def test_client_credentials_posts_the_documented_grant():
    with respx.mock as router:
        route = router.post("https://acme.my.salesforce.com/services/oauth2/token").mock(
            return_value=httpx.Response(200, json=sf_token_body()))
        router.get(f"{SF_INSTANCE}{API}/limits").mock(return_value=httpx.Response(200, json={}))
        with sf_client(auth_method="client_credentials", domain="acme",
                       secrets={"client_id": "cid", "client_secret": "csecret"}) as c:
            c.send(c.spec.connection.test_request)
        form = parse_qs(route.calls[0].request.content.decode())
        assert form == {"grant_type": ["client_credentials"], "client_id": ["cid"], "client_secret": ["csecret"]}


def test_jwt_bearer_sends_an_rs256_assertion_the_mock_verifies():
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = RSAKey.import_key(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    seen = {}

    def token(request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        tok = jwt.decode(form["assertion"][0], public, algorithms=["RS256"])  # raises if the signature is wrong
        seen.update(header=tok.header, claims=tok.claims, form=form)
        return httpx.Response(200, json=sf_token_body())

    with respx.mock as router:
        router.post("https://test.salesforce.com/services/oauth2/token").mock(side_effect=token)
        router.get(f"{SF_INSTANCE}{API}/limits").mock(return_value=httpx.Response(200, json={}))
        with sf_client(auth_method="jwt_bearer", environment="sandbox",
                       secrets={"client_id": "3MVG9-consumer", "username": "int@acme.com", "private_key": pem}) as c:
            c.send(c.spec.connection.test_request)
    assert seen["header"]["alg"] == "RS256"
    claims = seen["claims"]
    assert (claims["iss"], claims["sub"], claims["aud"]) == ("3MVG9-consumer", "int@acme.com", "https://test.salesforce.com")
    assert claims["exp"] - claims["iat"] == 180
    assert "client_secret" not in seen["form"] and "client_id" not in seen["form"]


def test_invalid_session_id_refreshes_once_and_retries():
    org = SfOrg()
    org.add("001A", NOW - timedelta(hours=2))
    with respx.mock(assert_all_called=False) as router:
        mount_salesforce(router, org)
        tokens = router.routes[0]
        expired = router.get(f"{SF_INSTANCE}{API}/limits").mock(side_effect=[
            httpx.Response(401, json=sf_error("INVALID_SESSION_ID", "Session expired or invalid")),
            httpx.Response(200, json={"DailyApiRequests": {"Max": 5000, "Remaining": 4900}})])
        with sf_client() as c:
            resp = c.send(c.spec.connection.test_request)
        assert resp.status_code == 200
        assert tokens.call_count == 2 and expired.call_count == 2


def test_invalid_session_id_after_a_fresh_refresh_is_a_connection_error_not_a_loop():
    with respx.mock as router:
        tokens = router.post(f"{SF_LOGIN}/services/oauth2/token").mock(return_value=httpx.Response(200, json=sf_token_body()))
        api = router.get(f"{SF_INSTANCE}{API}/limits").mock(
            return_value=httpx.Response(401, json=sf_error("INVALID_SESSION_ID", "Session expired or invalid")))
        with sf_client() as c, pytest.raises(ConnectionAuthError) as e:
            c.send(c.spec.connection.test_request)
    assert tokens.call_count == 2 and api.call_count == 2
    assert "sf_prod" in str(e.value) and "refresh_token" in str(e.value)


def test_revoked_refresh_token_needs_reauthorization_without_retry_storm():
    with respx.mock as router:
        tokens = router.post(f"{SF_LOGIN}/services/oauth2/token").mock(return_value=httpx.Response(
            400, json={"error": "invalid_grant", "error_description": "expired access/refresh token"}))
        with sf_client() as c, pytest.raises(NeedsReauthorization) as e:
            c.send(c.spec.connection.test_request)
    assert tokens.call_count == 1
    assert e.value.connection == "sf_prod"
    assert "Authorize the connection again" in str(e.value)


def test_wrong_client_credentials_raise_one_paragraph_naming_connection_and_method():
    with respx.mock as router:
        router.post(f"{SF_LOGIN}/services/oauth2/token").mock(return_value=httpx.Response(
            400, json={"error": "invalid_client_id", "error_description": "client identifier invalid"}))
        with sf_client() as c, pytest.raises(ConnectionAuthError) as e:
            c.send(c.spec.connection.test_request)
    msg = str(e.value)
    assert not isinstance(e.value, NeedsReauthorization)
    assert "sf_prod" in msg and "refresh_token" in msg and "consumer key and secret" in msg and "\n" not in msg


def test_rotated_refresh_token_goes_to_the_token_store():
    store = InMemoryTokenStore()
    with respx.mock as router:
        route = router.post(f"{SF_LOGIN}/services/oauth2/token").mock(return_value=httpx.Response(
            200, json={**sf_token_body(), "refresh_token": "5Aep-rotated"}))
        router.get(f"{SF_INSTANCE}{API}/limits").mock(side_effect=[
            httpx.Response(401, json=sf_error("INVALID_SESSION_ID", "Session expired or invalid")),
            httpx.Response(200, json={})])
        with sf_client(token_store=store) as c:
            c.send(c.spec.connection.test_request)
    assert store.get("sf_prod") == "5Aep-rotated"
    assert parse_qs(route.calls[1].request.content.decode())["refresh_token"] == ["5Aep-rotated"]
    assert "5Aep-rotated" not in repr(store)


# ------------------------------------------------------------------------------------------ retries & limits

def test_503_burst_then_success_backs_off_within_bounds():
    sleeps = Sleeps()
    with respx.mock as router:
        router.post(f"{SF_LOGIN}/services/oauth2/token").mock(return_value=httpx.Response(200, json=sf_token_body()))
        api = router.get(f"{SF_INSTANCE}{API}/limits").mock(side_effect=[
            httpx.Response(503, json=sf_error("SERVER_UNAVAILABLE", "Server unavailable")),
            httpx.Response(502, text="<html>Bad Gateway</html>"),
            httpx.Response(500, json=sf_error("UNKNOWN_EXCEPTION", "An unexpected error occurred")),
            httpx.Response(200, json={})])
        with sf_client(sleeps) as c:
            assert c.send(c.spec.connection.test_request).status_code == 200
    assert api.call_count == 4
    assert len(sleeps) == 3 and all(0 < s <= 60 for s in sleeps)


def test_5xx_forever_gives_up_after_bounded_attempts():
    sleeps = Sleeps()
    with respx.mock as router:
        router.post(f"{SF_LOGIN}/services/oauth2/token").mock(return_value=httpx.Response(200, json=sf_token_body()))
        api = router.get(f"{SF_INSTANCE}{API}/limits").mock(return_value=httpx.Response(502, text="Bad Gateway"))
        with sf_client(sleeps) as c, pytest.raises(ApiError) as e:
            c.send(c.spec.connection.test_request)
    assert api.call_count == 5 and len(sleeps) == 4
    assert "sf_prod" in str(e.value) and "resumes" in str(e.value)


def test_429_honours_retry_after():
    sleeps = Sleeps()
    with respx.mock as router:
        router.post(f"{SF_LOGIN}/services/oauth2/token").mock(return_value=httpx.Response(200, json=sf_token_body()))
        router.get(f"{SF_INSTANCE}{API}/limits").mock(side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}, json=sf_error("REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")),
            httpx.Response(200, json={})])
        with sf_client(sleeps) as c:
            c.send(c.spec.connection.test_request)
    assert sleeps == [7.0]


def test_request_limit_exceeded_stops_cleanly_after_the_last_full_page():
    org = SfOrg(page_size=2)
    for i in range(6):
        org.add(f"001{i}", NOW - timedelta(hours=3, minutes=-i))
    got = []
    with respx.mock(assert_all_called=False) as router:
        mount_salesforce(router, org)
        more = router.routes[-1]
        orig = org.more
        calls = {"n": 0}

        def limited(request):
            calls["n"] += 1
            if calls["n"] == 2:
                return httpx.Response(403, json=sf_error(
                    "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."), headers=org.headers())
            return orig(request)
        more.mock(side_effect=limited)
        with sf_client() as c, pytest.raises(BudgetExhausted) as e:
            for p in read_stream(c, account(), fields=discover_fields(c, account()), now=NOW):
                got.append(p)
    assert ids(got) == ["0010", "0011", "0012", "0013"]
    assert got[-1].state == CursorState(org.records[3]["SystemModstamp"], ("0013",))
    assert "sf_prod" in str(e.value) and "resumes on the next run" in str(e.value)


def test_daily_budget_reserve_stops_before_the_next_request():
    org = SfOrg(page_size=2, used=4989, limit=5000)
    for i in range(8):
        org.add(f"001{i}", NOW - timedelta(hours=3, minutes=-i))
    got = []
    with respx.mock(assert_all_called=False) as router:
        mount_salesforce(router, org)
        with sf_client(daily_budget_reserve=7) as c, pytest.raises(BudgetExhausted):
            for p in read_stream(c, account(), fields=discover_fields(c, account()), now=NOW):
                got.append(p)
    # describe 4990, the COUNT() estimate (bulk or not) 4991, pages 4992 and 4993 (remaining 7 = the
    # reserve): two full pages, then a clean stop before the third request
    assert ids(got) == ["0010", "0011", "0012", "0013"]
    assert c.usage.daily_remaining == 7


# ------------------------------------------------------------------------------------------ cursor rule

def test_ties_across_a_page_boundary_and_a_late_visible_write_inside_the_lookback():
    """Four records share one SystemModstamp across a page boundary; after the first sync a write
    becomes visible with a SystemModstamp older than the stored cursor (inside the lookback). Every
    record lands; the stored cursor is a value the source gave, with the keys seen at it."""
    org = SfOrg(page_size=3)
    tied = NOW - timedelta(minutes=30)
    org.add("001A", tied - timedelta(minutes=5))
    for rid in ("001B", "001C", "001D", "001E"):
        org.add(rid, tied)
    late_stamp = tied - timedelta(seconds=40)
    landed: dict[str, int] = {}
    with respx.mock(assert_all_called=False) as router:
        mount_salesforce(router, org)
        with sf_client() as c:
            fields = discover_fields(c, account())
            pages = list(read_stream(c, account(), fields=fields, now=NOW))
            for i in ids(pages):
                landed[i] = landed.get(i, 0) + 1
            state = pages[-1].state
            assert state == CursorState(org.records[1]["SystemModstamp"], ("001B", "001C", "001D", "001E"))
            assert pages[0].state == CursorState(org.records[1]["SystemModstamp"], ("001B", "001C"))
            assert "SystemModstamp < 2026-11-30T11:59:00Z" in org.queries[0]  # now - visibility lag
            # a transaction that committed late, stamped before the stored cursor
            org.add("001L", late_stamp)
            later = NOW + timedelta(minutes=10)
            pages2 = list(read_stream(c, account(), fields=fields, state=state, now=later))
    assert "SystemModstamp >= 2026-11-30T11:25:00Z" in org.queries[-1]  # cursor - 5 min lookback, closed
    for i in ids(pages2):
        landed[i] = landed.get(i, 0) + 1
    assert set(landed) == {"001A", "001B", "001C", "001D", "001E", "001L"}
    assert pages2[-1].state == state  # nothing newer: the same value, same keys (never rounded up)


def test_explicit_window_resyncs_without_moving_the_state():
    org = SfOrg(page_size=2)
    for i in range(5):
        org.add(f"001{i}", utc(2026, 10, 1 + i, 9, 0, 0))
    state = CursorState("2026-11-29T10:00:00.000+0000", ("001Z",))
    with respx.mock(assert_all_called=False) as router:
        mount_salesforce(router, org)
        with sf_client() as c:
            pages = list(read_stream(c, account(), fields=discover_fields(c, account()), state=state,
                                     window=Window(utc(2026, 10, 2), utc(2026, 10, 4)), now=NOW))
    assert ids(pages) == ["0011", "0012"]
    assert all(p.state == state and p.mode == "window" for p in pages)
    assert "SystemModstamp >= 2026-10-02T00:00:00Z AND SystemModstamp < 2026-10-04T00:00:00Z" in org.queries[0]


def test_isdeleted_rows_from_queryall_are_reported_as_deletes():
    org = SfOrg(page_size=10)
    org.add("001A", NOW - timedelta(hours=2))
    org.add("001B", NOW - timedelta(hours=1), IsDeleted=True)
    with respx.mock(assert_all_called=False) as router:
        mount_salesforce(router, org)
        with sf_client() as c:
            pages = list(read_stream(c, account(), fields=discover_fields(c, account()), now=NOW))
        assert "/queryAll" in str(router.calls[-1].request.url)
    assert ids(pages) == ["001A"] and pages[0].deleted_ids == ["001B"]


def test_any_sobject_a_user_names_uses_the_template_stream():
    spec = load_system_spec("salesforce")
    s = spec.stream("renewals", "Renewal__c")
    assert s.object == "Renewal__c" and s.spec.incremental.cursor_field == "SystemModstamp"
    with pytest.raises(KeyError, match="any_object"):
        spec.stream("renewals")


# ------------------------------------------------------------------------------------------ no secret leaks

def test_secrets_never_reach_logs_exceptions_or_reprs(caplog):
    caplog.set_level(logging.DEBUG)
    secrets = [*SF_SECRETS.values(), SF_ACCESS]
    texts = []
    org = SfOrg(page_size=2)
    org.add("001A", NOW - timedelta(hours=2))
    with respx.mock(assert_all_called=False) as router:
        mount_salesforce(router, org)
        with sf_client() as c:
            list(read_stream(c, account(), fields=discover_fields(c, account()), now=NOW))
            texts += [repr(c), repr(c.auth._secrets), repr(c.auth.__dict__), str(c.usage)]
        router.get(f"{SF_INSTANCE}{API}/limits").mock(
            return_value=httpx.Response(401, json=sf_error("INVALID_SESSION_ID", "Session expired or invalid")))
        with sf_client() as c, pytest.raises(ConnectionAuthError) as e:
            c.send(c.spec.connection.test_request)
        texts += [str(e.value), repr(e.value)]
    with respx.mock as router:
        router.post(f"{SF_LOGIN}/services/oauth2/token").mock(return_value=httpx.Response(
            400, json={"error": "invalid_grant", "error_description": "expired access/refresh token"}))
        with sf_client() as c, pytest.raises(NeedsReauthorization) as e2:
            c.send(c.spec.connection.test_request)
        texts += [str(e2.value), repr(e2.value), repr(e2.value.__cause__), repr(e2.value.__context__)]
    texts += [r.getMessage() for r in caplog.records]
    assert any("sf_prod" in t for t in texts)
    for s in secrets:
        assert not any(s in t for t in texts), s


def test_retry_after_longer_than_the_backoff_budget_stops_cleanly():
    sleeps = Sleeps()
    with respx.mock as router:
        router.post(f"{SF_LOGIN}/services/oauth2/token").mock(return_value=httpx.Response(200, json=sf_token_body()))
        api = router.get(f"{SF_INSTANCE}{API}/limits").mock(return_value=httpx.Response(
            429, headers={"Retry-After": "3600"}, json=sf_error("REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.")))
        with sf_client(sleeps) as c, pytest.raises(BudgetExhausted) as e:
            c.send(c.spec.connection.test_request)
    assert sleeps == [] and api.call_count == 1
    assert "3600 s" in str(e.value) and "resumes on the next run" in str(e.value)


def test_invalid_field_fails_with_the_field_named_in_one_paragraph():
    with respx.mock as router:
        router.post(f"{SF_LOGIN}/services/oauth2/token").mock(return_value=httpx.Response(200, json=sf_token_body()))
        router.get(url__startswith=f"{SF_INSTANCE}{API}/queryAll").mock(return_value=httpx.Response(400, json=sf_error(
            "INVALID_FIELD", "\nSELECT Id, Churn_Risk__c FROM Account\n           ^\nERROR at Row:1:Column:12\n"
            "No such column 'Churn_Risk__c' on entity 'Account'. If you are attempting to use a custom field, be sure "
            "to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the "
            "appropriate names.")))
        with sf_client() as c, pytest.raises(ApiError) as e:
            list(read_stream(c, account(), fields=[FieldInfo("Id"), FieldInfo("Churn_Risk__c")], now=NOW, use_export=False))
    msg = str(e.value)
    assert "No such column 'Churn_Risk__c' on entity 'Account'" in msg and "sf_prod" in msg and "\n" not in msg
