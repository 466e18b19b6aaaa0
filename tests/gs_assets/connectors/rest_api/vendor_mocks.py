"""respx routes serving the vendors' *documented* bodies, headers and status codes
(../shared/reference/api-facts.md; Salesforce REST / OAuth docs, HubSpot CRM v3 docs).

Small in-memory behaviour (SOQL bounds, search filters) so the engine's requests are answered the
way the vendor would; the faithful FastAPI fakes live in systems/<system>/fake.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional
from urllib.parse import parse_qs

import httpx
import respx

SF_LOGIN = "https://login.salesforce.com"
SF_INSTANCE = "https://na1.salesforce.com"
API = "/services/data/v62.0"

# Secrets used by the tests: the log/exception checks look for each of these.
SF_SECRETS = {"client_id": "3MVG9-client-id-SECRETISH", "client_secret": "sf-client-secret-XYZ123",
              "refresh_token": "5Aep861-refresh-token-ABC987"}
SF_ACCESS = "00Dxx0000001gPL!AQ4AQ-access-token-DEF456"
HS_TOKEN = "pat-na1-11111111-2222-3333-4444-private-app"


def sf_token_body(access: str = SF_ACCESS, instance: str = SF_INSTANCE) -> dict:
    # Refresh-token grant response: no expires_in (Salesforce documents none in the sample).
    return {"access_token": access, "signature": "kEbGj7...=", "scope": "refresh_token api",
            "instance_url": instance, "id": "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS",
            "token_type": "Bearer", "issued_at": "1764504000000"}


def sf_error(code: str, message: str, fields: Optional[list] = None) -> list:
    return [{"message": message, "errorCode": code, "fields": fields or []}]


def iso_sf(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}+0000"


@dataclass
class SfOrg:
    """Records of one sObject; answers queryAll with SOQL bounds, ORDER BY SystemModstamp, Id, and
    `page_size`-record batches with nextRecordsUrl (Salesforce: up to 2,000)."""
    records: list[dict] = field(default_factory=list)
    page_size: int = 2
    used: int = 18
    limit: int = 5000
    queries: list[str] = field(default_factory=list)
    _cursors: dict = field(default_factory=dict)

    def headers(self) -> dict:
        self.used += 1
        return {"Sforce-Limit-Info": f"api-usage={self.used}/{self.limit}"}

    def add(self, rid: str, stamp: datetime, **extra) -> dict:
        rec = {"attributes": {"type": "Account", "url": f"{API}/sobjects/Account/{rid}"}, "Id": rid,
               "Name": f"Account {rid}", "SystemModstamp": iso_sf(stamp), "IsDeleted": False, **extra}
        self.records.append(rec)
        return rec

    def query(self, request: httpx.Request) -> httpx.Response:
        q = parse_qs(request.url.query.decode())["q"][0]
        self.queries.append(q)
        rows = list(self.records)
        m = re.search(r"SystemModstamp >= (\S+)", q)
        if m:
            lo = datetime.fromisoformat(m.group(1))
            rows = [r for r in rows if datetime.fromisoformat(r["SystemModstamp"]) >= lo]
        m = re.search(r"SystemModstamp < (\S+)", q)
        if m:
            hi = datetime.fromisoformat(m.group(1))
            rows = [r for r in rows if datetime.fromisoformat(r["SystemModstamp"]) < hi]
        if "/queryAll" not in request.url.path:
            rows = [r for r in rows if not r["IsDeleted"]]
        rows.sort(key=lambda r: (r["SystemModstamp"], r["Id"]))
        fields = [f.strip() for f in re.match(r"SELECT (.*?) FROM", q).group(1).split(",")]
        rows = [{"attributes": r["attributes"], **{f: r.get(f) for f in fields}} for r in rows]
        return self._batch(rows, 0)

    def more(self, request: httpx.Request) -> httpx.Response:
        locator = request.url.path.rsplit("/", 1)[1]
        key, start = locator.rsplit("-", 1)
        return self._batch(self._cursors[key], int(start))

    def _batch(self, rows: list, start: int) -> httpx.Response:
        key = f"01gxx{len(self._cursors):010d}"
        self._cursors[key] = rows
        chunk = rows[start:start + self.page_size]
        done = start + self.page_size >= len(rows)
        body = {"totalSize": len(rows), "done": done, "records": chunk}
        if not done:
            body["nextRecordsUrl"] = f"{API}/query/{key}-{start + self.page_size}"
        return httpx.Response(200, json=body, headers=self.headers())


def mount_salesforce(router: respx.Router, org: SfOrg, *, login: str = SF_LOGIN, instance: str = SF_INSTANCE):
    router.post(f"{login}/services/oauth2/token").mock(return_value=httpx.Response(200, json=sf_token_body(instance=instance)))
    router.get(f"{instance}{API}/sobjects/Account/describe").mock(return_value=httpx.Response(200, json={
        "name": "Account", "fields": [{"name": "Id", "type": "id"}, {"name": "Name", "type": "string"},
                                      {"name": "SystemModstamp", "type": "datetime"}, {"name": "IsDeleted", "type": "boolean"},
                                      {"name": "BillingAddress", "type": "address"}]},
        headers=org.headers()))
    router.get(url__regex=rf"{re.escape(instance)}{API}/query(All)?\?").mock(side_effect=org.query)
    router.get(url__regex=rf"{re.escape(instance)}{API}/query/01gxx").mock(side_effect=org.more)


# ------------------------------------------------------------------------------------------ HubSpot

def iso_hs(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def hs_headers(remaining: int = 249_000) -> dict:
    return {"X-HubSpot-RateLimit-Daily": "250000", "X-HubSpot-RateLimit-Daily-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Secondly": "10", "X-HubSpot-RateLimit-Secondly-Remaining": "9"}


@dataclass
class HsPortal:
    """Companies answering list (after paging, 100 per page) and search (filters, one sort, `after`
    offsets, 10,000 total results then 400, as documented)."""
    companies: list[dict] = field(default_factory=list)
    searches: list[dict] = field(default_factory=list)
    cap: int = 10_000

    def add(self, cid: int, modified: datetime, name: str = "") -> None:
        self.companies.append({"id": str(cid), "properties": {
            "hs_object_id": str(cid), "name": name or f"Company {cid}", "hs_lastmodifieddate": iso_hs(modified),
            "createdate": iso_hs(modified)}, "createdAt": iso_hs(modified), "updatedAt": iso_hs(modified),
            "archived": False})

    def search(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.searches.append(body)
        after = int(body.get("after") or 0)
        limit = int(body.get("limit") or 10)
        if after + limit > self.cap:
            return httpx.Response(400, json={
                "status": "error", "message": "There was a problem with the request.", "category": "VALIDATION_ERROR",
                "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf"}, headers=hs_headers())
        rows = list(self.companies)
        for group in body.get("filterGroups") or []:
            for f in group["filters"]:
                rows = [r for r in rows if _hs_match(r, f)]
        (sort,) = body.get("sorts") or [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
        rows.sort(key=lambda r: _hs_value(r, sort["propertyName"]))
        page = rows[after:after + limit]
        out = {"total": len(rows), "results": page}
        if after + limit < len(rows):
            out["paging"] = {"next": {"after": str(after + limit), "link": f"?after={after + limit}"}}
        return httpx.Response(200, json=out, headers=hs_headers())

    def list(self, request: httpx.Request) -> httpx.Response:
        params = parse_qs(request.url.query.decode())
        after = int(params.get("after", ["0"])[0])
        limit = int(params.get("limit", ["10"])[0])
        rows = self.companies if params.get("archived", ["false"])[0] == "false" else []
        page = rows[after:after + limit]
        out: dict = {"results": page}
        if after + limit < len(rows):
            out["paging"] = {"next": {"after": str(after + limit), "link": f"https://api.hubapi.com/crm/v3/objects/companies?after={after + limit}"}}
        return httpx.Response(200, json=out, headers=hs_headers())


_MS: dict = {}


def _hs_value(r: dict, prop: str):
    v = r["properties"].get(prop)
    if prop.endswith("lastmodifieddate"):
        if v not in _MS:
            _MS[v] = datetime.fromisoformat(v).timestamp() * 1000
        return _MS[v]
    return int(v) if str(v).isdigit() else v


def _hs_match(r: dict, f: dict) -> bool:
    v = _hs_value(r, f["propertyName"])
    want = float(f["value"]) if isinstance(v, (int, float)) else f["value"]
    return {"GTE": v >= want, "GT": v > want, "LT": v < want, "LTE": v <= want, "EQ": v == want}[f["operator"]]


def mount_hubspot(router: respx.Router, portal: HsPortal) -> None:
    router.get("https://api.hubapi.com/crm/v3/properties/companies").mock(return_value=httpx.Response(200, json={
        "results": [{"name": "name", "type": "string"}, {"name": "hs_object_id", "type": "number"},
                    {"name": "hs_lastmodifieddate", "type": "datetime"}, {"name": "createdate", "type": "datetime"}]},
        headers=hs_headers()))
    router.post("https://api.hubapi.com/crm/v3/objects/companies/search").mock(side_effect=portal.search)
    router.get(url__regex=r"https://api\.hubapi\.com/crm/v3/objects/companies(\?|$)").mock(side_effect=portal.list)


def utc(*a) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)
