"""State and fault plan of the fake Dataverse (Dynamics 365) environment: one org, its tenant and
app registrations, the accounts / contacts / systemusers tables, tokens and the service protection
counters.

Everything that depends on time reads `org.clock` (harness.Clock). `create` / `update` stamp
`modifiedon` with the clock's now at *second* precision, as Dataverse renders it, so records changed
in one bulk edit share a `modifiedon` (ties) as they do in a real import. There is no deleted-records
feed in the plain Web API: `delete` removes the row (the API then simply stops returning it).
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from gs_assets.connectors.rest_api.fakes.harness import Clock

LOGIN_HOST = "login.microsoftonline.com"
API_PATH = "/api/data/v9.2"
TOKEN_LIFETIME_S = 3599          # what Microsoft identity platform returns as expires_in
MAX_PAGE_SIZE = 5000             # Dataverse's largest page (and the default without odata.maxpagesize)
# Service protection API limits: per user, 6000 requests in a sliding 300-second window.
REQUESTS_PER_WINDOW = 6000
WINDOW_S = 300

# entity set -> (primary key, the columns a record has; lookups as _<name>_value)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "accounts": ("accountid", ("accountid", "name", "accountnumber", "industrycode", "numberofemployees", "revenue",
                               "websiteurl", "address1_country", "_parentaccountid_value", "_ownerid_value",
                               "statecode", "createdon", "modifiedon")),
    "contacts": ("contactid", ("contactid", "firstname", "lastname", "fullname", "emailaddress1", "telephone1",
                               "jobtitle", "address1_city", "address1_country", "_parentcustomerid_value",
                               "_ownerid_value", "statecode", "createdon", "modifiedon")),
    "systemusers": ("systemuserid", ("systemuserid", "fullname", "firstname", "lastname", "internalemailaddress",
                                     "title", "isdisabled", "accessmode", "applicationid", "createdon", "modifiedon")),
}
ENTITY_TYPE = {"accounts": "account", "contacts": "contact", "systemusers": "systemuser"}
# which table a lookup column points at (parentcustomerid: account or contact, told by the annotation)
LOOKUP_TARGETS = {"_parentaccountid_value": ("accounts",), "_ownerid_value": ("systemusers",),
                  "_parentcustomerid_value": ("accounts", "contacts")}


def odata_time(when: datetime) -> str:
    """Dataverse's DateTimeOffset rendering: UTC, whole seconds, `Z`."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class App:
    client_id: str
    client_secret: str


@dataclass
class Token:
    value: str
    audience: str
    expires_at: datetime


@dataclass
class FaultPlan:
    """Faults a test schedules, counted in API calls (the token endpoint is not one)."""
    # (after this many API calls, answer this many with 429, Retry-After seconds)
    throttle: list[list] = field(default_factory=list)
    expire_tokens_after_calls: Optional[int] = None     # every access token becomes invalid (401) then
    server_errors: list[list] = field(default_factory=list)  # (after calls, how many, status)
    drift: list[tuple] = field(default_factory=list)           # (after calls, callable): e.g. the clock jumps


@dataclass
class DataverseOrg:
    clock: Clock = field(default_factory=Clock)
    org: str = "contoso"                               # https://contoso.crm.dynamics.com
    tenant_id: str = "8f1b6c5e-0d7a-4b7e-9a51-2c1e3f4d5a6b"
    enforce_limits: bool = True
    apps: dict[str, App] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {t: {} for t in TABLES})
    faults: FaultPlan = field(default_factory=FaultPlan)
    calls: int = 0
    token_requests: int = 0
    request_log: list = field(default_factory=list)  # sliding window of API call times (service protection)
    organization_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _version: Any = field(default_factory=lambda: itertools.count(1_000_000))

    @property
    def host(self) -> str:
        return f"{self.org}.crm.dynamics.com"

    @property
    def base_url(self) -> str:
        return f"https://{self.host}{API_PATH}"

    # -------------------------------------------------------------------------- app registrations
    def add_app(self, client_id: Optional[str] = None, client_secret: Optional[str] = None) -> tuple[str, str]:
        """An app registration with an application user in the org: (client id, client secret)."""
        app = App(client_id or str(uuid.uuid4()), client_secret or secrets.token_urlsafe(30))
        self.apps[app.client_id] = app
        return app.client_id, app.client_secret

    def issue_token(self, audience: str) -> Token:
        tok = Token("eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(40), audience,
                    self.clock.now() + timedelta(seconds=TOKEN_LIFETIME_S))
        self.tokens[tok.value] = tok
        return tok

    def expire_tokens(self) -> None:
        for t in self.tokens.values():
            t.expires_at = min(t.expires_at, self.clock.now())

    # -------------------------------------------------------------------------- rows
    def _stamp(self, at: Optional[datetime]) -> str:
        return odata_time(at or self.clock.now())

    def create(self, table: str, values: dict[str, Any], at: Optional[datetime] = None,
               id: Optional[str] = None) -> dict[str, Any]:
        pk, cols = TABLES[table]
        unknown = set(values) - set(cols)
        if unknown:
            raise KeyError(f"{table} has no column(s) {sorted(unknown)}")
        stamp = self._stamp(at)
        row = {c: None for c in cols}
        row.update({"statecode": 0} if "statecode" in cols else {})
        row.update(values)
        row[pk] = id or str(uuid.uuid4())
        row["createdon"] = row["createdon"] or stamp
        row["modifiedon"] = stamp
        if table == "contacts" and row.get("fullname") is None:
            row["fullname"] = " ".join(x for x in (row.get("firstname"), row.get("lastname")) if x)
        row["@version"] = next(self._version)
        self.rows[table][row[pk]] = row
        return row

    def update(self, table: str, id: str, values: dict[str, Any], at: Optional[datetime] = None) -> dict[str, Any]:
        row = self.rows[table][id]
        row.update(values)
        row["modifiedon"] = self._stamp(at)
        row["@version"] = next(self._version)
        return row

    def delete(self, table: str, id: str) -> None:
        """A hard delete: the Web API stops returning the row; nothing lists it as deleted."""
        del self.rows[table][id]

    def lookup_table(self, column: str, value: Optional[str]) -> Optional[str]:
        for t in LOOKUP_TARGETS.get(column, ()):
            if value in self.rows[t]:
                return ENTITY_TYPE[t]
        return None

    # -------------------------------------------------------------------------- demo data
    def seed_demo(self, companies: int = 6, contacts_per_company: int = 2) -> dict[str, int]:
        t0 = self.clock.now() - timedelta(days=1)
        stamp = iter(t0 + timedelta(minutes=i) for i in range(100_000))
        users = [self.create("systemusers", {"fullname": f"Csm {i}", "firstname": "Csm", "lastname": str(i),
                                             "internalemailaddress": f"csm{i}@contoso.example", "title": "CSM",
                                             "isdisabled": False, "accessmode": 0}, at=next(stamp))
                 for i in range(3)]
        for i in range(companies):
            a = self.create("accounts", {"name": f"Account {i}", "accountnumber": f"A-{i:04d}", "numberofemployees": 10 + i,
                                         "revenue": 1000.0 * (i + 1), "websiteurl": f"https://a{i}.example",
                                         "address1_country": "Germany",
                                         "_ownerid_value": users[i % 3]["systemuserid"]}, at=next(stamp))
            for j in range(contacts_per_company):
                self.create("contacts", {"firstname": f"P{i}", "lastname": f"L{j}", "emailaddress1": f"p{i}.{j}@a{i}.example",
                                         "jobtitle": "CTO", "address1_city": "Berlin", "address1_country": "Germany",
                                         "_parentcustomerid_value": a["accountid"]}, at=next(stamp))
        return {t: len(r) for t, r in self.rows.items()}
