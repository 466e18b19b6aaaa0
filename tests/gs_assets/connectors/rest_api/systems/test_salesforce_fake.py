"""The Salesforce fake serves what Salesforce documents: tokens per environment / My Domain with
instance_url on another host, session expiry, SOQL query/queryAll with 2,000-row batches and
snapshots, ties and late commits, getUpdated/getDeleted windows, Bulk API 2.0 query jobs,
Sforce-Limit-Info and the fault plan (limits, 5xx bursts, schema drift, revoked tokens).

Driven through httpx: in process (ASGITransport, vendor host names in the URL, so the Host header is
the vendor's) and once on loopback with Host headers."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import hmac
import io
import os
import re
import select
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gs_assets.connectors.rest_api.fakes.harness import Clock, free_port, serve_on_loopback
from gs_assets.connectors.rest_api.systems.salesforce.fake import FieldDef, SalesforceOrg, create_app, id18

V = "v62.0"
T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=timezone.utc)
SESSION_EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def _keypair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


@pytest.fixture(scope="module")
def keys():
    return _keypair(), _keypair()


class SF:
    """An org, its app, and an httpx client that talks to it in process."""

    def __init__(self, org: SalesforceOrg, public_pem: str | None = None):
        self.org = org
        self.app = create_app(org)
        org.register_app("cid", "csecret", public_key_pem=public_pem,
                         run_as_username=org.user_by_username(None)["Username"])
        self.refresh = org.issue_refresh_token("cid")

    def request(self, method: str, url: str, **kw) -> httpx.Response:
        async def go():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app)) as c:
                return await c.request(method, url, **kw)
        return asyncio.run(go())

    def token(self, host: str | None = None, **form) -> httpx.Response:
        form = form or {"grant_type": "refresh_token", "client_id": "cid", "client_secret": "csecret",
                        "refresh_token": self.refresh}
        return self.request("POST", f"https://{host or self.org.login_host}/services/oauth2/token", data=form)

    def login(self, host: str | None = None) -> str:
        r = self.token(host)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def api(self, path: str, token: str, method: str = "GET", host: str | None = None, headers=None, **kw):
        h = {"Authorization": f"Bearer {token}", **(headers or {})}
        base = f"https://{host}" if host else self.org.instance_url
        return self.request(method, base + path, headers=h, **kw)

    def query(self, soql: str, token: str, all_rows: bool = False, **kw) -> httpx.Response:
        return self.api(f"/services/data/{V}/{'queryAll' if all_rows else 'query'}", token, params={"q": soql}, **kw)

    def query_all_pages(self, soql: str, token: str, all_rows: bool = False, **kw) -> list[dict]:
        r = self.query(soql, token, all_rows, **kw)
        assert r.status_code == 200, r.text
        body, records = r.json(), []
        records += body["records"]
        while not body["done"]:
            r = self.api(body["nextRecordsUrl"], token, **kw)
            assert r.status_code == 200, r.text
            body = r.json()
            records += body["records"]
        return records


@pytest.fixture
def sf(keys):
    org = SalesforceOrg(clock=Clock(start=T0), environment="production", my_domain="acme")
    return SF(org, keys[0][1])


def _assertion(private_pem, iss="cid", sub=None, aud="https://login.salesforce.com", exp=None):
    claims = {"iss": iss, "sub": sub, "aud": aud, "exp": int(exp if exp is not None else T0.timestamp() + 180)}
    return jwt.encode({"alg": "RS256"}, claims, RSAKey.import_key(private_pem))


# ------------------------------------------------------------------------------------------------
# Hosts and tokens


def test_refresh_grant_returns_the_documented_fields_and_an_instance_url_on_another_host(sf):
    r = sf.token("login.salesforce.com")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "instance_url", "id", "issued_at", "signature", "token_type", "scope"}
    assert "expires_in" not in body and body["token_type"] == "Bearer"
    assert body["instance_url"] == "https://acme.my.salesforce.com"
    assert urlsplit(body["instance_url"]).hostname != "login.salesforce.com"
    assert re.fullmatch(r"https://login\.salesforce\.com/id/00D\w{15}/005\w{15}", body["id"])
    assert body["issued_at"] == str(int(T0.timestamp() * 1000))
    expected = base64.b64encode(hmac.new(b"csecret", (body["id"] + body["issued_at"]).encode(),
                                         hashlib.sha256).digest()).decode()
    assert body["signature"] == expected
    token = body["access_token"]
    assert sf.api(f"/services/data/{V}/limits/", token).status_code == 200
    me = sf.request("GET", body["id"], headers={"Authorization": f"Bearer {token}"}).json()   # the identity URL
    assert (me["organization_id"], me["username"]) == (sf.org.org_id, sf.org.user_by_username(None)["Username"])
    # the login host holds no data: the API lives on the instance host only
    r = sf.api(f"/services/data/{V}/limits/", token, host="login.salesforce.com")
    assert r.status_code == 401 and r.json() == SESSION_EXPIRED


def test_production_and_sandbox_orgs_issue_tokens_only_on_their_own_login_host(keys):
    prod = SF(SalesforceOrg(clock=Clock(start=T0), environment="production", instance_host="na1.salesforce.com"))
    sandbox = SF(SalesforceOrg(clock=Clock(start=T0), environment="sandbox", instance_host="cs42.salesforce.com"))
    wrong = {"error": "invalid_grant", "error_description": "authentication failure"}
    r = prod.token("test.salesforce.com")
    assert (r.status_code, r.json()) == (400, wrong)
    r = sandbox.token("login.salesforce.com")
    assert (r.status_code, r.json()) == (400, wrong)
    assert prod.token("login.salesforce.com").json()["instance_url"] == "https://na1.salesforce.com"
    r = sandbox.token("test.salesforce.com")
    assert r.status_code == 200 and r.json()["instance_url"] == "https://cs42.salesforce.com"
    assert r.json()["id"].startswith("https://test.salesforce.com/id/")
    token = r.json()["access_token"]
    assert sandbox.api(f"/services/data/{V}/sobjects/", token).status_code == 200
    # a token is only good on its own org's instance
    assert sandbox.api(f"/services/data/{V}/sobjects/", token, host="na1.salesforce.com").status_code == 401


def test_my_domain_host_issues_tokens_and_another_org_domain_does_not(sf):
    r = sf.token("acme.my.salesforce.com")
    assert r.status_code == 200
    assert r.json()["id"].startswith("https://acme.my.salesforce.com/id/")
    assert r.json()["instance_url"] == "https://acme.my.salesforce.com"
    r = sf.token("globex.my.salesforce.com")
    assert (r.status_code, r.json()["error_description"]) == (400, "authentication failure")
    sandbox = SF(SalesforceOrg(clock=Clock(start=T0), environment="sandbox", my_domain="acme--uat.sandbox"))
    r = sandbox.token("acme--uat.sandbox.my.salesforce.com")
    assert r.status_code == 200 and r.json()["instance_url"] == "https://acme--uat.sandbox.my.salesforce.com"


def test_refresh_grant_errors_are_salesforces(sf):
    base = {"grant_type": "refresh_token", "client_id": "cid", "client_secret": "csecret", "refresh_token": sf.refresh}
    r = sf.token(**{**base, "client_id": "nope"})
    assert (r.status_code, r.json()) == (400, {"error": "invalid_client_id", "error_description": "client identifier invalid"})
    r = sf.token(**{**base, "client_secret": "wrong"})
    assert (r.status_code, r.json()) == (400, {"error": "invalid_client", "error_description": "invalid client credentials"})
    r = sf.token(**{**base, "refresh_token": "5Aep861unknown"})
    assert (r.status_code, r.json()) == (400, {"error": "invalid_grant", "error_description": "expired access/refresh token"})
    r = sf.token(**{**base, "grant_type": "password"})
    assert (r.status_code, r.json()["error"]) == (400, "unsupported_grant_type")


def test_a_revoked_refresh_token_fails_with_invalid_grant_and_its_sessions_end(sf):
    token = sf.login()
    sf.org.revoke_refresh_token(sf.refresh)
    r = sf.token()
    assert (r.status_code, r.json()) == (400, {"error": "invalid_grant", "error_description": "expired access/refresh token"})
    r = sf.api(f"/services/data/{V}/limits/", token)
    assert r.status_code == 401 and r.json() == SESSION_EXPIRED


def test_refresh_token_rotation_when_the_org_says_so(sf):
    sf.org.plan.rotate_refresh_tokens = True
    r = sf.token()
    new = r.json()["refresh_token"]
    assert new != sf.refresh
    assert sf.token().json()["error_description"] == "expired access/refresh token"   # the old one is gone
    r = sf.token(grant_type="refresh_token", client_id="cid", client_secret="csecret", refresh_token=new)
    assert r.status_code == 200 and r.json()["refresh_token"] not in (new, sf.refresh)


def test_client_credentials_runs_as_the_apps_user_on_my_domain_only(sf):
    form = {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "csecret"}
    r = sf.token("login.salesforce.com", **form)
    assert (r.status_code, r.json()) == (400, {"error": "invalid_grant",
                                               "error_description": "request not supported on this domain"})
    r = sf.token("acme.my.salesforce.com", **form)
    assert r.status_code == 200 and r.json()["instance_url"] == "https://acme.my.salesforce.com"
    assert sf.api(f"/services/data/{V}/limits/", r.json()["access_token"]).status_code == 200
    basic = base64.b64encode(b"cid:csecret").decode()      # client_secret_basic works too
    r = sf.request("POST", "https://acme.my.salesforce.com/services/oauth2/token",
                   data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 200, r.text
    r = sf.token("acme.my.salesforce.com", **{**form, "client_secret": "x"})
    assert r.json() == {"error": "invalid_client", "error_description": "invalid client credentials"}
    sf.org.register_app("norunas", "s2")
    r = sf.token("acme.my.salesforce.com", grant_type="client_credentials", client_id="norunas", client_secret="s2")
    assert r.json() == {"error": "invalid_grant", "error_description": "no client credentials user enabled"}


def test_jwt_bearer_checks_signature_issuer_subject_audience_and_expiry(sf, keys):
    (private, _), (other_private, _) = keys
    user = sf.org.user_by_username(None)["Username"]

    def grant(assertion, host="login.salesforce.com"):
        return sf.token(host, grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer", assertion=assertion)

    r = grant(_assertion(private, sub=user))
    assert r.status_code == 200, r.text
    assert r.json()["instance_url"] == "https://acme.my.salesforce.com"
    assert sf.api(f"/services/data/{V}/limits/", r.json()["access_token"]).status_code == 200
    assert grant(_assertion(private, sub=user, aud="https://acme.my.salesforce.com"),
                 "acme.my.salesforce.com").status_code == 200
    cases = [
        (_assertion(other_private, sub=user), "invalid_grant", "invalid assertion"),
        (_assertion(private, sub=user, aud="https://test.salesforce.com"), "invalid_grant", "audience is invalid"),
        (_assertion(private, sub=user, exp=T0.timestamp() - 1), "invalid_grant", "expired authorization code"),
        (_assertion(private, iss="someone-else", sub=user), "invalid_client_id", "client identifier invalid"),
        (_assertion(private, sub="nobody@example.com"), "invalid_grant", "user hasn't approved this consumer"),
        ("not-a-jwt", "invalid_grant", "invalid assertion"),
    ]
    for assertion, error, description in cases:
        r = grant(assertion)
        assert (r.status_code, r.json()) == (400, {"error": error, "error_description": description}), description


def test_jwt_bearer_verifies_against_the_registered_certificate(sf, keys):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    (private, _), _ = keys
    key = serialization.load_pem_private_key(private, password=None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gsdp")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(T0 - timedelta(days=1)).not_valid_after(T0 + timedelta(days=365))
            .sign(key, hashes.SHA256()))
    sf.org.register_app("certapp", "s3", public_key_pem=cert.public_bytes(serialization.Encoding.PEM).decode())
    user = sf.org.user_by_username(None)["Username"]
    r = sf.token(grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer",
                 assertion=_assertion(private, iss="certapp", sub=user))
    assert r.status_code == 200, r.text


def test_jwt_bearer_for_a_sandbox_wants_the_sandbox_audience(keys):
    (private, public), _ = keys
    sandbox = SF(SalesforceOrg(clock=Clock(start=T0), environment="sandbox"), public)
    user = sandbox.org.user_by_username(None)["Username"]
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}
    r = sandbox.token("test.salesforce.com", **form, assertion=_assertion(private, sub=user,
                                                                           aud="https://test.salesforce.com"))
    assert r.status_code == 200
    r = sandbox.token("test.salesforce.com", **form, assertion=_assertion(private, sub=user))
    assert r.json()["error_description"] == "audience is invalid"


# ------------------------------------------------------------------------------------------------
# Sessions, limits, faults


def test_sessions_expire_after_the_org_session_timeout_of_inactivity(sf):
    token = sf.login()
    sf.org.clock.advance(minutes=90)
    assert sf.api(f"/services/data/{V}/limits/", token).status_code == 200   # activity keeps it alive
    sf.org.clock.advance(hours=2)
    r = sf.api(f"/services/data/{V}/limits/", token)
    assert (r.status_code, r.json()) == (401, SESSION_EXPIRED)
    assert sf.api(f"/services/data/{V}/limits/", "00Dbogus!AQ123").json() == SESSION_EXPIRED
    assert sf.request("GET", f"{sf.org.instance_url}/services/data/{V}/limits/").status_code == 401
    assert sf.api(f"/services/data/{V}/limits/", sf.login()).status_code == 200


def test_fault_plan_ends_sessions_after_n_calls_or_at_a_clock_time(sf):
    token = sf.login()
    sf.org.plan.expire_sessions_after_calls = 2
    assert [sf.api(f"/services/data/{V}/limits/", token).status_code for _ in range(3)] == [200, 200, 401]
    token = sf.login()
    assert sf.api(f"/services/data/{V}/limits/", token).status_code == 200
    sf.org.plan.expire_sessions_at = T0 + timedelta(minutes=5)
    sf.org.clock.advance(minutes=4)
    assert sf.api(f"/services/data/{V}/limits/", token).status_code == 200
    sf.org.clock.advance(minutes=1)
    assert sf.api(f"/services/data/{V}/limits/", token).json() == SESSION_EXPIRED
    assert sf.api(f"/services/data/{V}/limits/", sf.login()).status_code == 200   # a new session is fine


def test_every_api_response_carries_sforce_limit_info_and_limits_reports_daily_requests(sf):
    sf.org.api_limit = 5000
    token = sf.login()
    seen = [sf.api(f"/services/data/{V}/sobjects/", token).headers["Sforce-Limit-Info"] for _ in range(3)]
    assert seen == ["api-usage=1/5000", "api-usage=2/5000", "api-usage=3/5000"]
    r = sf.api(f"/services/data/{V}/limits/", token)
    assert r.json()["DailyApiRequests"] == {"Max": 5000, "Remaining": 4996}
    assert r.headers["Sforce-Limit-Info"] == "api-usage=4/5000"
    assert sf.query("SELECT Foo FROM Account", token).headers["Sforce-Limit-Info"] == "api-usage=5/5000"


def test_daily_limit_reached_gives_request_limit_exceeded_until_the_rolling_day_frees_calls(sf):
    token = sf.login()
    sf.org.limit_after(2)
    codes = [sf.api(f"/services/data/{V}/limits/", token) for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 403]
    assert codes[2].json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert codes[2].headers["Sforce-Limit-Info"] == f"api-usage={sf.org.api_limit}/{sf.org.api_limit}"
    sf.org.clock.advance(hours=24, seconds=1)
    token = sf.login()
    assert sf.api(f"/services/data/{V}/limits/", token).status_code == 200


def test_a_5xx_burst_fails_the_next_k_calls_then_serves_again(sf):
    token = sf.login()
    sf.org.plan.fail_next(2)
    rs = [sf.api(f"/services/data/{V}/limits/", token) for _ in range(3)]
    assert [r.status_code for r in rs] == [503, 503, 200]
    assert rs[0].json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    sf.org.plan.fail_next(1, status=500)
    r = sf.api(f"/services/data/{V}/limits/", token)
    assert r.status_code == 500 and r.json()[0]["errorCode"] == "UNKNOWN_EXCEPTION"


# ------------------------------------------------------------------------------------------------
# Schema: sobjects, describe, drift


def test_sobjects_and_describe_list_standard_and_custom_objects_and_fields(sf):
    sf.org.add_object("Health_Score__c", "Health Score", [FieldDef("Score__c", "double", "Score")])
    token = sf.login()
    names = {o["name"]: o for o in sf.api(f"/services/data/{V}/sobjects/", token).json()["sobjects"]}
    assert {"Account", "Contact", "User", "Opportunity", "Health_Score__c"} <= set(names)
    assert names["Health_Score__c"]["custom"] is True and names["Account"]["keyPrefix"] == "001"
    d = sf.api(f"/services/data/{V}/sobjects/Health_Score__c/describe/", token).json()
    fields = {f["name"]: f for f in d["fields"]}
    assert {"Id", "Name", "OwnerId", "IsDeleted", "SystemModstamp", "Score__c"} <= set(fields)
    assert {k: fields["Score__c"][k] for k in ("type", "label", "nillable", "updateable", "custom")} == \
        {"type": "double", "label": "Score", "nillable": True, "updateable": True, "custom": True}
    acct = {f["name"]: f for f in sf.api(f"/services/data/{V}/sobjects/Account/describe", token).json()["fields"]}
    assert acct["SystemModstamp"]["type"] == "datetime" and acct["SystemModstamp"]["updateable"] is False
    assert acct["ParentId"]["referenceTo"] == ["Account"]
    assert "IsDeleted" not in {f["name"] for f in sf.api(f"/services/data/{V}/sobjects/User/describe/",
                                                         token).json()["fields"]}
    assert sf.api(f"/services/data/{V}/sobjects/Nope__c/describe/", token).status_code == 404


def test_a_field_added_and_one_removed_between_calls(sf):
    token = sf.login()
    sf.org.insert("Account", Name="Acme", Website="https://acme.example")
    n = sf.org.requests_seen
    sf.org.plan.at_request(n + 2, lambda org: (org.add_field("Account", "Segment__c", "picklist", label="Segment"),
                                               org.remove_field("Account", "Website")))

    def describe():
        return {f["name"] for f in sf.api(f"/services/data/{V}/sobjects/Account/describe/", token).json()["fields"]}

    before = describe()
    after = describe()
    assert after - before == {"Segment__c"} and before - after == {"Website"}
    r = sf.query("SELECT Id, Website FROM Account", token)
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Website' on entity 'Account'" in r.json()[0]["message"]
    assert sf.query("SELECT Id, Segment__c FROM Account", token).json()["records"][0]["Segment__c"] is None


# ------------------------------------------------------------------------------------------------
# SOQL


def test_query_response_shape_types_and_api_spelling(sf):
    aid = sf.org.insert("Account", Name="Acme", AnnualRevenue=1200.5, NumberOfEmployees=12)
    token = sf.login()
    body = sf.query("select id, NAME, annualrevenue, SystemModstamp, IsDeleted from ACCOUNT", token).json()
    assert body["totalSize"] == 1 and body["done"] is True and "nextRecordsUrl" not in body
    rec = body["records"][0]
    assert rec == {"attributes": {"type": "Account", "url": f"/services/data/{V}/sobjects/Account/{aid}"},
                   "Id": aid, "Name": "Acme", "AnnualRevenue": 1200.5,
                   "SystemModstamp": "2026-11-30T12:00:00.000+0000", "IsDeleted": False}
    assert len(aid) == 18 and aid.startswith("001") and id18(aid[:15]) == aid


def test_ids_carry_salesforces_checksum_suffix():
    assert id18("a0D30000001n7Pi") == "a0D30000001n7PiEAI"


def test_query_errors_are_salesforces(sf):
    token = sf.login()

    def err(q):
        r = sf.query(q, token)
        assert r.status_code == 400, r.text
        assert set(r.json()[0]) == {"message", "errorCode"}
        return r.json()[0]

    e = err("SELECT Id, Foo FROM Account")
    assert e["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Foo' on entity 'Account'. If you are attempting to use a custom field" in e["message"]
    assert "ERROR at Row:1:Column:12" in e["message"]
    assert err("SELECT Id FROM Widget")["errorCode"] == "INVALID_TYPE"
    assert err("SELECT Id FROM Account WHERE")["errorCode"] == "MALFORMED_QUERY"
    assert err("SELECT Id Account")["errorCode"] == "MALFORMED_QUERY"
    assert err("SELECT Id FROM Account WHERE Name = 'a' AND Id != null OR Name = 'b'")["errorCode"] == "MALFORMED_QUERY"
    e = err("SELECT Id FROM Account WHERE SystemModstamp > '2026-11-30T12:00:00Z'")
    assert e["errorCode"] == "INVALID_FIELD" and "must be of type dateTime and should not be enclosed in quotes" in e["message"]
    assert err("SELECT Id FROM Account WHERE IsDeleted = 'true'")["errorCode"] == "INVALID_FIELD"
    assert err("SELECT Id FROM Account WHERE Name = 5")["errorCode"] == "INVALID_FIELD"
    assert err("SELECT Owner.Email FROM Account")["errorCode"] == "INVALID_FIELD"
    r = sf.api(f"/services/data/{V}/query", token)
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_where_conditions_on_datetimes_strings_booleans_and_numbers(sf):
    org = sf.org
    a = org.insert("Account", Name="Alpha", Industry="Software", NumberOfEmployees=10)
    org.clock.advance(seconds=30)
    b = org.insert("Account", Name="Beta", Industry="Retail", NumberOfEmployees=50)
    org.clock.advance(minutes=5)
    c = org.insert("Account", Name="Gamma O'Neil", Industry=None, NumberOfEmployees=None)
    token = sf.login()

    def ids(where):
        r = sf.query(f"SELECT Id FROM Account WHERE {where} ORDER BY Name", token)
        assert r.status_code == 200, r.text
        return [x["Id"] for x in r.json()["records"]]

    assert ids("SystemModstamp > 2026-11-30T12:00:00Z") == [b, c]
    assert ids("SystemModstamp >= 2026-11-30T12:00:00.000+0000") == [a, b, c]
    assert ids("SystemModstamp < 2026-11-30T12:00:30+00:00") == [a]
    assert ids("SystemModstamp <= 2026-11-30T13:00:30+01:00") == [a, b]
    assert ids("SystemModstamp = 2026-11-30T12:00:30Z") == [b]
    assert ids("Name = 'alpha'") == [a]                       # text compares case-insensitively
    assert ids("Name != 'Alpha'") == [b, c]
    assert ids("Name = 'Gamma O\\'Neil'") == [c]
    assert ids("Name LIKE 'Al%'") == [a]
    assert ids("Industry IN ('Software', 'Retail')") == [a, b]
    assert ids("Industry NOT IN ('Software')") == [b, c]
    assert ids("Industry = null") == [c]
    assert ids("NumberOfEmployees > 20") == [b]
    assert ids("IsDeleted = false AND (Name = 'Alpha' OR Name = 'Beta')") == [a, b]
    assert ids("NOT Name = 'Alpha'") == [b, c]
    assert ids(f"SystemModstamp > 2026-11-30T12:00:00Z OR (SystemModstamp = 2026-11-30T12:00:00Z AND Id > '{a}')") == [b, c]
    assert ids(f"Id = '{b[:15]}'") == [b]                     # the 15-character form names the same record


def test_order_by_several_keys_directions_nulls_and_limit(sf):
    org = sf.org
    ids = [org.insert("Account", Name=n, NumberOfEmployees=e) for n, e in
           [("b", 2), ("a", None), ("c", 2), ("d", 1)]]
    token = sf.login()

    def names(tail):
        return [r["Name"] for r in sf.query(f"SELECT Name FROM Account {tail}", token).json()["records"]]

    assert names("ORDER BY NumberOfEmployees, Name") == ["a", "d", "b", "c"]          # ASC: nulls first
    assert names("ORDER BY NumberOfEmployees DESC, Name DESC") == ["c", "b", "d", "a"]  # DESC: nulls last
    assert names("ORDER BY NumberOfEmployees ASC NULLS LAST, Name") == ["d", "b", "c", "a"]
    assert names("ORDER BY Name LIMIT 2") == ["a", "b"]
    assert names("ORDER BY Name LIMIT 2 OFFSET 1") == ["b", "c"]
    assert names("ORDER BY SystemModstamp, Id") == ["b", "a", "c", "d"]
    assert len(ids) == 4


def test_queries_page_in_batches_of_2000_with_next_records_url_and_honour_batch_size(sf):
    sf.org.insert_many("Account", ({"Name": f"A{i:05d}"} for i in range(4500)))
    token = sf.login()
    r = sf.query("SELECT Id, Name FROM Account ORDER BY Name", token)
    body = r.json()
    assert (body["totalSize"], body["done"], len(body["records"])) == (4500, False, 2000)
    assert re.fullmatch(rf"/services/data/{V}/query/01g\w{{15}}-2000", body["nextRecordsUrl"])
    second = sf.api(body["nextRecordsUrl"], token).json()
    assert len(second["records"]) == 2000 and second["nextRecordsUrl"].endswith("-4000")
    third = sf.api(second["nextRecordsUrl"], token).json()
    assert (len(third["records"]), third["done"], "nextRecordsUrl" in third) == (500, True, False)
    names = [x["Name"] for x in body["records"] + second["records"] + third["records"]]
    assert names == [f"A{i:05d}" for i in range(4500)]
    small = sf.query("SELECT Id FROM Account", token, headers={"Sforce-Query-Options": "batchSize=500"}).json()
    assert len(small["records"]) == 500 and small["nextRecordsUrl"].endswith("-500")
    tiny = sf.query("SELECT Id FROM Account", token, headers={"Sforce-Query-Options": "batchSize=50"}).json()
    assert len(tiny["records"]) == 200                       # 200 is the documented minimum
    r = sf.api(f"/services/data/{V}/query/01gHs0000000000AAA-2000", token)
    assert r.status_code == 400 and r.json() == [{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]


def test_tied_systemmodstamps_across_the_2000_record_boundary(sf):
    org = sf.org
    org.insert_many("Account", ({"Name": f"early {i}"} for i in range(1500)))
    org.clock.advance(seconds=1, microseconds=400_000)          # 12:00:01.4 -> stamped 12:00:01
    tied = org.insert_many("Account", ({"Name": f"bulk {i}"} for i in range(1000)))
    assert {org.record("Account", i)["SystemModstamp"] for i in tied} == {T0 + timedelta(seconds=1)}
    token = sf.login()
    soql = "SELECT Id, SystemModstamp FROM Account ORDER BY SystemModstamp, Id"
    first = sf.query(soql, token).json()
    last = first["records"][-1]
    assert last["SystemModstamp"] == "2026-11-30T12:00:01.000+0000"      # the page ends inside the tie
    assert first["records"][1499]["SystemModstamp"] == "2026-11-30T12:00:00.000+0000"
    # resuming with a strict > on the stamp alone loses the rest of the tie...
    lossy = sf.query_all_pages(f"SELECT Id FROM Account WHERE SystemModstamp > 2026-11-30T12:00:01Z", token)
    assert lossy == []
    # ...the (SystemModstamp, Id) tie-break resumes exactly after the boundary record
    rest = sf.query_all_pages(
        "SELECT Id FROM Account WHERE SystemModstamp > 2026-11-30T12:00:01Z OR "
        f"(SystemModstamp = 2026-11-30T12:00:01Z AND Id > '{last['Id']}') ORDER BY SystemModstamp, Id", token)
    assert len(rest) == 500
    assert {x["Id"] for x in first["records"]} | {x["Id"] for x in rest} == {r["Id"] for r in org.records("Account")}


def test_update_stamps_now_truncated_to_the_second_or_the_given_time(sf):
    org = sf.org
    a, b = org.insert("Account", Name="a"), org.insert("Account", Name="b")
    org.clock.advance(seconds=5, microseconds=900_000)
    org.update("Account", a, Name="a2")
    org.update("Account", b, Name="b2")
    assert org.record("Account", a)["SystemModstamp"] == org.record("Account", b)["SystemModstamp"] == \
        T0 + timedelta(seconds=5)
    org.update("Account", a, Name="a3", stamped=T0 + timedelta(seconds=2, microseconds=5))
    assert org.record("Account", a)["SystemModstamp"] == T0 + timedelta(seconds=2)
    org.update("Account", b, system=True, NumberOfEmployees=3)     # a system process: only SystemModstamp moves
    r = org.record("Account", b)
    assert r["LastModifiedDate"] <= r["SystemModstamp"]


def test_a_late_commit_is_visible_now_with_an_older_systemmodstamp(sf):
    org = sf.org
    org.insert("Account", Name="before")
    org.clock.advance(minutes=10)
    token = sf.login()
    cursor = "2026-11-30T12:05:00Z"                # a sync read up to here and stored it as its cursor
    assert sf.query_all_pages(f"SELECT Id FROM Account WHERE SystemModstamp >= {cursor}", token) == []
    late = org.commit_late("Account", {"Name": "late"}, stamped=T0 + timedelta(minutes=4, seconds=30))
    assert org.record("Account", late)["SystemModstamp"] == T0 + timedelta(minutes=4, seconds=30)
    old = org.insert("Account", Name="old", stamped=T0)
    org.commit_late(old, stamped=T0 + timedelta(minutes=4), Name="old, changed late")   # object from the Id
    assert org.record("Account", old)["SystemModstamp"] == T0 + timedelta(minutes=4)
    assert sf.query_all_pages(f"SELECT Id FROM Account WHERE SystemModstamp >= {cursor}", token) == []
    back = sf.query_all_pages("SELECT Id FROM Account WHERE SystemModstamp >= 2026-11-30T12:00:00Z "
                              "AND Name LIKE '%late%' ORDER BY SystemModstamp, Id", token)   # a lookback finds both
    assert [x["Id"] for x in back] == [old, late]


def test_a_pending_write_is_invisible_and_holds_latest_date_covered_back(sf):
    org = sf.org
    org.clock.advance(minutes=30)
    p = org.begin_write("Account", {"Name": "in flight"}, stamped=T0 + timedelta(minutes=20, seconds=10))
    token = sf.login()
    assert sf.query("SELECT Id FROM Account", token).json()["totalSize"] == 0
    r = sf.api(f"/services/data/{V}/sobjects/Account/updated/", token,
               params={"start": "2026-11-30T12:00:00+00:00", "end": "2026-11-30T12:30:00+00:00"}).json()
    assert r == {"ids": [], "latestDateCovered": "2026-11-30T12:20:00.000+0000"}
    rid = p.commit()
    r = sf.api(f"/services/data/{V}/sobjects/Account/updated/", token,
               params={"start": "2026-11-30T12:20:00+00:00", "end": "2026-11-30T12:30:00+00:00"}).json()
    assert r == {"ids": [rid], "latestDateCovered": "2026-11-30T12:30:00.000+0000"}


def test_a_query_snapshot_is_taken_when_the_query_starts(sf):
    org = sf.org
    ids = org.insert_many("Account", ({"Name": f"n{i:04d}"} for i in range(2500)))
    token = sf.login()
    first = sf.query("SELECT Id, Name FROM Account ORDER BY Name", token).json()
    org.insert("Account", Name="n0000a")            # would land on page one
    org.update("Account", ids[2100], Name="changed")
    org.delete("Account", ids[2200])
    rest = sf.api(first["nextRecordsUrl"], token).json()
    assert rest["totalSize"] == first["totalSize"] == 2500
    assert [x["Name"] for x in first["records"] + rest["records"]] == [f"n{i:04d}" for i in range(2500)]


def test_query_hides_deleted_rows_and_query_all_returns_them_even_on_pages_named_query(sf):
    org = sf.org
    ids = org.insert_many("Account", ({"Name": f"n{i:04d}"} for i in range(2100)))
    org.clock.advance(minutes=1)
    org.delete("Account", ids[5])
    org.delete("Account", ids[2050])
    token = sf.login()
    live = sf.query_all_pages("SELECT Id FROM Account", token)
    assert len(live) == 2098 and ids[5] not in {x["Id"] for x in live}
    first = sf.query("SELECT Id, IsDeleted FROM Account ORDER BY Name", token, all_rows=True).json()
    assert first["totalSize"] == 2100
    assert f"/services/data/{V}/query/" in first["nextRecordsUrl"]      # says query, continues the queryAll
    rest = sf.api(first["nextRecordsUrl"], token).json()
    deleted = {x["Id"] for x in first["records"] + rest["records"] if x["IsDeleted"]}
    assert deleted == {ids[5], ids[2050]}
    r = sf.api(f"/services/data/{V}/sobjects/Account/{ids[5]}", token)
    assert r.status_code == 404 and r.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    org.delete("Account", ids[6], hard=True)      # emptied from the recycle bin: gone from queryAll too
    assert ids[6] not in {x["Id"] for x in sf.query_all_pages("SELECT Id FROM Account", token, all_rows=True)}
    org.clock.advance(minutes=2)                  # deletes show once their minute is covered
    gone = sf.api(f"/services/data/{V}/sobjects/Account/deleted/", token,
                  params={"start": "2026-11-30T11:00:00Z", "end": "2026-11-30T12:30:00Z"}).json()
    assert {x["id"] for x in gone["deletedRecords"]} == {ids[5], ids[2050], ids[6]}


def test_query_cursors_expire_after_15_idle_minutes(sf):
    sf.org.insert_many("Account", ({"Name": f"n{i}"} for i in range(2001)))
    token = sf.login()
    nxt = sf.query("SELECT Id FROM Account", token).json()["nextRecordsUrl"]
    sf.org.clock.advance(minutes=15)
    r = sf.api(nxt, token)
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


# ------------------------------------------------------------------------------------------------
# getUpdated / getDeleted


def test_get_deleted_and_get_updated_bodies_windows_and_latest_date_covered(sf):
    org = sf.org
    org.clock.set(T0 + timedelta(days=2))
    a = org.insert("Account", Name="a")
    b = org.insert("Account", Name="b")
    org.clock.advance(minutes=3, seconds=20)
    org.delete("Account", b)
    org.clock.advance(minutes=10)
    token = sf.login()
    path = f"/services/data/{V}/sobjects/Account"
    day = "2026-12-02"
    r = sf.api(f"{path}/deleted/", token, params={"start": f"{day}T11:59:45+00:00", "end": f"{day}T13:00:00+00:00"})
    assert r.status_code == 200, r.text
    assert r.json() == {"deletedRecords": [{"id": b, "deletedDate": "2026-12-02T12:03:20.000+0000"}],
                        "earliestDateAvailable": "2026-12-02T12:03:00.000+0000",
                        "latestDateCovered": "2026-12-02T12:13:00.000+0000"}    # not past now, seconds dropped
    r = sf.api(f"{path}/updated/", token, params={"start": f"{day}T12:00:00Z", "end": f"{day}T12:10:00Z"})
    assert r.json() == {"ids": [a], "latestDateCovered": "2026-12-02T12:10:00.000+0000"}
    bad = [("deleted", "2026-11-16T00:00:00Z", f"{day}T12:00:00Z"),    # more than 15 days back
           ("updated", "2026-11-01T00:00:00Z", f"{day}T12:00:00Z"),    # more than 30 days back
           ("updated", f"{day}T12:00:10Z", f"{day}T12:00:50Z"),        # not more than a minute apart
           ("deleted", f"{day}T12:10:00Z", f"{day}T12:00:00Z")]
    for kind, start, end in bad:
        r = sf.api(f"{path}/{kind}/", token, params={"start": start, "end": end})
        assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE", (kind, start, r.text)
    ok = sf.api(f"{path}/updated/", token, params={"start": "2026-11-03T00:00:00Z", "end": f"{day}T12:00:00Z"})
    assert ok.status_code == 200


# ------------------------------------------------------------------------------------------------
# Bulk API 2.0 query


def test_bulk_query_job_lifecycle_and_csv_results_with_locators(sf):
    org = sf.org
    ids = org.insert_many("Account", ({"Name": f'n{i:03d} "q", x', "NumberOfEmployees": i} for i in range(250)))
    org.delete("Account", ids[0])
    token = sf.login()
    jobs = f"/services/data/{V}/jobs/query"
    r = sf.api(jobs, token, "POST", json={"operation": "queryAll",
                                           "query": "SELECT Id, Name, IsDeleted, SystemModstamp FROM Account"})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["state"] == "UploadComplete" and job["id"].startswith("750") and job["object"] == "Account"
    r = sf.api(f"{jobs}/{job['id']}/results", token)
    assert r.status_code == 412 and r.json()[0]["errorCode"] == "JOB_NOT_COMPLETE"
    states = [sf.api(f"{jobs}/{job['id']}", token).json()["state"] for _ in range(2)]
    assert states == ["InProgress", "JobComplete"]
    assert sf.api(f"/services/data/v61.0/jobs/query/{job['id']}/results", token).status_code == 409
    rows, locator, sizes = [], None, []
    while True:
        params = {"maxRecords": 100, **({"locator": locator} if locator else {})}
        r = sf.api(f"{jobs}/{job['id']}/results", token, params=params)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        part = list(csv.DictReader(io.StringIO(r.text)))
        assert r.headers["Sforce-NumberOfRecords"] == str(len(part))
        assert r.text.splitlines()[0] == '"Id","Name","IsDeleted","SystemModstamp"'
        rows += part
        sizes.append(len(part))
        locator = r.headers["Sforce-Locator"]
        if locator == "null":
            break
    assert sizes == [100, 100, 50]
    assert [x["Id"] for x in rows] == ids
    assert rows[0]["IsDeleted"] == "true" and rows[1]["Name"] == 'n001 "q", x'
    assert rows[1]["SystemModstamp"] == "2026-11-30T12:00:00.000Z"


def test_bulk_query_rejects_order_by_limit_and_bad_soql_and_can_complete_by_clock(sf):
    org = sf.org
    org.insert("Account", Name="x")
    token = sf.login()
    jobs = f"/services/data/{V}/jobs/query"
    for q in ("SELECT Id FROM Account ORDER BY Id", "SELECT Id FROM Account LIMIT 5"):
        r = sf.api(jobs, token, "POST", json={"operation": "query", "query": q})
        assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALIDJOB", q
    r = sf.api(jobs, token, "POST", json={"operation": "query", "query": "SELECT Nope FROM Account"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_FIELD"
    org.bulk_polls_to_complete, org.bulk_seconds_to_complete = 1000, 30
    job = sf.api(jobs, token, "POST", json={"operation": "query", "query": "SELECT Id FROM Account"}).json()
    assert sf.api(f"{jobs}/{job['id']}", token).json()["state"] == "InProgress"
    org.clock.advance(seconds=30)
    info = sf.api(f"{jobs}/{job['id']}", token).json()
    assert info["state"] == "JobComplete" and info["numberRecordsProcessed"] == 1
    assert sf.api(f"{jobs}/{job['id']}/results", token).headers["Sforce-Locator"] == "null"


# ------------------------------------------------------------------------------------------------
# Loopback and the by-hand entry


def test_served_on_loopback_with_host_headers_per_environment_and_my_domain(keys):
    org = SalesforceOrg(clock=Clock(start=T0), environment="sandbox", my_domain="acme--uat.sandbox")
    sf = SF(org)
    org.seed_demo(accounts=10, users=3, contacts_per_account=1)
    with serve_on_loopback(sf.app) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        form = {"grant_type": "refresh_token", "client_id": "cid", "client_secret": "csecret",
                "refresh_token": sf.refresh}
        r = c.post("/services/oauth2/token", data=form, headers={"Host": "login.salesforce.com"})
        assert r.status_code == 400 and r.json()["error_description"] == "authentication failure"
        for host in ("test.salesforce.com", "acme--uat.sandbox.my.salesforce.com"):
            r = c.post("/services/oauth2/token", data=form, headers={"Host": host})
            assert r.status_code == 200, (host, r.text)
        body = r.json()
        api_host = urlsplit(body["instance_url"]).hostname
        h = {"Host": api_host, "Authorization": f"Bearer {body['access_token']}"}
        r = c.get(f"/services/data/{V}/query", params={"q": "SELECT Id, Name, External_Id__c FROM Account"},
                  headers=h)
        assert r.status_code == 200 and r.json()["totalSize"] == 10
        assert r.json()["records"][0]["External_Id__c"] == "A00000"
        assert r.headers["Sforce-Limit-Info"].startswith("api-usage=1/")


@pytest.mark.slow
def test_the_fake_runs_by_hand_with_a_demo_seed(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gs_assets.connectors.rest_api.systems.salesforce.fake",
                             "--port", str(port), "--seed", "demo"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)   # a generous deadline that fails loudly
        assert ready, "the fake printed nothing within 120 s"
        first = proc.stdout.readline()        # printed once the server accepts connections
        assert f"127.0.0.1:{port}" in first, first
        from gs_assets.connectors.rest_api.systems.salesforce.fake.__main__ import (
            DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REFRESH_TOKEN)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            r = c.post("/services/oauth2/token", headers={"Host": "login.salesforce.com"},
                       data={"grant_type": "refresh_token", "client_id": DEMO_CLIENT_ID,
                             "client_secret": DEMO_CLIENT_SECRET, "refresh_token": DEMO_REFRESH_TOKEN})
            assert r.status_code == 200, r.text
            host = urlsplit(r.json()["instance_url"]).hostname
            q = c.get(f"/services/data/{V}/query", params={"q": "SELECT Id FROM Account"},
                      headers={"Host": host, "Authorization": f"Bearer {r.json()['access_token']}"})
            assert q.status_code == 200 and q.json()["totalSize"] == 60
        assert DEMO_CLIENT_SECRET not in first
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a server slow to drain under load: what it served is what counts
            proc.kill()
            proc.wait(timeout=60)
