"""The fake org's state (schema, records, delete log, connected apps, sessions) and its fault plan.

Tests build a `SalesforceOrg`, change it with the helpers below (insert / update / delete, late
commits, schema drift, revoked tokens) and serve it with `create_app(org)`. Time comes from the
org's `Clock`; record stamps are whole seconds (Salesforce's precision), so bulk writes tie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Optional

from gs_assets.connectors.rest_api.fakes.harness import Clock

LOGIN_HOSTS = {"production": "login.salesforce.com", "sandbox": "test.salesforce.com"}
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"   # ASCII order: ids sort as numbers
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def id18(id15: str) -> str:
    """Salesforce's case-insensitive 18-character form of a 15-character id (3 checksum characters)."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for i, c in enumerate(id15[chunk * 5: chunk * 5 + 5]):
            if "A" <= c <= "Z":
                bits |= 1 << i
        suffix += _SUFFIX[bits]
    return id15 + suffix


def _b62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(reversed(out))


def _locked(fn):
    """Org changes made from a test or demo thread wait for the request being served (and v.v.)."""
    def wrapper(self, *a, **kw):
        with self.lock:
            return fn(self, *a, **kw)
    wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
    return wrapper


def second(t: datetime) -> datetime:
    return t.astimezone(timezone.utc).replace(microsecond=0)


def sf_datetime(t: Optional[datetime]) -> Optional[str]:
    """2026-11-30T12:00:00.000+0000, as the REST API writes datetimes."""
    if t is None:
        return None
    t = t.astimezone(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000"


@dataclass
class FieldDef:
    name: str
    type: str = "string"            # id, boolean, string, textarea, picklist, reference, datetime, date,
    label: str = ""                 # double, currency, int, percent, email, url, phone
    nillable: bool = True
    updateable: bool = True
    createable: bool = True
    length: int = 0
    reference_to: list[str] = field(default_factory=list)
    picklist: list[str] = field(default_factory=list)

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")

    def describe(self) -> dict:
        soap = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "datetime": "xsd:dateTime",
                "date": "xsd:date", "double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double",
                "int": "xsd:int"}.get(self.type, "xsd:string")
        return {"name": self.name, "type": self.type, "label": self.label or self.name, "nillable": self.nillable,
                "updateable": self.updateable, "createable": self.createable, "custom": self.custom,
                "length": self.length, "soapType": soap, "referenceTo": list(self.reference_to),
                "picklistValues": [{"value": v, "label": v, "active": True, "defaultValue": False}
                                   for v in self.picklist],
                "filterable": True, "sortable": self.type != "textarea", "calculated": False,
                "unique": self.type == "id", "idLookup": self.type == "id" or self.name in ("Username", "Email")}


def _system_fields(with_is_deleted: bool = True) -> list[FieldDef]:
    f = [FieldDef("Id", "id", "Record ID", nillable=False, updateable=False, createable=False, length=18)]
    if with_is_deleted:
        f.append(FieldDef("IsDeleted", "boolean", "Deleted", nillable=False, updateable=False, createable=False))
    f += [FieldDef("CreatedDate", "datetime", "Created Date", nillable=False, updateable=False, createable=False),
          FieldDef("CreatedById", "reference", "Created By ID", nillable=False, updateable=False, createable=False,
                   length=18, reference_to=["User"]),
          FieldDef("LastModifiedDate", "datetime", "Last Modified Date", nillable=False, updateable=False,
                   createable=False),
          FieldDef("LastModifiedById", "reference", "Last Modified By ID", nillable=False, updateable=False,
                   createable=False, length=18, reference_to=["User"]),
          FieldDef("SystemModstamp", "datetime", "System Modstamp", nillable=False, updateable=False,
                   createable=False)]
    return f


def _owner() -> FieldDef:
    return FieldDef("OwnerId", "reference", "Owner ID", nillable=False, length=18, reference_to=["User"])


STANDARD_OBJECTS: dict[str, tuple[str, str, bool, list[FieldDef]]] = {
    # name: (label, key prefix, has IsDeleted, fields beyond the system ones)
    "Account": ("Account", "001", True, [
        FieldDef("Name", "string", "Account Name", nillable=False, length=255),
        FieldDef("ParentId", "reference", "Parent Account ID", length=18, reference_to=["Account"]),
        _owner(),
        FieldDef("Type", "picklist", "Account Type", length=255,
                 picklist=["Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other"]),
        FieldDef("Industry", "picklist", "Industry", length=255),
        FieldDef("Website", "url", "Website", length=255),
        FieldDef("Phone", "phone", "Account Phone", length=40),
        FieldDef("BillingCity", "string", "Billing City", length=40),
        FieldDef("BillingCountry", "string", "Billing Country", length=80),
        FieldDef("AnnualRevenue", "currency", "Annual Revenue"),
        FieldDef("NumberOfEmployees", "int", "Employees"),
    ]),
    "Contact": ("Contact", "003", True, [
        FieldDef("AccountId", "reference", "Account ID", length=18, reference_to=["Account"]),
        FieldDef("FirstName", "string", "First Name", length=40),
        FieldDef("LastName", "string", "Last Name", nillable=False, length=80),
        FieldDef("Name", "string", "Full Name", nillable=False, updateable=False, createable=False, length=121),
        FieldDef("Email", "email", "Email", length=80),
        FieldDef("Phone", "phone", "Business Phone", length=40),
        FieldDef("Title", "string", "Title", length=128),
        _owner(),
    ]),
    "User": ("User", "005", False, [
        FieldDef("Username", "string", "Username", nillable=False, length=80),
        FieldDef("FirstName", "string", "First Name", length=40),
        FieldDef("LastName", "string", "Last Name", nillable=False, length=80),
        FieldDef("Name", "string", "Full Name", nillable=False, updateable=False, createable=False, length=121),
        FieldDef("Email", "email", "Email", nillable=False, length=128),
        FieldDef("Title", "string", "Title", length=80),
        FieldDef("IsActive", "boolean", "Active", nillable=False),
        FieldDef("ManagerId", "reference", "Manager ID", length=18, reference_to=["User"]),
    ]),
    "Opportunity": ("Opportunity", "006", True, [
        FieldDef("Name", "string", "Name", nillable=False, length=120),
        FieldDef("AccountId", "reference", "Account ID", length=18, reference_to=["Account"]),
        FieldDef("StageName", "picklist", "Stage", nillable=False, length=255,
                 picklist=["Prospecting", "Qualification", "Negotiation/Review", "Closed Won", "Closed Lost"]),
        FieldDef("Amount", "currency", "Amount"),
        FieldDef("CloseDate", "date", "Close Date", nillable=False),
        FieldDef("IsClosed", "boolean", "Closed", nillable=False, updateable=False, createable=False),
        FieldDef("IsWon", "boolean", "Won", nillable=False, updateable=False, createable=False),
        _owner(),
    ]),
}


@dataclass
class SObject:
    name: str
    label: str
    key_prefix: str
    fields: dict[str, FieldDef]
    records: dict[str, dict] = field(default_factory=dict)
    delete_log: list[tuple[str, datetime]] = field(default_factory=list)   # (id, deletedDate), for getDeleted

    @property
    def custom(self) -> bool:
        return self.name.endswith("__c")

    def field(self, name: str) -> FieldDef:
        if name in self.fields:
            return self.fields[name]
        for f in self.fields.values():
            if f.name.lower() == name.lower():
                return f
        raise KeyError(f"{self.name} has no field {name!r} (fields: {', '.join(self.fields)})")


@dataclass
class ConnectedApp:
    """A connected app (External Client App) of the org: its consumer key/secret, the certificate
    JWT assertions are checked against, the client-credentials Run As user, the users pre-approved
    for the JWT flow (None: every active user)."""
    client_id: str
    client_secret: str
    public_key_pem: Optional[str] = None
    run_as_username: Optional[str] = None
    approved_usernames: Optional[set[str]] = None
    require_secret_for_refresh: bool = True


@dataclass
class Session:
    token: str
    username: str
    client_id: str
    issued_at: datetime
    last_used: datetime
    refresh_token: Optional[str] = None


@dataclass
class RefreshGrant:
    client_id: str
    username: str


@dataclass
class FaultPlan:
    """What goes wrong, and when. Counts are of API requests (/services/data/...) the org has seen."""
    server_errors_next: int = 0                       # the next k API requests get `server_error_status`
    server_error_status: int = 503
    expire_sessions_after_calls: Optional[int] = None  # after N more served calls, every session ends (one-shot)
    expire_sessions_at: Optional[datetime] = None      # at this clock time, every session issued before ends
    rotate_refresh_tokens: bool = False                # refresh responses carry a new refresh_token; the old dies
    hooks: dict[int, list[Callable[["SalesforceOrg"], Any]]] = field(default_factory=dict)

    def fail_next(self, k: int, status: int = 503) -> None:
        self.server_errors_next, self.server_error_status = k, status

    def at_request(self, n: int, fn: Callable[["SalesforceOrg"], Any]) -> None:
        """Run fn(org) just before the org serves its n-th API request (1-based, counting every request)."""
        self.hooks.setdefault(n, []).append(fn)


@dataclass
class PendingWrite:
    """A write whose transaction has not committed: invisible, but it holds getUpdated's
    latestDateCovered back to its stamp (an in-flight transaction)."""
    org: "SalesforceOrg"
    sobject: str
    record_id: Optional[str]
    values: dict
    stamped: datetime

    def commit(self) -> str:
        with self.org.lock:
            return self._commit()

    def _commit(self) -> str:
        self.org.pending.remove(self)
        if self.record_id is None:
            return self.org.insert(self.sobject, self.values, stamped=self.stamped)
        self.org.update(self.sobject, self.record_id, self.values, stamped=self.stamped)
        return self.record_id


@dataclass
class SalesforceOrg:
    clock: Clock = field(default_factory=Clock)
    environment: str = "production"                  # production | sandbox: which login host issues tokens
    my_domain: Optional[str] = None                  # "acme" -> acme.my.salesforce.com ("acme--uat.sandbox" works too)
    instance_host: Optional[str] = None              # default: the My Domain host, else na1.salesforce.com
    name: str = "GSDP Fake Org"
    org_number: int = 1
    session_timeout: timedelta = timedelta(hours=2)  # sessions end after this much inactivity
    api_limit: int = 100_000                         # DailyApiRequests Max (rolling 24 hours)
    api_version_min: float = 31.0
    api_version_max: float = 66.0
    bulk_polls_to_complete: int = 2                  # a Bulk query job completes at its n-th status poll...
    bulk_seconds_to_complete: Optional[float] = None  # ...or once this much clock time has passed
    bulk_default_max_records: int = 50_000
    bulk_rejects_order_by_limit: bool = True          # docs differ by version (see the package docstring)
    query_cursor_idle_timeout: timedelta = timedelta(minutes=15)
    plan: FaultPlan = field(default_factory=FaultPlan)

    def __post_init__(self) -> None:
        if self.environment not in LOGIN_HOSTS:
            raise ValueError(f"environment must be production or sandbox, not {self.environment!r}")
        self._counter = 0
        self.lock = threading.RLock()
        self.org_id = id18("00D" + "Hs" + "0" + _b62(self.org_number, 9))
        self.objects: dict[str, SObject] = {}
        self._custom_prefixes = 0
        for name, (label, prefix, with_del, extra) in STANDARD_OBJECTS.items():
            self.objects[name] = SObject(name, label, prefix,
                                         {f.name: f for f in _system_fields(with_del) + [FieldDef(**vars(x)) for x in extra]})
        self.apps: dict[str, ConnectedApp] = {}
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        self.sessions: dict[str, Session] = {}
        self.pending: list[PendingWrite] = []
        self.api_calls: deque[datetime] = deque()      # served API calls, for the rolling 24-hour usage
        self.requests_seen = 0
        self.served_calls = 0
        self.cursors: dict[str, dict] = {}
        self.bulk_jobs: dict[str, dict] = {}
        self.integration_user_id = self.insert("User", {
            "Username": f"integration@{(self.my_domain or 'fake').split('.')[0]}.example", "FirstName": "Integration",
            "LastName": "User", "Email": "integration@example.com", "IsActive": True})

    # ---- hosts -------------------------------------------------------------------------------
    @property
    def login_host(self) -> str:
        return LOGIN_HOSTS[self.environment]

    @property
    def my_domain_host(self) -> Optional[str]:
        return f"{self.my_domain}.my.salesforce.com" if self.my_domain else None

    @property
    def api_host(self) -> str:
        return self.instance_host or self.my_domain_host or "na1.salesforce.com"

    @property
    def instance_url(self) -> str:
        return f"https://{self.api_host}"

    def token_hosts(self) -> set[str]:
        return {h for h in (self.login_host, self.my_domain_host) if h}

    # ---- ids and time ------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        self._counter += 1
        return id18(prefix + "Hs" + "0" + _b62(self._counter, 9))

    def now(self) -> datetime:
        return self.clock.now().astimezone(timezone.utc)

    def stamp(self) -> datetime:
        return second(self.now())

    # ---- schema ------------------------------------------------------------------------------
    def sobject(self, name: str) -> SObject:
        for n, o in self.objects.items():
            if n.lower() == name.lower():
                return o
        raise KeyError(f"the fake org has no object {name!r} (objects: {', '.join(self.objects)})")

    @_locked
    def add_object(self, name: str, label: Optional[str] = None, fields: Iterable[FieldDef] = ()) -> SObject:
        """A custom object X__c with the standard fields every custom object has (Name, OwnerId, ...)."""
        if not name.endswith("__c"):
            raise ValueError(f"custom object names end in __c: {name!r}")
        prefix = "a0" + _B62[self._custom_prefixes]
        self._custom_prefixes += 1
        base = _system_fields(True) + [FieldDef("Name", "string", f"{label or name} Name", nillable=False, length=80),
                                       _owner()]
        obj = SObject(name, label or name[:-3].replace("_", " "), prefix, {f.name: f for f in base})
        self.objects[name] = obj
        for f in fields:
            self.add_field(name, f)
        return obj

    @_locked
    def add_field(self, sobject: str, f: FieldDef | str, type: str = "string", **kw) -> FieldDef:
        """Schema drift: a new (custom) field appears; existing records have it null."""
        if isinstance(f, str):
            f = FieldDef(f, type, **kw)
        obj = self.sobject(sobject)
        obj.fields[f.name] = f
        return f

    @_locked
    def remove_field(self, sobject: str, name: str) -> None:
        """Schema drift: a field is deleted; its values go with it, queries naming it fail."""
        obj = self.sobject(sobject)
        f = obj.field(name)
        del obj.fields[f.name]
        for r in obj.records.values():
            r.pop(f.name, None)

    # ---- records -----------------------------------------------------------------------------
    def _coerce(self, obj: SObject, values: dict) -> dict:
        out = {}
        for k, v in values.items():
            f = obj.field(k)
            if v is not None and f.type == "datetime" and isinstance(v, str):
                from .soql import parse_datetime_literal
                v = parse_datetime_literal(v)
            elif v is not None and f.type == "date" and isinstance(v, str):
                v = date.fromisoformat(v)
            out[f.name] = v
        return out

    def _derive(self, obj: SObject, r: dict) -> None:
        if obj.name in ("Contact", "User"):
            r["Name"] = " ".join(x for x in (r.get("FirstName"), r.get("LastName")) if x)
        if obj.name == "Opportunity":
            stage = r.get("StageName") or ""
            r["IsClosed"] = stage.startswith("Closed")
            r["IsWon"] = stage == "Closed Won"

    @_locked
    def insert(self, sobject: str, values: Optional[dict] = None, *, stamped: Optional[datetime] = None,
               **fields) -> str:
        """A new record, visible now, stamped now (or `stamped`, truncated to the second); returns its Id."""
        obj = self.sobject(sobject)
        vals = self._coerce(obj, {**(values or {}), **fields})
        t = second(stamped) if stamped else self.stamp()
        rid = self.new_id(obj.key_prefix)
        who = getattr(self, "integration_user_id", None) or rid
        r = {f: None for f in obj.fields}
        r.update({"Id": rid, "CreatedDate": t, "LastModifiedDate": t, "SystemModstamp": t,
                  "CreatedById": who, "LastModifiedById": who})
        if "IsDeleted" in obj.fields:
            r["IsDeleted"] = False
        if "OwnerId" in obj.fields:
            r["OwnerId"] = who
        if obj.name == "User":
            r["IsActive"] = True
        r.update(vals)
        self._derive(obj, r)
        obj.records[rid] = r
        return rid

    def insert_many(self, sobject: str, rows: Iterable[dict], *, stamped: Optional[datetime] = None) -> list[str]:
        return [self.insert(sobject, row, stamped=stamped) for row in rows]

    @_locked
    def update(self, sobject: str, record_id: str, values: Optional[dict] = None, *,
               stamped: Optional[datetime] = None, system: bool = False, **fields) -> None:
        """Change a record. SystemModstamp (and LastModifiedDate, unless `system=True`: a system process
        such as a recalculation touches only SystemModstamp) become now, or `stamped`."""
        obj = self.sobject(sobject)
        r = self.record(sobject, record_id)
        r.update(self._coerce(obj, {**(values or {}), **fields}))
        self._derive(obj, r)
        t = second(stamped) if stamped else self.stamp()
        r["SystemModstamp"] = t
        if not system:
            r["LastModifiedDate"] = t
            r["LastModifiedById"] = self.integration_user_id

    @_locked
    def commit_late(self, sobject: str, record: dict | str | None = None, *, stamped: datetime, **fields) -> str:
        """A write that becomes visible now but carries an older SystemModstamp (its transaction
        started at `stamped` and committed only now). `record` is an Id (update) or values (insert);
        `commit_late(record_id, stamped=...)` finds the object from the Id's key prefix."""
        if record is None:
            sobject, record = self.object_of(sobject), sobject
        if isinstance(record, str):
            self.update(sobject, record, fields, stamped=stamped)
            return record
        return self.insert(sobject, {**record, **fields}, stamped=stamped)

    @_locked
    def begin_write(self, sobject: str, record: dict | str, *, stamped: Optional[datetime] = None,
                    **fields) -> PendingWrite:
        """Open a transaction stamped now (or `stamped`): invisible until `.commit()`."""
        rid, vals = (record, fields) if isinstance(record, str) else (None, {**record, **fields})
        p = PendingWrite(self, sobject, rid, vals, second(stamped) if stamped else self.stamp())
        self.pending.append(p)
        return p

    @_locked
    def delete(self, sobject: str, record_id: str, *, hard: bool = False) -> None:
        """Move a record to the recycle bin (IsDeleted=true, seen by queryAll) and log the delete for
        getDeleted; `hard=True` also empties it from the recycle bin (queryAll no longer sees it)."""
        obj = self.sobject(sobject)
        if "IsDeleted" not in obj.fields:
            raise ValueError(f"{obj.name} records cannot be deleted in Salesforce (deactivate them instead)")
        r = self.record(sobject, record_id)
        t = self.stamp()
        r["IsDeleted"] = True
        r["SystemModstamp"] = t
        r["LastModifiedDate"] = t
        obj.delete_log.append((r["Id"], t))
        if hard:
            del obj.records[r["Id"]]

    def object_of(self, record_id: str) -> str:
        """The object an Id belongs to, from its 3-character key prefix."""
        for o in self.objects.values():
            if record_id.startswith(o.key_prefix):
                return o.name
        raise KeyError(f"no object has the key prefix of {record_id!r}")

    def record(self, sobject: str, record_id: str) -> dict:
        obj = self.sobject(sobject)
        key = record_id if len(record_id) == 18 else id18(record_id)
        if key not in obj.records:
            raise KeyError(f"no {obj.name} record {record_id}")
        return obj.records[key]

    def records(self, sobject: str, include_deleted: bool = False) -> list[dict]:
        return [r for r in self.sobject(sobject).records.values() if include_deleted or not r.get("IsDeleted")]

    # ---- apps, tokens, sessions ---------------------------------------------------------------
    def register_app(self, client_id: str, client_secret: str, **kw) -> ConnectedApp:
        app = ConnectedApp(client_id, client_secret, **kw)
        self.apps[client_id] = app
        return app

    @_locked
    def issue_refresh_token(self, client_id: str, username: Optional[str] = None) -> str:
        """What a user's one-time web authorization leaves behind: a refresh token for this app."""
        if client_id not in self.apps:
            raise KeyError(f"no connected app {client_id!r}")
        token = "5Aep861" + secrets.token_urlsafe(48)
        self.refresh_tokens[token] = RefreshGrant(client_id, username or self.user_by_username(None)["Username"])
        return token

    @_locked
    def revoke_refresh_token(self, token: str) -> None:
        """The user (or an admin) revoked the app's access: the refresh token and its sessions die."""
        self.refresh_tokens.pop(token, None)
        for t in [t for t, s in self.sessions.items() if s.refresh_token == token]:
            del self.sessions[t]

    @_locked
    def expire_sessions(self) -> None:
        self.sessions.clear()

    def user_by_username(self, username: Optional[str]) -> Optional[dict]:
        users = self.sobject("User").records.values()
        if username is None:
            return self.sobject("User").records[self.integration_user_id]
        return next((u for u in users if (u.get("Username") or "").lower() == username.lower()), None)

    def new_session(self, client_id: str, username: str, refresh_token: Optional[str] = None) -> Session:
        token = self.org_id[:15] + "!AQ" + secrets.token_urlsafe(72)
        now = self.now()
        s = Session(token, username, client_id, now, now, refresh_token)
        self.sessions[token] = s
        return s

    def token_signature(self, client_secret: str, id_url: str, issued_at: str) -> str:
        return base64.b64encode(hmac.new(client_secret.encode(), (id_url + issued_at).encode(),
                                         hashlib.sha256).digest()).decode()

    # ---- API usage ----------------------------------------------------------------------------
    def api_usage(self) -> int:
        cutoff = self.now() - timedelta(hours=24)
        while self.api_calls and self.api_calls[0] <= cutoff:
            self.api_calls.popleft()
        return len(self.api_calls)

    @_locked
    def use_api_calls(self, n: int) -> None:
        """Count n calls made now (by other integrations sharing the org's daily allocation)."""
        now = self.now()
        self.api_calls.extend([now] * n)

    def limit_after(self, n: int) -> None:
        """REQUEST_LIMIT_EXCEEDED once n more calls have been served."""
        self.use_api_calls(max(0, self.api_limit - self.api_usage() - n))

    # ---- demo data -----------------------------------------------------------------------------
    @_locked
    def seed_demo(self, accounts: int = 60, users: int = 12, contacts_per_account: int = 3,
                  opportunities_per_account: int = 1, with_custom: bool = True) -> dict[str, int]:
        """Deterministic demo data whose names and external ids overlap the CSV demo's (companies
        "<Word> <Suffix> <nnn>" with External_Id__c "A<nnnnn>", users with the CSV demo's emails), so
        lookups across channels match."""
        words = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Soylent",
                 "Hooli", "Vandelay", "Wonka", "Pied Piper", "Massive", "Dynamic", "Blue Sun", "Oscorp", "Aperture",
                 "Gringotts", "Monarch", "Nakatomi", "Virtucon", "Zorg", "Prestige", "Sirius", "Spectre", "Duff",
                 "Krusty", "Ollivander"]
        suffix = ["Inc", "LLC", "Group", "Systems", "Labs", "Holdings", "Corp", "Partners", "Analytics", "Health"]
        first = ["Ava", "Liam", "Noah", "Emma", "Olivia", "Mia", "Lucas", "Ethan", "Sofia", "Amir", "Priya", "Chen",
                 "Yuki", "Mateo", "Zara", "Omar", "Ines", "Jonas", "Freya", "Ravi", "Lena", "Kofi", "Hana", "Diego"]
        last = ["Smith", "Garcia", "Chen", "Patel", "Kowalski", "Okafor", "Nakamura", "Silva", "Muller", "Haddad",
                "Johansson", "Rossi", "Dubois", "Kim", "Novak", "Fischer", "Lopez", "Singh", "Brown", "Ivanova"]
        industries = ["Software", "Financial Services", "Healthcare", "Manufacturing", "Retail", "Education"]
        if with_custom and "External_Id__c" not in self.sobject("Account").fields:
            self.add_field("Account", "External_Id__c", "string", label="External ID", length=20)
            self.add_field("Account", "Tier__c", "picklist", label="Tier", picklist=["Enterprise", "Mid-Market", "SMB"])
        user_ids = []
        for i in range(users):
            fn, ln = first[i % len(first)], last[(i * 7) % len(last)]
            user_ids.append(self.insert("User", Username=f"{fn.lower()}.{ln.lower()}{i}@gsdp-demo.io.sf",
                                        FirstName=fn, LastName=ln, Email=f"{fn.lower()}.{ln.lower()}{i}@gsdp-demo.io",
                                        Title="CS Manager" if i < 3 else "CSM"))
        account_ids = []
        for i in range(accounts):
            vals = {"Name": f"{words[i % len(words)]} {suffix[(i // len(words)) % len(suffix)]} {i:03d}",
                    "Industry": industries[i % len(industries)], "Type": "Customer - Direct",
                    "Website": f"https://www.{words[i % len(words)].lower().replace(' ', '')}{i}.com",
                    "AnnualRevenue": float(50_000 + 7_919 * i), "NumberOfEmployees": 10 + 37 * i,
                    "OwnerId": user_ids[i % len(user_ids)] if user_ids else None,
                    "ParentId": account_ids[i % 5] if i >= accounts - max(1, accounts // 10) and i > 5 else None}
            if with_custom:
                vals["External_Id__c"] = f"A{i:05d}"
                vals["Tier__c"] = ["Enterprise", "Mid-Market", "SMB"][i % 3]
            account_ids.append(self.insert("Account", vals))
        n_contacts = 0
        for i, aid in enumerate(account_ids):
            for j in range(contacts_per_account):
                k = i * contacts_per_account + j
                fn, ln = first[k % len(first)], last[(k * 3) % len(last)]
                self.insert("Contact", AccountId=aid, FirstName=fn, LastName=ln,
                            Email=f"{fn.lower()}.{ln.lower()}.{k}@example.com", Title="Champion" if j == 0 else "User",
                            OwnerId=user_ids[i % len(user_ids)] if user_ids else None)
                n_contacts += 1
            for j in range(opportunities_per_account):
                self.insert("Opportunity", Name=f"Renewal {i:03d}-{j}", AccountId=aid, Amount=float(10_000 + 100 * i),
                            StageName=["Prospecting", "Negotiation/Review", "Closed Won"][(i + j) % 3],
                            CloseDate=(self.now().date() + timedelta(days=30 + i)).isoformat())
        return {"User": len(user_ids) + 1, "Account": len(account_ids), "Contact": n_contacts,
                "Opportunity": accounts * opportunities_per_account}
