"""The fake Zendesk account's state: tickets, users and organizations with their change times, the
credentials it accepts, its rate-limit window and a log of requests. Time comes only from the clock.

Every change stamps the record at the clock's second (Zendesk's timestamps have one-second
resolution): `updated_at` (ISO, seconds), and for tickets `generated_timestamp` (epoch seconds, what
the ticket export orders and filters by). Several records routinely share one second; `put(..., at=)`
writes a record stamped in the past (a change that becomes visible late).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from gs_assets.connectors.rest_api.fakes.harness import Clock

RESOURCES = ("tickets", "users", "organizations")


def iso_s(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_s(when: datetime) -> int:
    return int(when.timestamp())


@dataclass
class ZendeskAccount:
    clock: Clock = field(default_factory=Clock)
    subdomain: str = "acme"
    page_limit: int = 1000  # Zendesk: at most 1000 items per export page
    export_requests_per_minute: int = 10  # incremental exports (30 with the High Volume add-on)
    enforce_rate_limits: bool = True
    visibility_lag_seconds: int = 60  # items changed within the minute before a request are left out
    records: dict[str, dict[int, dict]] = field(default_factory=lambda: {r: {} for r in RESOURCES})
    stamps: dict[str, dict[int, int]] = field(default_factory=lambda: {r: {} for r in RESOURCES})
    api_tokens: dict[str, str] = field(default_factory=dict)  # email -> API token
    oauth_tokens: set[str] = field(default_factory=set)
    export_log: list[datetime] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # (path, query, status)
    _next_id: int = 1000

    @property
    def host(self) -> str:
        return f"{self.subdomain}.zendesk.com"

    # ------------------------------------------------------------------ credentials
    def add_api_token(self, email: str = "admin@acme.example", token: str = "zd-api-token-1") -> tuple[str, str]:
        self.api_tokens[email] = token
        return email, token

    def add_oauth_token(self, token: str = "zd-oauth-access-1") -> str:
        self.oauth_tokens.add(token)
        return token

    # ------------------------------------------------------------------ data
    def put(self, resource: str, id: Optional[int] = None, at: Optional[datetime] = None, **fields: Any) -> dict:
        """Create or change a record, stamped at `at` (default: now), to the second."""
        if id is None:
            self._next_id += 1
            id = self._next_id
        when = (at or self.clock.now()).replace(microsecond=0)
        rec = self.records[resource].get(id) or {"id": id, "url": f"https://{self.host}/api/v2/{resource}/{id}.json",
                                                  "created_at": iso_s(when)}
        rec.update(fields)
        rec["updated_at"] = iso_s(when)
        if resource == "tickets":
            rec["generated_timestamp"] = epoch_s(when)
        self.records[resource][id] = rec
        self.stamps[resource][id] = epoch_s(when)
        return rec

    def delete_ticket(self, id: int, at: Optional[datetime] = None) -> dict:
        """A deleted ticket stays in the export with status `deleted`."""
        return self.put("tickets", id, at=at, status="deleted")

    def visible(self, resource: str, now: datetime, *, exclude_deleted: bool = False) -> list[tuple[int, int, dict]]:
        """(stamp, id, record) of the items an export may show now, in (stamp, id) order."""
        horizon = epoch_s(now) - self.visibility_lag_seconds
        out = [(ts, i, self.records[resource][i]) for i, ts in self.stamps[resource].items() if ts <= horizon]
        if exclude_deleted:
            out = [x for x in out if x[2].get("status") != "deleted"]
        return sorted(out, key=lambda x: (x[0], x[1]))

    # ------------------------------------------------------------------ rate limit
    def take_export_call(self) -> Optional[int]:
        """None when an incremental export call may run now, else the seconds to wait (Retry-After)."""
        now = self.clock.now()
        window = timedelta(minutes=1)
        self.export_log = [t for t in self.export_log if t > now - window]
        if self.enforce_rate_limits and len(self.export_log) >= self.export_requests_per_minute:
            wait = (self.export_log[0] + window - now).total_seconds()
            return max(1, int(-(-wait // 1)))
        self.export_log.append(now)
        return None

    # ------------------------------------------------------------------ demo
    def seed_demo(self, companies: int = 20) -> dict:
        """Organizations named like the demo's companies (external_id = the demo's account id), their
        end-users, three agents and tickets, spread over the day before now."""
        t0 = self.clock.now() - timedelta(days=1)
        agents = [self.put("users", 900 + i, at=t0, name=f"Agent {i}", email=f"agent{i}@vendor.example",
                           role="agent" if i else "admin", active=True) for i in range(3)]
        statuses = ["new", "open", "pending", "hold", "solved", "closed"]
        n_tickets = 0
        for c in range(companies):
            at = t0 + timedelta(minutes=c)
            org = self.put("organizations", 5000 + c, at=at, name=f"Zendesk Org {c}", external_id=f"A{10000 + c}",
                           domain_names=[f"org{c}.example"], details="", notes="", organization_fields={})
            for j in range(2):
                u = self.put("users", 7000 + c * 10 + j, at=at, name=f"Customer {c}.{j}",
                             email=f"customer{c}.{j}@org{c}.example", role="end-user", organization_id=org["id"],
                             active=True)
                n_tickets += 1
                self.put("tickets", 1 + n_tickets, at=at + timedelta(seconds=30), subject=f"Question {n_tickets}",
                         status=statuses[n_tickets % len(statuses)], priority=["low", "normal", "high", "urgent"][j * 2 % 4],
                         type="question", via={"channel": "email"}, requester_id=u["id"], submitter_id=u["id"],
                         assignee_id=agents[n_tickets % 3]["id"], organization_id=org["id"])
        return {"organizations": companies, "users": companies * 2 + 3, "tickets": n_tickets}
