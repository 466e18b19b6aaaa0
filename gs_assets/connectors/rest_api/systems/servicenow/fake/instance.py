"""The fake ServiceNow instance's state: tables of records, users and OAuth clients, rate-limit
rules and a fault plan. Time comes only from the clock; `sys_updated_on` is stored as ServiceNow
stores it (UTC, 'YYYY-MM-DD HH:MM:SS', one-second resolution), so many records share one second.
"""

from __future__ import annotations

import hashlib
import secrets as _secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from gs_assets.connectors.rest_api.fakes.harness import Clock

TABLES = ("incident", "sys_user", "core_company", "customer_contact", "sys_audit_delete")
# reference fields per table: field -> referenced table (display value = that record's display field)
REFERENCES = {
    "incident": {"caller_id": "customer_contact", "company": "core_company", "assigned_to": "sys_user"},
    "customer_contact": {"account": "core_company"},
    "sys_user": {"manager": "sys_user"},
}
DISPLAY_FIELD = {"incident": "number", "sys_user": "name", "core_company": "name", "customer_contact": "name",
                 "sys_audit_delete": "documentkey"}
# choice fields: value -> label (display value)
CHOICES = {
    "incident": {
        "state": {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed", "8": "Canceled"},
        "priority": {"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low", "5": "5 - Planning"},
    },
}


def sn_time(when: datetime) -> str:
    """ServiceNow's stored date-time: UTC, second resolution."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def parse_sn_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)


def new_sys_id(seed: str) -> str:
    return hashlib.md5(seed.encode()).hexdigest()  # 32 hex characters, as ServiceNow's sys_id


@dataclass
class RateLimitRule:
    """A REST API rate limit rule (System Web Services > Rate Limit Rules): `limit` requests per
    hour per user, counted from the top of the hour."""
    limit: int
    sys_id: str = "c2a4e5f0d7a01010aaaa0000bbbbcccc"


@dataclass
class FaultPlan:
    # the next N table requests are answered 429 (as if the rule's hourly budget were spent)
    rate_limit_next: int = 0
    retry_after_s: int = 30
    # table requests answered so far, and what happens right after the n-th (e.g. a record updated by
    # someone while a sync pages through the table: it leaves the window and later offsets shift)
    calls: int = 0
    after_call: dict = field(default_factory=dict)


@dataclass
class Instance:
    clock: Clock = field(default_factory=Clock)
    name: str = "acme"
    host_suffix: str = ".service-now.com"
    rate_limit: Optional[RateLimitRule] = None
    max_limit: int = 10_000  # glide.rest.query.max_records style cap per request
    faults: FaultPlan = field(default_factory=FaultPlan)
    tables: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {t: {} for t in TABLES})
    users: dict[str, str] = field(default_factory=dict)  # user_name -> password (web-service users)
    oauth_clients: dict[str, str] = field(default_factory=dict)  # client_id -> client_secret
    client_credentials_enabled: bool = True
    token_lifetime_s: int = 1800
    tokens: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # access token -> (user, expires)
    token_requests: int = 0
    hour_counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (user, hour) -> requests
    _n: int = 0

    @property
    def host(self) -> str:
        return f"{self.name}{self.host_suffix}"

    # ---------------------------------------------------------------- credentials
    def add_user_credentials(self, user_name: str = "gsdp.integration", password: str = "Secr3t!pass") -> tuple[str, str]:
        self.users[user_name] = password
        return user_name, password

    def add_oauth_client(self) -> tuple[str, str]:
        cid, secret = _secrets.token_hex(16), _secrets.token_urlsafe(12)
        self.oauth_clients[cid] = secret
        return cid, secret

    def issue_token(self, user: str) -> tuple[str, int]:
        tok = _secrets.token_urlsafe(24)
        self.tokens[tok] = (user, self.clock.now() + timedelta(seconds=self.token_lifetime_s))
        return tok, self.token_lifetime_s

    def token_user(self, token: str) -> Optional[str]:
        hit = self.tokens.get(token)
        if hit is None or self.clock.now() >= hit[1]:
            return None
        return hit[0]

    # ---------------------------------------------------------------- records
    def put(self, table: str, sys_id: Optional[str] = None, *, at: Optional[datetime] = None, **values: Any) -> dict:
        """Insert or update a record; sys_updated_on = `at` (default now), stored at second resolution."""
        rows = self.tables[table]
        when = sn_time(at or self.clock.now())
        if sys_id is None:
            self._n += 1
            sys_id = new_sys_id(f"{table}:{self._n}:{when}")
        rec = rows.get(sys_id)
        if rec is None:
            rec = {"sys_id": sys_id, "sys_created_on": when, "sys_mod_count": "0"}
            if table == "incident" and "number" not in values:
                values["number"] = f"INC{1000000 + len(rows) + 1:07d}"
            rows[sys_id] = rec
        else:
            rec["sys_mod_count"] = str(int(rec["sys_mod_count"]) + 1)
        rec.update({k: (None if v is None else str(v) if not isinstance(v, bool) else ("true" if v else "false"))
                    for k, v in values.items()})
        rec["sys_updated_on"] = when
        if table in ("sys_user", "customer_contact") and ("first_name" in values or "last_name" in values):
            rec["name"] = " ".join(x for x in (rec.get("first_name"), rec.get("last_name")) if x)
        return rec

    def delete(self, table: str, sys_id: str, *, at: Optional[datetime] = None) -> None:
        """A hard delete: the record goes, a sys_audit_delete row says which (tablename, documentkey)."""
        rec = self.tables[table].pop(sys_id)
        self.put("sys_audit_delete", None, at=at, tablename=table, documentkey=sys_id,
                 display_value=rec.get(DISPLAY_FIELD.get(table, "sys_id")))

    def seed(self, companies: int = 3, contacts: int = 6, users: int = 3, incidents: int = 12,
             at: Optional[datetime] = None) -> dict[str, list[dict]]:
        """A small world: customer companies (and one vendor), their contacts, agents, incidents."""
        at = at or self.clock.now() - timedelta(days=2)
        out: dict[str, list[dict]] = {"core_company": [], "customer_contact": [], "sys_user": [], "incident": []}
        for i in range(1, users + 1):
            out["sys_user"].append(self.put("sys_user", at=at + timedelta(minutes=i), user_name=f"agent{i}",
                                            first_name=f"Agent{i}", last_name="Support", email=f"agent{i}@acme-it.com",
                                            title="Support Engineer", active=True))
        for i in range(1, companies + 1):
            out["core_company"].append(self.put("core_company", at=at + timedelta(minutes=10 + i), name=f"Customer {i} Inc",
                                                customer=True, vendor=False, website=f"https://customer{i}.example",
                                                country="USA", num_employees=100 * i))
        self.put("core_company", at=at + timedelta(minutes=19), name="Hardware Vendor", customer=False, vendor=True)
        for i in range(1, contacts + 1):
            co = out["core_company"][(i - 1) % companies]
            out["customer_contact"].append(self.put(
                "customer_contact", at=at + timedelta(minutes=20 + i), first_name=f"Contact{i}", last_name="Person",
                email=f"contact{i}@customer{(i - 1) % companies + 1}.example", phone=f"+1 555 01{i:02d}",
                city="Austin", country="USA", account=co["sys_id"]))
        states = ["1", "2", "3", "6", "7"]
        types = ["email", "phone", "self-service", "chat"]
        for i in range(1, incidents + 1):
            contact = out["customer_contact"][(i - 1) % contacts]
            out["incident"].append(self.put(
                "incident", at=at + timedelta(hours=1, minutes=i), short_description=f"Issue {i}",
                state=states[i % len(states)], priority=str(1 + i % 4), contact_type=types[i % len(types)],
                caller_id=contact["sys_id"], company=contact["account"],
                assigned_to=out["sys_user"][(i - 1) % users]["sys_id"],
                opened_at=sn_time(at + timedelta(hours=1, minutes=i)),
                closed_at=sn_time(at + timedelta(hours=3)) if states[i % len(states)] == "7" else None))
        return out
