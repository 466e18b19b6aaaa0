"""Realistic, deterministic sample data for the demo: a CRM export, product usage, support cases.

About 500 companies (some the subsidiaries of others), 50 users (CSMs and their managers),
5,000 contacts (person + company person), 90 days of daily usage per company and feature, and a
few hundred cases. A handful of rows are wrong on purpose (bad email, unknown dropdown value,
unknown account, non-numeric count) so the demo shows rejects with their reasons.
"""

from __future__ import annotations

import csv
import random
from datetime import date, datetime, timedelta
from pathlib import Path

FIRST = ["Ava", "Liam", "Noah", "Emma", "Olivia", "Mia", "Lucas", "Ethan", "Sofia", "Amir", "Priya", "Chen",
         "Yuki", "Mateo", "Zara", "Omar", "Ines", "Jonas", "Freya", "Ravi", "Lena", "Kofi", "Hana", "Diego"]
LAST = ["Smith", "Garcia", "Chen", "Patel", "Kowalski", "Okafor", "Nakamura", "Silva", "Muller", "Haddad",
        "Johansson", "Rossi", "Dubois", "Kim", "Novak", "Fischer", "Lopez", "Singh", "Brown", "Ivanova"]
WORDS = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Soylent", "Hooli",
         "Vandelay", "Wonka", "Pied Piper", "Massive", "Dynamic", "Blue Sun", "Oscorp", "Aperture", "Gringotts",
         "Monarch", "Nakatomi", "Virtucon", "Zorg", "Prestige", "Sirius", "Spectre", "Duff", "Krusty", "Ollivander"]
SUFFIX = ["Inc", "LLC", "Group", "Systems", "Labs", "Holdings", "Corp", "Partners", "Analytics", "Health"]
INDUSTRIES = ["Software", "Financial Services", "Healthcare", "Manufacturing", "Retail", "Education", "Media",
              "Telecommunications", "Energy", "Government"]
STAGES = ["New Customer", "Kicked Off", "Launched", "Adopting", "Will Expand", "Will Churn"]
COUNTRIES = ["United States", "Germany", "United Kingdom", "India", "Japan", "Brazil", "France", "Canada"]
FEATURES = ["Dashboards", "Reports", "Alerts", "API", "Exports", "Workflows"]
ROLES = ["Decision Maker", "Champion", "Executive Sponsor", "Admin", "End User", "Billing Contact"]
CASE_SUBJECTS = ["Cannot log in", "Export times out", "Dashboard slow", "SSO setup", "Invoice question",
                 "API rate limit", "Feature request: dark mode", "Data missing in report", "Alert not firing"]

N_COMPANIES, N_USERS, N_CONTACTS, USAGE_DAYS, N_CASES = 500, 50, 5000, 90, 300


def _write(path: Path, header: list[str], rows: list[list]) -> int:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return len(rows)


def generate(out_dir: Path, today: date | None = None, seed: int = 7) -> dict[str, int]:
    """Write the sample CSV files into out_dir; returns rows per file."""
    rnd = random.Random(seed)
    today = today or date(2026, 11, 26)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}

    # Users: 8 managers, 42 CSMs reporting to them.
    users = []
    for i in range(N_USERS):
        fn, ln = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
        email = f"{fn.lower()}.{ln.lower()}{i}@gsdp-demo.io"
        manager = "" if i < 8 else users[i % 8][4]
        title = "CS Manager" if i < 8 else rnd.choice(["CSM", "Senior CSM", "Enterprise CSM"])
        users.append([f"U{i:04d}", f"{fn} {ln}", fn, ln, email, title, manager, rnd.choice(["true", "yes", "1"])])
    counts["users.csv"] = _write(out_dir / "users.csv", ["User ID", "Full Name", "First Name", "Last Name", "Email",
                                                         "Title", "Manager Email", "Active"], users)
    csm_emails = [u[4] for u in users[8:]]

    # Companies: the first 440 are top-level; the last 60 are subsidiaries of earlier ones.
    companies = []
    for i in range(N_COMPANIES):
        name = f"{WORDS[i % len(WORDS)]} {SUFFIX[(i // len(WORDS)) % len(SUFFIX)]} {i:03d}"
        arr = rnd.randrange(5_000, 2_000_000, 500)
        parent = f"A{rnd.randrange(0, 440):05d}" if i >= 440 else ""
        renewal = today + timedelta(days=rnd.randrange(-30, 400))
        contract = renewal - timedelta(days=365 * rnd.randrange(1, 4))
        industry = INDUSTRIES[i % len(INDUSTRIES)]
        tier = "Enterprise" if arr > 1_000_000 else ("Mid-Market" if arr > 200_000 else "SMB")
        companies.append([f"A{i:05d}", name, industry, rnd.randrange(10, 20000), f"{arr:,}", f"{arr / 12:.2f}",
                          rnd.choice(["Active"] * 9 + ["Inactive"]), rnd.choice(STAGES), renewal.isoformat(),
                          contract.strftime("%m/%d/%Y"), f"https://www.{WORDS[i % len(WORDS)].lower().replace(' ', '')}{i}.com",
                          rnd.choice(COUNTRIES), tier, rnd.choice(csm_emails), parent])
    companies[17][2] = "Aerospace"          # not an industry: the job's default (Other) applies
    companies[17][7] = "Onboarding"         # not a value of the stage dropdown: rejected
    companies[233][4] = "about 40"          # not a number
    counts["companies.csv"] = _write(out_dir / "companies.csv", [
        "Account ID", "Account Name", "Industry", "Employees", "ARR", "MRR", "Status", "Stage", "Renewal Date",
        "Contract Date", "Website", "Country", "Tier", "CSM Email", "Parent Account ID"], companies)

    # Contacts: one person and one company-person row each.
    contacts = []
    for i in range(N_CONTACTS):
        fn, ln = rnd.choice(FIRST), rnd.choice(LAST)
        acct = f"A{rnd.randrange(0, N_COMPANIES):05d}"
        contacts.append([f"C{i:06d}", fn, ln, f"{fn.lower()}.{ln.lower()}.{i}@customer{acct[1:]}.com",
                         f"+1-555-{rnd.randrange(1000, 9999)}", rnd.choice(["Austin", "Berlin", "Pune", "Osaka", "Leeds"]),
                         rnd.choice(COUNTRIES), acct, rnd.choice(["VP Operations", "Director IT", "Analyst", "CFO", "Engineer"]),
                         rnd.choice(ROLES), "Y" if i % 10 == 0 else "N"])
    contacts[42][3] = "not-an-email"        # invalid email: person and company person both reject it
    contacts[4242][7] = "A99999"            # unknown account: company person rejects it
    counts["contacts.csv"] = _write(out_dir / "contacts.csv", [
        "Contact ID", "First Name", "Last Name", "Email", "Phone", "City", "Country", "Account ID", "Title",
        "Role", "Primary"], contacts)

    # Usage: 90 days x companies x features.
    usage = []
    for c in range(N_COMPANIES):
        base = rnd.randrange(5, 400)
        for d in range(USAGE_DAYS):
            day = (today - timedelta(days=USAGE_DAYS - d)).isoformat()
            for f in FEATURES:
                events = max(0, int(base * rnd.random() * (0.3 if day.endswith(("6", "7")) else 1)))
                usage.append([f"A{c:05d}", day, f, events, f"{events * rnd.uniform(0.5, 3):.2f}", rnd.randrange(1, 40)])
    usage[1000][3] = "n/a"                  # not a number
    usage[2000][0] = "A77777"               # unknown account
    counts[f"usage_{today.isoformat()}.csv"] = _write(out_dir / f"usage_{today.isoformat()}.csv",
                                                      ["Account ID", "Date", "Feature", "Events", "Minutes", "Unique Users"], usage)

    # Cases.
    cases = []
    for i in range(N_CASES):
        opened = datetime.combine(today, datetime.min.time()) - timedelta(hours=rnd.randrange(1, 24 * 120))
        status = rnd.choice(["New", "Open", "Pending", "Solved", "Closed", "Closed"])
        closed = (opened + timedelta(hours=rnd.randrange(1, 200))).strftime("%Y-%m-%d %H:%M:%S") if status in ("Solved", "Closed") else ""
        ci = rnd.randrange(0, N_CONTACTS)
        cases.append([f"CS-{10000 + i}", rnd.choice(CASE_SUBJECTS), contacts[ci][7], contacts[ci][3], rnd.choice(csm_emails),
                      status, rnd.choice(["Low", "Medium", "High", "Urgent", ""]), rnd.choice(["Email", "Phone", "Web", "Chat"]),
                      opened.strftime("%Y-%m-%d %H:%M:%S"), closed])
    cases[7][5] = "Escalated"               # not a value of the status dropdown
    cases[8][2] = "A55555"                  # unknown account
    counts["cases.csv"] = _write(out_dir / "cases.csv", ["Case Number", "Subject", "Account ID", "Contact Email", "Owner Email",
                                                         "Status", "Priority", "Origin", "Opened", "Closed"], cases)
    return counts


if __name__ == "__main__":
    import sys
    print(generate(Path(sys.argv[1] if len(sys.argv) > 1 else "data/sample")))
