"""The demo's PostgreSQL billing source: a local PostgreSQL (gs_assets/demo/local_databases.py) with a
small `billing` database, the `billing.subscriptions` table (subscriptions of the CSV demo's
companies, keyed by the same account ids, plus two whose company exists nowhere) and a read-only
login for the shipped `billing_db` connection (config/connections.yaml, config/jobs/billing.yaml).

`start(root, port)` starts (or reuses) the server whose data directory is under `root`, creates the
database, the table and its rows when they are missing (a second run reuses them), gives the login a
new random password and returns it with the env var the connection reads it from
(GSDP_BILLING_DB_PASSWORD); the caller puts that in its own process's environment only.
"""

from __future__ import annotations

import csv
import secrets
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

from gs_assets.demo.local_databases import Database, LocalDatabaseError, LocalPostgres

CONNECTION = "billing_db"
DATABASE = "billing"
READER = "billing_reader"
PASSWORD_ENV = "GSDP_BILLING_DB_PASSWORD"
TABLE = "billing.subscriptions"
# Account ids of no company (the CSV demo's are A00000-A00499): their subscriptions are rejected.
UNKNOWN_COMPANIES = ["A90001", "A90002"]

# The table the demo and `./dev bench sql` (benchmarks/sql_sync.py) read.
SUBSCRIPTIONS_DDL = [
    "CREATE SCHEMA IF NOT EXISTS billing",
    f"""CREATE TABLE {TABLE} (
        subscription_id     text PRIMARY KEY,
        company_external_id text NOT NULL,
        product             text NOT NULL,
        quantity            integer NOT NULL,
        unit_price          numeric(12, 2) NOT NULL,
        mrr                 numeric(12, 2) NOT NULL,
        arr                 numeric(12, 2) NOT NULL,
        start_date          date NOT NULL,
        end_date            date,
        status              text NOT NULL,
        billing_period      text NOT NULL,
        updated_at          timestamptz NOT NULL,
        is_deleted          boolean NOT NULL DEFAULT false)""",
    f"CREATE INDEX subscriptions_updated_at ON {TABLE} (updated_at, subscription_id)",
]
COLUMNS = ["subscription_id", "company_external_id", "product", "quantity", "unit_price", "mrr", "arr", "start_date",
           "end_date", "status", "billing_period", "updated_at", "is_deleted"]

PRODUCTS = [("Platform", 12, 45.00), ("Analytics Add-on", 5, 20.00), ("Premium Support", 1, 900.00)]
PERIODS = ["Monthly", "Quarterly", "Annual"]


def subscription_rows(companies_csv: Path, today: date = date(2026, 11, 26)) -> list[tuple]:
    """Deterministic subscriptions of the sample companies (every fourth company has the Platform,
    every eighth the Analytics add-on too, every twelfth Premium Support), one deleted in billing
    (soft-deleted: is_deleted), and two of account ids no company has (A90001, A90002)."""
    with open(companies_csv, newline="", encoding="utf-8") as fh:
        companies = [(r["Account ID"], r["Status"]) for r in csv.DictReader(fh)]
    rows: list[tuple] = []
    stamp = datetime.combine(today, datetime.min.time(), tzinfo=timezone.utc) - timedelta(days=20)

    def add(account: str, product: tuple, i: int, status: str, deleted: bool = False) -> None:
        name, seats, price = product
        quantity = seats * (1 + i % 7)
        mrr = round(quantity * price, 2)
        start = today - timedelta(days=30 * (1 + i % 30))
        end = start + timedelta(days=365 * (1 + i % 3))
        n = len(rows) + 1
        rows.append((f"SUB-{n:05d}", account, name, quantity, price, mrr, round(mrr * 12, 2), start,
                     end, status, PERIODS[i % 3],
                     stamp + timedelta(minutes=7 * n), deleted))

    # the oldest changes first, so the newest row (the one each sync reads again at its cursor) is a good one
    for j, account in enumerate(UNKNOWN_COMPANIES):
        add(account, PRODUCTS[j % 2], 100 + j, "Active")
    add(companies[2][0], PRODUCTS[0], 2, "Cancelled", deleted=True)  # deleted in billing: never an object record
    for i, (account, company_status) in enumerate(companies):
        if i % 4:
            continue
        status = "Active" if company_status == "Active" else "Cancelled"
        add(account, PRODUCTS[0], i, status)
        if i % 8 == 0:
            add(account, PRODUCTS[1], i, status)
        if i % 12 == 0:
            add(account, PRODUCTS[2], i, "Pending" if i % 24 else status)
    return rows


@dataclass
class BillingDb:
    server: LocalPostgres
    reader: Database
    rows: int
    created: bool                  # the table was made (and filled) by this start
    env: dict = field(default_factory=dict)

    def describe(self) -> list[str]:
        r = self.reader
        return [f"local PostgreSQL on {r.host}:{r.port} (data in {self.server.root}), database {r.database}: "
                f"{TABLE} holds {self.rows:,} rows ({'created now' if self.created else 'kept from the last run'}; "
                f"two of unknown companies, one soft-deleted)",
                f"connection {CONNECTION} logs in as {r.user} (read-only: SELECT only), password in {PASSWORD_ENV}"]

    def stop(self) -> None:
        self.server.stop()


def start(root: Path, port: int, companies_csv: Path) -> BillingDb:
    """Start the demo's PostgreSQL on 127.0.0.1:`port` (data under `root`, reused when there), make the
    billing database, table and read-only login when missing, and return them with the login's new
    password in `env`."""
    server = LocalPostgres(root, port=port)
    try:
        superuser = server.start()
    except LocalDatabaseError as e:
        if "the port is taken" not in str(e):
            raise
        raise LocalDatabaseError(
            f"The demo's PostgreSQL cannot listen on 127.0.0.1:{port}: another program uses that port. Stop it, or "
            f"give connections.{CONNECTION}.port in config/connections.yaml a free port (the demo starts its "
            "server on the port the connection names).") from None
    with superuser.connect() as con:
        if con.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone() is None:
            server.create_database(DATABASE)
    owner = replace(superuser, database=DATABASE)
    created = False
    with owner.connect(autocommit=False) as con:
        if con.execute("SELECT to_regclass(%s)", [TABLE]).fetchone()[0] is None:
            for stmt in SUBSCRIPTIONS_DDL:
                con.execute(stmt)
            with con.cursor().copy(f"COPY {TABLE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in subscription_rows(companies_csv):
                    copy.write_row(row)
            created = True
        con.commit()
        rows = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
        has_reader = con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [READER]).fetchone() is not None
    password = secrets.token_urlsafe(18)
    if has_reader:
        reader = _set_password(owner, password)
    else:
        reader = server.create_role(READER, password, database=DATABASE, read_only=True)
    return BillingDb(server=server, reader=reader, rows=rows, created=created, env={PASSWORD_ENV: password})


def _set_password(owner: Database, password: str) -> Database:
    import psycopg
    with owner.connect() as con:
        psycopg.ClientCursor(con).execute(f'ALTER ROLE "{READER}" PASSWORD %s', [password])
    return replace(owner, user=READER, password=password)


def connection_port(cfg) -> Optional[int]:
    conn = cfg.connections.get(CONNECTION)
    return conn.server_port if conn is not None else None
