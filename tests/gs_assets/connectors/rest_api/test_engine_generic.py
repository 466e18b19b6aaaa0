"""The REST engine's generic parts: spec errors naming file and key, each paginator, the host map
(Host header kept) and an in-process ASGI fake, the asynchronous export (Bulk API 2.0 query)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import respx
import yaml
from fastapi import FastAPI, Request

from gs_assets.connectors.rest_api.client import RestClient, asgi_transport
from gs_assets.connectors.rest_api.fakes.harness import request_host, serve_on_loopback
from gs_assets.connectors.rest_api.spec import SystemSpec, load_spec_file, load_system_spec, system_names
from gs_assets.connectors.rest_api.sync import FieldInfo, discover_fields, read_stream
from gs_assets.validators.errors import ConfigError
from tests.gs_assets.connectors.rest_api.vendor_mocks import (
    API, SF_INSTANCE, SF_SECRETS, SfOrg, iso_sf, mount_salesforce, utc)

NOW = utc(2026, 11, 30, 12, 0, 0)


def test_system_specs_load():
    assert {"salesforce", "hubspot"} <= set(system_names())
    sf = load_system_spec("salesforce")
    assert set(sf.streams) >= {"account", "contact", "user", "opportunity", "any_object"}
    assert sf.connection.environments["sandbox"].login_host == "test.salesforce.com"
    hs = load_system_spec("hubspot")
    assert set(hs.streams) >= {"owners", "companies", "contacts", "deals", "contact_companies"}


@pytest.mark.parametrize("mutate,key,words", [
    (lambda d: d["streams"]["account"].update(paginatr={"type": "next_url"}), "streams.account.paginatr", "did you mean 'paginator'"),
    (lambda d: d["connection"]["auth_methods"]["refresh_token"].update(type="oauth3"), "connection.auth_methods.refresh_token.type", "oauth2_refresh_token"),
    (lambda d: d["streams"]["account"]["paginator"].update(type="scroll"), "streams.account.paginator.type", "next_url"),
    (lambda d: d["client"]["errors"][0].update(action="panic"), "client.errors.0.action", "refresh_and_retry"),
])
def test_a_bad_spec_fails_naming_the_file_and_key(tmp_path: Path, mutate, key, words):
    data = yaml.safe_load((Path(load_system_spec("salesforce").source_file)).read_text())
    data.pop("_soql")
    mutate(data)
    path = tmp_path / "salesforce" / "spec.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as e:
        load_spec_file(path)
    assert e.value.file == str(path)
    assert e.value.key == key
    assert words in str(e.value)


def _spec(paginator: dict, *, selector="data", request=None) -> SystemSpec:
    return SystemSpec.model_validate({
        "system": "demo", "connection": {"base_url": "https://api.example.com",
                                         "auth_methods": {"token": {"type": "bearer", "secrets": ["api_key"]}}},
        "streams": {"items": {"request": request or {"path": "/v1/items"}, "record_selector": selector,
                              "paginator": paginator, "primary_key": "id", "fields": ["id", "name"]}}})


def _read(spec: SystemSpec) -> list:
    with RestClient(spec, connection="demo", auth_method="token", secrets={"api_key": "sk_test_123"},
                    sleep=lambda s: None) as c:
        return [r for p in read_stream(c, spec.stream("items"), fields=[FieldInfo("id"), FieldInfo("name")], now=NOW)
                for r in p.records.column("_source_id").to_pylist()]


def test_starting_after_paginator_stripe_style():
    data = [{"id": f"cus_{i}", "name": f"n{i}"} for i in range(5)]

    def handler(request: httpx.Request) -> httpx.Response:
        after = request.url.params.get("starting_after")
        start = 0 if after is None else [d["id"] for d in data].index(after) + 1
        chunk = data[start:start + 2]
        return httpx.Response(200, json={"object": "list", "data": chunk, "has_more": start + 2 < len(data), "url": "/v1/items"})

    with respx.mock as router:
        route = router.get(url__startswith="https://api.example.com/v1/items").mock(side_effect=handler)
        got = _read(_spec({"type": "starting_after", "param": "starting_after", "next_path": "id", "has_more_path": "has_more"}))
        assert route.calls[0].request.headers["Authorization"] == "Bearer sk_test_123"
    assert got == [d["id"] for d in data]


@pytest.mark.parametrize("kind", ["page", "offset"])
def test_page_and_offset_paginators(kind):
    data = [{"id": i, "name": f"n{i}"} for i in range(7)]

    def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get(kind, "1" if kind == "page" else "0"))
        size = int(request.url.params["per_page"])
        start = (n - 1) * size if kind == "page" else n
        return httpx.Response(200, json={"data": data[start:start + size]})

    with respx.mock as router:
        router.get(url__startswith="https://api.example.com/v1/items").mock(side_effect=handler)
        got = _read(_spec({"type": kind, "param": kind, "page_size_param": "per_page", "page_size": 3,
                           "start": 1 if kind == "page" else 0}))
    assert got == [str(i) for i in range(7)]


def test_link_header_paginator():
    pages = {None: ([{"id": 1, "name": "a"}], '<https://api.example.com/v1/items?page=2>; rel="next"'),
             "2": ([{"id": 2, "name": "b"}], '<https://api.example.com/v1/items?page=3>; rel="next"'),
             "3": ([{"id": 3, "name": "c"}], None)}

    def handler(request: httpx.Request) -> httpx.Response:
        recs, link = pages[request.url.params.get("page")]
        return httpx.Response(200, json=recs, headers={"Link": link} if link else {})

    with respx.mock as router:
        router.get(url__startswith="https://api.example.com/v1/items").mock(side_effect=handler)
        got = _read(_spec({"type": "link_header"}, selector=""))
    assert got == ["1", "2", "3"]


@pytest.mark.parametrize("where", ["in_process", "loopback"])
def test_host_map_sends_vendor_hosts_to_a_fake_with_the_host_header_kept(where):
    app = FastAPI()
    hosts = []

    @app.post("/services/oauth2/token")
    async def token(request: Request):
        hosts.append(request_host(request.headers))
        return {"access_token": "tok", "instance_url": "https://acme.my.salesforce.com", "id": "x",
                "token_type": "Bearer", "issued_at": "1", "signature": "s"}

    @app.get("/services/data/v62.0/limits")
    async def limits(request: Request):
        hosts.append(request_host(request.headers))
        return {"DailyApiRequests": {"Max": 5000, "Remaining": 4990}}

    def sync(transport, base):
        with RestClient(load_system_spec("salesforce"), connection="sf_sandbox", auth_method="refresh_token",
                        secrets=SF_SECRETS, environment="sandbox", transport=transport,
                        host_map={"test.salesforce.com": base, "acme.my.salesforce.com": base}) as c:
            assert c.send(c.spec.connection.test_request).json()["DailyApiRequests"]["Max"] == 5000

    if where == "in_process":
        sync(asgi_transport(app), "http://fake")
    else:
        with serve_on_loopback(app) as server:
            sync(None, server.url)
    assert hosts == ["test.salesforce.com", "acme.my.salesforce.com"]


def test_bulk_export_for_a_large_first_sync():
    """Bulk API 2.0 query: create (queryAll), poll until JobComplete, CSV results paged by the
    Sforce-Locator header; chosen when the COUNT() estimate passes the row threshold."""
    org = SfOrg(page_size=2000)
    for i in range(5):
        org.add(f"001{i}", NOW - timedelta(hours=5 - i))
    org.add("001D", NOW - timedelta(hours=2, minutes=30), IsDeleted=True)
    states = iter(["UploadComplete", "InProgress", "JobComplete"])
    sleeps = []

    def results(request: httpx.Request) -> httpx.Response:
        loc = request.url.params.get("locator")
        rows = org.records[:3] if loc is None else org.records[3:]
        csv = "\"Id\",\"Name\",\"SystemModstamp\",\"IsDeleted\"\n" + "".join(
            f"\"{r['Id']}\",\"{r['Name']}\",\"{r['SystemModstamp']}\",\"{str(r['IsDeleted']).lower()}\"\n" for r in rows)
        return httpx.Response(200, text=csv, headers={"Content-Type": "text/csv", "Sforce-NumberOfRecords": str(len(rows)),
                                                      "Sforce-Locator": "MTAwMDA" if loc is None else "null"})

    spec = load_system_spec("salesforce")
    account = spec.stream("account")
    account = account.model_copy(update={"spec": account.spec.model_copy(update={
        "export": account.spec.export.model_copy(update={"row_threshold": 3})})})
    with respx.mock(assert_all_called=False) as router:
        mount_salesforce(router, org)
        create = router.post(f"{SF_INSTANCE}{API}/jobs/query").mock(return_value=httpx.Response(200, json={
            "id": "750R0000000zlh9IAA", "operation": "queryAll", "object": "Account", "state": "UploadComplete",
            "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": 62.0, "lineEnding": "LF", "columnDelimiter": "COMMA"}))
        router.get(f"{SF_INSTANCE}{API}/jobs/query/750R0000000zlh9IAA").mock(
            side_effect=lambda r: httpx.Response(200, json={"id": "750R0000000zlh9IAA", "state": next(states)}))
        router.get(url__startswith=f"{SF_INSTANCE}{API}/jobs/query/750R0000000zlh9IAA/results").mock(side_effect=results)
        with RestClient(spec, connection="sf", auth_method="refresh_token", secrets=SF_SECRETS,
                        sleep=sleeps.append, now=lambda: NOW.timestamp()) as c:
            pages = list(read_stream(c, account, fields=discover_fields(c, account), now=NOW))
        job = create.calls[0].request.content.decode()
    assert '"operation":"queryAll"' in job.replace(" ", "") and "ORDER BY" not in job
    assert [p.records.column("_source_id").to_pylist() for p in pages] == [["0010", "0011", "0012"], ["0013", "0014"]]
    assert [p.deleted_ids for p in pages] == [[], ["001D"]]
    assert pages[0].state is None  # unordered rows: only the last page offers a state
    assert pages[-1].state.cursor == iso_sf(NOW - timedelta(hours=1)) and pages[-1].state.pks == ("0014",)
    assert sleeps == [5.0, 5.0]


def test_deleted_records_endpoint_reports_deletes_over_the_window():
    """Salesforce getDeleted: GET /sobjects/{T}/deleted/?start=&end= ->
    {deletedRecords: [{id, deletedDate}], earliestDateAvailable, latestDateCovered}."""
    from gs_assets.connectors.rest_api.spec import RequestSpec
    from gs_assets.connectors.rest_api.sync import CursorState

    org = SfOrg(page_size=10)
    org.add("001A", NOW - timedelta(minutes=20))
    spec = load_system_spec("salesforce")
    account = spec.stream("account")
    deletes = account.spec.deletes.model_copy(update={
        "deleted_request": RequestSpec(path="/services/data/{api_version}/sobjects/{object}/deleted/",
                                       params={"start": "{start}", "end": "{end}"}),
        "deleted_selector": "deletedRecords"})
    account = account.model_copy(update={"spec": account.spec.model_copy(update={"deletes": deletes})})
    state = CursorState(iso_sf(NOW - timedelta(minutes=30)), ("001Z",))
    with respx.mock(assert_all_called=False) as router:
        mount_salesforce(router, org)
        route = router.get(url__startswith=f"{SF_INSTANCE}{API}/sobjects/Account/deleted/").mock(return_value=httpx.Response(200, json={
            "deletedRecords": [{"id": "001X", "deletedDate": "2026-11-30T11:40:00.000+0000"}],
            "earliestDateAvailable": "2026-11-15T00:00:00.000+0000", "latestDateCovered": "2026-11-30T11:59:00.000+0000"}))
        with RestClient(spec, connection="sf", auth_method="refresh_token", secrets=SF_SECRETS,
                        now=lambda: NOW.timestamp()) as c:
            pages = list(read_stream(c, account, fields=discover_fields(c, account), state=state, now=NOW))
        params = route.calls[0].request.url.params
    assert (params["start"], params["end"]) == ("2026-11-30T11:25:00Z", "2026-11-30T11:59:00Z")
    assert pages[-1].deleted_ids == ["001X"] and pages[-1].records.num_rows == 0
    assert pages[-1].state == pages[-2].state == CursorState(iso_sf(NOW - timedelta(minutes=20)), ("001A",))
