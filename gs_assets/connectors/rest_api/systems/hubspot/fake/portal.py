"""State and fault plan of the fake HubSpot portal (one account): CRM objects, owners, associations,
OAuth apps and tokens, rate-limit counters, and the faults a test schedules.

Everything that depends on time reads `portal.clock` (harness.Clock), never the wall clock, so a test
decides when an OAuth token expires, when a rate-limit window rolls over and when a write becomes
searchable. Helpers (`create`, `update`, `bulk_update`, `archive`, `add_property`, ...) are how tests
and the demo change the portal between (or during) syncs; they stamp the object's last-modified
property with `clock.now()` in milliseconds, as HubSpot does, so ties are as easy to make as in a
real bulk edit.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Optional

from gs_assets.connectors.rest_api.fakes.harness import Clock

HOST = "api.hubapi.com"
OBJECT_TYPES = ("contacts", "companies", "deals")
# HubSpot accepts the plural name, the singular and the object type id in CRM paths.
TYPE_ALIASES = {
    "contacts": "contacts", "contact": "contacts", "0-1": "contacts",
    "companies": "companies", "company": "companies", "0-2": "companies",
    "deals": "deals", "deal": "deals", "0-3": "deals",
}
LAST_MODIFIED = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate", "deals": "hs_lastmodifieddate"}
# What the list/read endpoints return when the request names no properties (HubSpot's defaults).
DEFAULT_PROPERTIES = {
    "contacts": ["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
    "companies": ["createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"],
    "deals": ["amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
              "hs_object_id", "pipeline"],
}
ID_BASE = {"contacts": 10_000_000, "companies": 20_000_000, "deals": 30_000_000}
# v4 association type ids (HUBSPOT_DEFINED): primary and unlabeled, per direction.
ASSOC_TYPES = {
    ("contacts", "companies"): (1, 279),
    ("companies", "contacts"): (2, 280),
}


def to_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def iso_ms(ms: int) -> str:
    """HubSpot's datetime rendering: ISO 8601 UTC with milliseconds, e.g. 2026-11-30T12:00:00.000Z."""
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass
class PropertyDef:
    name: str
    label: str
    type: str = "string"          # string | number | date | datetime | enumeration | bool
    fieldType: str = "text"       # text | number | date | select | booleancheckbox | calculation_equation ...
    groupName: str = "info"
    hubspotDefined: bool = False
    options: list = field(default_factory=list)

    def as_json(self) -> dict:
        return {"name": self.name, "label": self.label, "type": self.type, "fieldType": self.fieldType,
                "groupName": self.groupName, "description": "", "options": list(self.options),
                "displayOrder": -1, "calculated": False, "externalOptions": False, "hasUniqueValue": False,
                "hidden": False, "hubspotDefined": self.hubspotDefined, "formField": not self.hubspotDefined,
                "modificationMetadata": {"archivable": not self.hubspotDefined, "readOnlyDefinition": self.hubspotDefined,
                                         "readOnlyValue": self.hubspotDefined}}


def _p(name, label, type_="string", field_type="text", hs=True, options=()):
    return PropertyDef(name, label, type_, field_type, "info", hs, [dict(o) for o in options])


BASE_PROPERTIES: dict[str, list[PropertyDef]] = {
    "contacts": [
        _p("hs_object_id", "Record ID", "number", "number"),
        _p("createdate", "Create Date", "datetime", "date"),
        _p("lastmodifieddate", "Last Modified Date", "datetime", "date"),
        _p("email", "Email"), _p("firstname", "First Name"), _p("lastname", "Last Name"),
        _p("phone", "Phone Number", field_type="phonenumber"), _p("city", "City"), _p("country", "Country/Region"),
        _p("jobtitle", "Job Title"), _p("hubspot_owner_id", "Contact owner", "enumeration", "select"),
        _p("associatedcompanyid", "Primary Associated Company ID", "number", "number"),
    ],
    "companies": [
        _p("hs_object_id", "Record ID", "number", "number"),
        _p("createdate", "Create Date", "datetime", "date"),
        _p("hs_lastmodifieddate", "Last Modified Date", "datetime", "date"),
        _p("name", "Company name"), _p("domain", "Company Domain Name"), _p("website", "Website URL"),
        _p("industry", "Industry", "enumeration", "select"),
        _p("numberofemployees", "Number of Employees", "number", "number"),
        _p("annualrevenue", "Annual Revenue", "number", "number"), _p("country", "Country/Region"),
        _p("hubspot_owner_id", "Company owner", "enumeration", "select"),
    ],
    "deals": [
        _p("hs_object_id", "Record ID", "number", "number"),
        _p("createdate", "Create Date", "datetime", "date"),
        _p("hs_lastmodifieddate", "Last Modified Date", "datetime", "date"),
        _p("dealname", "Deal Name"), _p("amount", "Amount", "number", "number"),
        _p("closedate", "Close Date", "datetime", "date"), _p("dealstage", "Deal Stage", "enumeration", "radio"),
        _p("pipeline", "Pipeline", "enumeration", "select"),
        _p("hubspot_owner_id", "Deal owner", "enumeration", "select"),
    ],
}


@dataclass
class Record:
    type: str
    id: str
    properties: dict[str, Optional[str]]
    created_ms: int
    updated_ms: int
    archived: bool = False
    archived_ms: Optional[int] = None
    # What search sees: the version the index holds, and versions still waiting for the index.
    indexed: Optional[dict] = None
    pending: list = field(default_factory=list)   # [(visible_at: datetime, snapshot: dict)]

    def snapshot(self) -> dict:
        return {"properties": dict(self.properties), "created_ms": self.created_ms, "updated_ms": self.updated_ms,
                "archived": self.archived, "archived_ms": self.archived_ms}


@dataclass
class Owner:
    id: str
    email: str
    firstName: str
    lastName: str
    userId: int
    created_ms: int
    updated_ms: int
    archived: bool = False

    def as_json(self) -> dict:
        return {"id": self.id, "email": self.email, "firstName": self.firstName, "lastName": self.lastName,
                "userId": self.userId, "createdAt": iso_ms(self.created_ms), "updatedAt": iso_ms(self.updated_ms),
                "archived": self.archived, "teams": []}


@dataclass
class AccessToken:
    token: str
    client_id: str
    expires_at: datetime


@dataclass
class RateLimits:
    """HubSpot's per-portal budgets (shared by every app of the account). Defaults: Free/Starter.
    `burst_limit` calls per `burst_window_s` seconds (a rolling window on the clock; the 429 says
    "secondly"), `daily_limit` calls per UTC day (private apps; OAuth calls carry no daily headers),
    and the search endpoints' own `search_per_second` budget."""

    burst_limit: int = 100
    burst_window_s: int = 10
    daily_limit: int = 250_000
    search_per_second: int = 5
    enforce: bool = True


@dataclass
class FaultPlan:
    """What goes wrong, keyed on the clock or on the portal's call count (`portal.calls`, every API
    request except the token endpoint, counted on arrival)."""

    oauth_expire_at: Optional[datetime] = None          # every OAuth access token issued so far expires then
    oauth_expire_after_calls: Optional[int] = None      # ... or once this many calls have been served
    rate_limit_after_calls: Optional[int] = None        # then the burst (SECONDLY) or DAILY budget is used up
    rate_limit_policy: str = "SECONDLY"
    server_errors: list = field(default_factory=list)   # [[after_calls, remaining, status]]
    drift: list = field(default_factory=list)           # [(after_calls, fn)] property changes between calls
    index_lag: timedelta = field(default_factory=timedelta)  # a write becomes searchable this long after it


class HubSpotPortal:
    """One fake HubSpot account. Construct, seed (`seed_demo` or the helpers), then `create_app(portal)`."""

    def __init__(self, clock: Optional[Clock] = None, *, rate_limits: Optional[RateLimits] = None,
                 faults: Optional[FaultPlan] = None, token_lifetime_s: int = 1800,
                 search_tie_order: str = "shuffled", portal_id: int = 4_041_990):
        self.clock = clock or Clock()
        self.rate_limits = rate_limits or RateLimits()
        self.faults = faults or FaultPlan()
        self.token_lifetime_s = token_lifetime_s
        # HubSpot does not document the order of results that tie on the sort property; "shuffled"
        # (deterministic, not by id) keeps clients from relying on an order HubSpot never promised.
        self.search_tie_order = search_tie_order
        self.portal_id = portal_id
        self.properties: dict[str, dict[str, PropertyDef]] = {
            t: {p.name: PropertyDef(**vars(p)) for p in BASE_PROPERTIES[t]} for t in OBJECT_TYPES}
        self.records: dict[str, dict[str, Record]] = {t: {} for t in OBJECT_TYPES}
        self.owners: dict[str, Owner] = {}
        # contact id -> {company id: primary?}
        self.assoc: dict[str, dict[str, bool]] = {}
        self._ids = {t: itertools.count(ID_BASE[t] + 1) for t in OBJECT_TYPES}
        self._owner_ids = itertools.count(70_000_001)
        # auth
        self.private_app_tokens: set[str] = set()
        self.oauth_clients: dict[str, str] = {}        # client_id -> client_secret
        self.refresh_tokens: dict[str, str] = {}       # refresh token -> client_id
        self.revoked_refresh_tokens: set[str] = set()
        self.auth_codes: dict[str, str] = {}           # code -> client_id
        self.access_tokens: dict[str, AccessToken] = {}
        # counters
        self.calls = 0
        self.calls_by_path: dict[str, int] = {}
        self.burst_log: list[datetime] = []
        self.search_log: list[datetime] = []
        self.daily_used = 0
        self.daily_day = self.clock.now().date()
        self.token_requests = 0
        self.forced_limit: Optional[tuple[str, datetime]] = None   # (policy, until), set by the fault plan

    # ---- auth setup --------------------------------------------------------------------------------
    def add_private_app(self, token: Optional[str] = None) -> str:
        token = token or f"pat-na1-{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(12)}"
        self.private_app_tokens.add(token)
        return token

    def add_oauth_app(self, client_id: Optional[str] = None, client_secret: Optional[str] = None) -> tuple[str, str, str]:
        """An OAuth app installed in this portal: returns (client_id, client_secret, refresh_token)."""
        client_id = client_id or secrets.token_hex(16)
        client_secret = client_secret or secrets.token_hex(16)
        self.oauth_clients[client_id] = client_secret
        refresh = f"na1-{secrets.token_hex(2)}-{secrets.token_hex(16)}"
        self.refresh_tokens[refresh] = client_id
        return client_id, client_secret, refresh

    def add_auth_code(self, client_id: str) -> str:
        code = secrets.token_hex(12)
        self.auth_codes[code] = client_id
        return code

    def revoke_refresh_token(self, refresh_token: str) -> None:
        self.refresh_tokens.pop(refresh_token, None)
        self.revoked_refresh_tokens.add(refresh_token)

    def issue_access_token(self, client_id: str) -> AccessToken:
        tok = AccessToken(f"CN{secrets.token_hex(24)}", client_id,
                          self.clock.now() + timedelta(seconds=self.token_lifetime_s))
        self.access_tokens[tok.token] = tok
        return tok

    def expire_oauth_tokens(self) -> None:
        now = self.clock.now()
        for tok in self.access_tokens.values():
            tok.expires_at = min(tok.expires_at, now)

    # ---- faults --------------------------------------------------------------------------------------
    def fail_next(self, k: int, status: int = 502, after_calls: int = 0) -> None:
        """The next k API calls (after `after_calls` more succeed) answer `status` (502/503/504)."""
        self.faults.server_errors.append([self.calls + after_calls, k, status])

    def schedule_property_change(self, after_calls: int, object_type: str, *, add: Optional[PropertyDef] = None,
                                 remove: Optional[str] = None, value: Any = None) -> None:
        """Between calls: once `after_calls` API calls have been served, the next call sees a property
        added (set to `value` on every record, if given) and/or one removed."""
        def change():
            if add is not None:
                self.add_property(object_type, add, value=value)
            if remove is not None:
                self.remove_property(object_type, remove)
        self.faults.drift.append((after_calls, change))

    # ---- schema ----------------------------------------------------------------------------------------
    def add_property(self, object_type: str, prop: PropertyDef | str, value: Any = None) -> PropertyDef:
        """Schema drift: a new property (optionally set on every live record, without touching the
        last-modified stamp, as a backfilled calculated property would)."""
        object_type = TYPE_ALIASES[object_type]
        if isinstance(prop, str):
            prop = PropertyDef(prop, prop.replace("_", " ").title())
        self.properties[object_type][prop.name] = prop
        if value is not None:
            for rec in self.records[object_type].values():
                rec.properties[prop.name] = None if value is None else str(value)
                if rec.indexed is not None:
                    rec.indexed["properties"][prop.name] = rec.properties[prop.name]
        return prop

    def remove_property(self, object_type: str, name: str) -> None:
        object_type = TYPE_ALIASES[object_type]
        self.properties[object_type].pop(name, None)
        for rec in self.records[object_type].values():
            rec.properties.pop(name, None)
            if rec.indexed is not None:
                rec.indexed["properties"].pop(name, None)
            for _, snap in rec.pending:
                snap["properties"].pop(name, None)

    # ---- records ----------------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return to_ms(self.clock.now())

    def _index(self, rec: Record) -> None:
        snap = rec.snapshot()
        if self.faults.index_lag <= timedelta(0):
            rec.indexed, rec.pending = snap, []
        else:
            rec.pending.append((self.clock.now() + self.faults.index_lag, snap))

    def refresh_index(self) -> None:
        now = self.clock.now()
        for recs in self.records.values():
            for rec in recs.values():
                if rec.pending and rec.pending[0][0] <= now:
                    keep = []
                    for visible_at, snap in rec.pending:
                        if visible_at <= now:
                            rec.indexed = snap
                        else:
                            keep.append((visible_at, snap))
                    rec.pending = keep

    def _clean(self, object_type: str, props: dict) -> dict:
        unknown = set(props) - set(self.properties[object_type])
        if unknown:
            raise KeyError(f"{object_type} has no propert{'y' if len(unknown) == 1 else 'ies'} {sorted(unknown)}")
        return {k: (None if v is None else str(v)) for k, v in props.items()}

    def create(self, object_type: str, properties: Optional[dict] = None, *, at_ms: Optional[int] = None,
               record_id: Optional[str] = None) -> Record:
        object_type = TYPE_ALIASES[object_type]
        ms = self.now_ms() if at_ms is None else at_ms
        rid = record_id or str(next(self._ids[object_type]))
        props = self._clean(object_type, dict(properties or {}))
        props.update({"hs_object_id": rid, "createdate": iso_ms(ms), LAST_MODIFIED[object_type]: iso_ms(ms)})
        rec = Record(object_type, rid, props, ms, ms)
        self.records[object_type][rid] = rec
        self._index(rec)
        return rec

    def create_many(self, object_type: str, rows: Iterable[dict], *, at_ms: Optional[int] = None) -> list[Record]:
        """Bulk create: every record gets the same timestamp (one import)."""
        ms = self.now_ms() if at_ms is None else at_ms
        return [self.create(object_type, row, at_ms=ms) for row in rows]

    def update(self, object_type: str, record_id: str, properties: dict, *, at_ms: Optional[int] = None) -> Record:
        object_type = TYPE_ALIASES[object_type]
        rec = self.records[object_type][str(record_id)]
        ms = self.now_ms() if at_ms is None else at_ms
        rec.properties.update(self._clean(object_type, properties))
        rec.updated_ms = ms
        rec.properties[LAST_MODIFIED[object_type]] = iso_ms(ms)
        self._index(rec)
        return rec

    def bulk_update(self, object_type: str, record_ids: Iterable[str], properties: dict, *,
                    at_ms: Optional[int] = None) -> int:
        """One bulk edit: every record gets the same last-modified timestamp (the tie problem)."""
        ms = self.now_ms() if at_ms is None else at_ms
        n = 0
        for rid in record_ids:
            self.update(object_type, rid, properties, at_ms=ms)
            n += 1
        return n

    def archive(self, object_type: str, record_id: str) -> Record:
        """Delete (archive) a record: it leaves the default list and search, and appears in
        `archived=true` lists with `archivedAt`."""
        object_type = TYPE_ALIASES[object_type]
        rec = self.records[object_type][str(record_id)]
        ms = self.now_ms()
        rec.archived, rec.archived_ms, rec.updated_ms = True, ms, ms
        self._index(rec)
        return rec

    def associate(self, contact_id: str, company_id: str, primary: bool = True) -> None:
        contact_id, company_id = str(contact_id), str(company_id)
        assert contact_id in self.records["contacts"] and company_id in self.records["companies"]
        links = self.assoc.setdefault(contact_id, {})
        if primary:
            for other in links:
                links[other] = False
            contact = self.records["contacts"][contact_id]
            contact.properties["associatedcompanyid"] = company_id
            self._index(contact)  # search sees the property's new value too (not only list/read)
        links[company_id] = primary

    def dissociate(self, contact_id: str, company_id: str) -> None:
        self.assoc.get(str(contact_id), {}).pop(str(company_id), None)

    def associations(self, from_type: str, from_id: str, to_type: str) -> list[tuple[str, bool]]:
        """[(to id, primary)] for contacts<->companies, in id order."""
        from_type, to_type, from_id = TYPE_ALIASES[from_type], TYPE_ALIASES[to_type], str(from_id)
        if (from_type, to_type) == ("contacts", "companies"):
            pairs = list(self.assoc.get(from_id, {}).items())
        elif (from_type, to_type) == ("companies", "contacts"):
            pairs = [(c, links[from_id]) for c, links in self.assoc.items() if from_id in links]
        else:
            return []
        live = self.records[to_type]
        return sorted(((i, p) for i, p in pairs if i in live and not live[i].archived), key=lambda x: int(x[0]))

    def add_owner(self, email: str, first_name: str, last_name: str, *, archived: bool = False) -> Owner:
        ms = self.now_ms()
        oid = str(next(self._owner_ids))
        owner = Owner(oid, email, first_name, last_name, int(oid) + 1_000_000, ms, ms, archived)
        self.owners[oid] = owner
        return owner

    # ---- demo ------------------------------------------------------------------------------------------
    def seed_demo(self, companies: int = 120, contacts_per_company: int = 4, deals: int = 60) -> dict[str, int]:
        """Deterministic demo data that overlaps the CSV demo (gs_assets/demo/sample_data.py): owners
        are the CSV demo's users (same emails), companies carry the CSV demo's names and website
        domains (and `gsdp_account_id`, the CSV account id), so lookups across channels find them.
        Creation times spread over the 30 days before the clock's now. Returns counts."""
        import random
        first = ["Ava", "Liam", "Noah", "Emma", "Olivia", "Mia", "Lucas", "Ethan", "Sofia", "Amir", "Priya", "Chen",
                 "Yuki", "Mateo", "Zara", "Omar", "Ines", "Jonas", "Freya", "Ravi", "Lena", "Kofi", "Hana", "Diego"]
        last = ["Smith", "Garcia", "Chen", "Patel", "Kowalski", "Okafor", "Nakamura", "Silva", "Muller", "Haddad",
                "Johansson", "Rossi", "Dubois", "Kim", "Novak", "Fischer", "Lopez", "Singh", "Brown", "Ivanova"]
        words = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Soylent", "Hooli",
                 "Vandelay", "Wonka", "Pied Piper", "Massive", "Dynamic", "Blue Sun", "Oscorp", "Aperture",
                 "Gringotts", "Monarch", "Nakatomi", "Virtucon", "Zorg", "Prestige", "Sirius", "Spectre", "Duff",
                 "Krusty", "Ollivander"]
        suffix = ["Inc", "LLC", "Group", "Systems", "Labs", "Holdings", "Corp", "Partners", "Analytics", "Health"]
        industries = ["Software", "Financial Services", "Healthcare", "Manufacturing", "Retail", "Education", "Media",
                      "Telecommunications", "Energy", "Government"]
        countries = ["United States", "Germany", "United Kingdom", "India", "Japan", "Brazil", "France", "Canada"]
        rnd = random.Random(13)
        self.add_property("companies", PropertyDef("gsdp_account_id", "GSDP Account ID"))
        start = self.clock.now() - timedelta(days=30)
        tick = itertools.count()

        def stamp() -> int:  # strictly increasing, some minutes apart, all before now
            return to_ms(start + timedelta(minutes=7 * next(tick)))

        owners = []
        for i in range(50):  # the CSV demo's users: same names and emails
            fn, ln = first[i % len(first)], last[(i * 7) % len(last)]
            owners.append(self.add_owner(f"{fn.lower()}.{ln.lower()}{i}@gsdp-demo.io", fn, ln))
        owners[-1].archived = True  # a deactivated user: only in archived=true
        csm_owners = owners[8:-1]
        company_ids = []
        for i in range(companies):
            word = words[i % len(words)]
            rec = self.create("companies", {
                "name": f"{word} {suffix[(i // len(words)) % len(suffix)]} {i:03d}",
                "domain": f"{word.lower().replace(' ', '')}{i}.com",
                "website": f"https://www.{word.lower().replace(' ', '')}{i}.com",
                "industry": industries[i % len(industries)], "numberofemployees": rnd.randrange(10, 20000),
                "annualrevenue": rnd.randrange(5_000, 2_000_000, 500), "country": rnd.choice(countries),
                "hubspot_owner_id": rnd.choice(csm_owners).id, "gsdp_account_id": f"A{i:05d}"}, at_ms=stamp())
            company_ids.append(rec.id)
        n_contacts = 0
        for ci, cid in enumerate(company_ids):
            for j in range(contacts_per_company):
                fn, ln = rnd.choice(first), rnd.choice(last)
                rec = self.create("contacts", {
                    "email": f"{fn.lower()}.{ln.lower()}.hs{n_contacts}@customer{ci:04d}.com",
                    "firstname": fn, "lastname": ln, "phone": f"+1-555-{rnd.randrange(1000, 9999)}",
                    "city": rnd.choice(["Austin", "Berlin", "Pune", "Osaka", "Leeds"]), "country": rnd.choice(countries),
                    "jobtitle": rnd.choice(["VP Operations", "Director IT", "Analyst", "CFO", "Engineer"]),
                    "hubspot_owner_id": rnd.choice(csm_owners).id}, at_ms=stamp())
                self.associate(rec.id, cid, primary=True)
                if j == 0 and ci + 1 < len(company_ids):
                    self.associate(rec.id, company_ids[ci + 1], primary=False)
                n_contacts += 1
        for k in range(deals):
            self.create("deals", {
                "dealname": f"Renewal {k:03d}", "amount": rnd.randrange(1_000, 250_000, 100),
                "closedate": iso_ms(to_ms(self.clock.now() + timedelta(days=rnd.randrange(1, 200)))),
                "dealstage": rnd.choice(["appointmentscheduled", "qualifiedtobuy", "closedwon", "closedlost"]),
                "pipeline": "default", "hubspot_owner_id": rnd.choice(csm_owners).id}, at_ms=stamp())
        # two archived records, so deletes have something to show
        self.archive("contacts", next(iter(self.records["contacts"])))
        self.archive("companies", company_ids[-1])
        return {"owners": len(owners), "companies": len(company_ids), "contacts": n_contacts, "deals": deals}
