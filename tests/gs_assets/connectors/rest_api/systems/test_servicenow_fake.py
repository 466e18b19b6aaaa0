"""The fake ServiceNow instance answers as the Table API documents: encoded queries, Link header and
X-Total-Count, sysparm_fields, display values, auth and the rate-limit rule's headers."""

from __future__ import annotations

import base64
from datetime import timedelta

import httpx
import pytest

from gs_assets.connectors.rest_api.client import asgi_transport
from gs_assets.connectors.rest_api.fakes.harness import Clock
from gs_assets.connectors.rest_api.systems.servicenow.fake import Instance, RateLimitRule, create_app, sn_time

BASIC = "Basic " + base64.b64encode(b"gsdp.integration:pw-1").decode()


@pytest.fixture
def inst():
    i = Instance(Clock(), name="acme")
    i.add_user_credentials("gsdp.integration", "pw-1")
    return i


def get(inst, path, host="acme.service-now.com", auth=BASIC, **params):
    with httpx.Client(transport=asgi_transport(create_app(inst)), base_url=f"https://{host}") as c:
        return c.get(path, params=params, headers={"Authorization": auth} if auth else {})


def test_encoded_query_order_fields_and_link_paging(inst):
    t = inst.clock.now() - timedelta(hours=1)
    recs = [inst.put("incident", at=t + timedelta(seconds=i % 2), short_description=f"d{i}") for i in range(5)]
    r = get(inst, "/api/now/table/incident", sysparm_query=f"sys_updated_on>={sn_time(t)}^ORDERBYsys_updated_on^ORDERBYsys_id",
            sysparm_fields="sys_id,sys_updated_on", sysparm_limit=2)
    assert r.status_code == 200 and r.headers["X-Total-Count"] == "5"
    want = sorted(((x["sys_updated_on"], x["sys_id"]) for x in recs))
    assert [(x["sys_updated_on"], x["sys_id"]) for x in r.json()["result"]] == want[:2]
    assert set(r.json()["result"][0]) == {"sys_id", "sys_updated_on"}
    assert 'rel="next"' in r.headers["Link"] and "sysparm_offset=2" in r.links["next"]["url"]
    assert r.links["next"]["url"].startswith("https://acme.service-now.com/api/now/table/incident?")
    last = get(inst, "/api/now/table/incident", sysparm_limit=2, sysparm_offset=4)
    assert len(last.json()["result"]) == 1 and "next" not in last.links


def test_an_invalid_query_term_is_ignored_as_servicenow_does(inst):
    inst.put("incident", at=inst.clock.now() - timedelta(days=3))
    r = get(inst, "/api/now/table/incident", sysparm_query="sys_updated_on>=2026-11-30T00:00:00Z")  # ISO: not its format
    assert len(r.json()["result"]) == 1
    r = get(inst, "/api/now/table/incident", sysparm_query="no_such_field=1")
    assert len(r.json()["result"]) == 1


def test_display_values_and_reference_links(inst):
    co = inst.put("core_company", name="Acme Corp", customer=True)
    inc = inst.put("incident", state="2", company=co["sys_id"], closed_at=None)
    raw = get(inst, "/api/now/table/incident", sysparm_fields="state,company,sys_updated_on,closed_at").json()["result"][0]
    assert raw["state"] == "2" and raw["closed_at"] == ""  # empty is "", not null
    assert raw["company"] == {"link": f"https://acme.service-now.com/api/now/table/core_company/{co['sys_id']}",
                              "value": co["sys_id"]}
    assert raw["sys_updated_on"] == inc["sys_updated_on"]  # UTC
    shown = get(inst, "/api/now/table/incident", sysparm_fields="state,company,sys_updated_on",
                sysparm_display_value="true", sysparm_exclude_reference_link="true").json()["result"][0]
    assert shown["state"] == "In Progress" and shown["company"] == "Acme Corp"
    assert shown["sys_updated_on"] != inc["sys_updated_on"]  # the user's time zone
    both = get(inst, "/api/now/table/incident", sysparm_fields="state", sysparm_display_value="all").json()["result"][0]
    assert both["state"] == {"display_value": "In Progress", "value": "2"}


def test_auth_host_and_rate_limit_headers(inst):
    inst.rate_limit = RateLimitRule(limit=2)
    assert get(inst, "/api/now/table/incident", auth=None).json() == {
        "error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"},
        "status": "failure"}
    assert get(inst, "/api/now/table/incident", host="other.service-now.com").status_code == 404
    ok = get(inst, "/api/now/table/incident")
    assert ok.headers["X-RateLimit-Limit"] == "2" and "X-RateLimit-Reset" in ok.headers
    get(inst, "/api/now/table/incident")
    over = get(inst, "/api/now/table/incident")
    assert over.status_code == 429 and int(over.headers["Retry-After"]) == 3600  # the clock is at the top of the hour
    inst.clock.advance(hours=1)
    assert get(inst, "/api/now/table/incident").status_code == 200
