"""Column types into matrix field types, against the real servers: per field type a PostgreSQL column
of a fitting type lands with the right value in the object (a custom object holding every field
type; gsid through a lookup), the types that cannot land (bytea, arrays, point) are a clear error
naming each column before anything lands, and MariaDB's own types where they differ (TINYINT(1),
DATETIME, ENUM)."""

from __future__ import annotations

from datetime import date, datetime

from tests.gs_assets.connectors.sql.sql_harness import SqlHarness, sql_job

OBJECTS = """
custom_objects:
  acct__gc:
    fields:
      external_id: {type: string, max_length: 100}
      name: {type: string, max_length: 255}
  thing__gc:
    fields:
      external_id: {type: string, max_length: 100}
      name: {type: string, max_length: 255}
      note: {type: string, max_length: 255}
      seats: {type: number, decimals: 0}
      score: {type: number, decimals: 3}
      mrr: {type: currency, decimals: 2}
      list_price: {type: currency, decimals: 2}
      churn: {type: percentage, decimals: 2}
      active: {type: boolean}
      renews_on: {type: date}
      seen_at: {type: datetime}
      changed_at: {type: datetime}
      email: {type: email}
      site: {type: url}
      tier: {type: dropdown, values: [Gold, Silver, Bronze]}
      tags: {type: multi_select, values: [a, b, c]}
      account: {type: gsid, lookup: acct__gc}
"""

PG_COLUMNS = {  # column -> field: every field type of the matrix
    "id": "external_id", "name": "name", "note_id": "note", "seats": "seats", "score": "score", "mrr": "mrr",
    "list_price": "list_price", "churn_pct": "churn", "active": "active", "renews_on": "renews_on",
    "seen_at": "seen_at", "changed_at": "changed_at", "email": "email", "site": "site", "tier": "tier",
    "tags": "tags"}
FIELDS = list(PG_COLUMNS.values()) + ["account"]


def _jobs(things_mappings, table="things"):
    accounts = sql_job("accounts", "acct__gc", ["external_id"], {"ref": "external_id", "label": "name"},
                       table="accounts", primary_key=["ref"])
    things = sql_job("things", "thing__gc", ["external_id"], things_mappings, table=table,
                     lookups=[{"target": "account", "object": "acct__gc",
                               "match": [{"source": "acct_ref", "field": "external_id"}]}])
    return {"accounts": accounts, "things": things}


def test_each_field_type_from_a_fitting_postgresql_column(tmp_path, monkeypatch, pg_database):
    with pg_database.connect() as c:
        c.execute("CREATE TYPE tier AS ENUM ('gold', 'silver', 'bronze')")
        c.execute("CREATE TABLE accounts (ref text PRIMARY KEY, label text)")
        c.execute("INSERT INTO accounts VALUES ('A-1', 'Acme'), ('A-2', 'Globex')")
        c.execute("CREATE TABLE things (id int PRIMARY KEY, name varchar(50), note_id int, seats bigint, "
                  "score double precision, mrr numeric(12,2), list_price money, churn_pct real, active boolean, "
                  "renews_on date, seen_at timestamp, changed_at timestamptz, email text, site text, tier tier, "
                  "tags text, acct_ref text)")
        c.execute("INSERT INTO things VALUES "
                  "(1, 'Alpha', 42, 12, 0.125, 1234.5, 1999.99, 2.5, true, '2025-06-30', '2025-03-01 08:30:00', "
                  "'2025-03-01 12:00:00+02', 'Ann@Example.COM', 'https://acme.example/x', 'gold', 'c;a', 'A-2'), "
                  "(2, 'Beta', NULL, 0, -1.5, 0, 0, 0, false, '2024-02-29', '2024-12-31 23:59:59.5', NULL, NULL, "
                  "NULL, 'bronze', 'b', 'A-1')")
    h = SqlHarness(tmp_path, monkeypatch, pg_database, _jobs(PG_COLUMNS), objects_yaml=OBJECTS)
    h.run("accounts")
    out, runs = h.run("things")
    assert (runs[0].inserted, runs[0].rejected) == (2, 0), h.rows("SELECT reasons FROM gs_ops.rejects")
    gsids = dict(h.rows("SELECT external_id, gsid FROM gs.acct__gc"))
    rows = h.rows(f"SELECT {', '.join(FIELDS)} FROM gs.thing__gc ORDER BY external_id")
    assert dict(zip(FIELDS, rows[0])) == {
        "external_id": "1", "name": "Alpha", "note": "42", "seats": 12.0, "score": 0.125, "mrr": 1234.5,
        "list_price": 1999.99, "churn": 2.5, "active": True, "renews_on": date(2025, 6, 30),
        "seen_at": datetime(2025, 3, 1, 8, 30), "changed_at": datetime(2025, 3, 1, 10, 0),  # timestamptz in UTC
        "email": "ann@example.com", "site": "https://acme.example/x", "tier": "Gold", "tags": "a;c",
        "account": gsids["A-2"]}
    assert dict(zip(FIELDS, rows[1])) == {
        "external_id": "2", "name": "Beta", "note": None, "seats": 0.0, "score": -1.5, "mrr": 0.0,
        "list_price": 0.0, "churn": 0.0, "active": False, "renews_on": date(2024, 2, 29),
        "seen_at": datetime(2024, 12, 31, 23, 59, 59, 500000), "changed_at": None, "email": None, "site": None,
        "tier": "Bronze", "tags": "b", "account": gsids["A-1"]}


def test_types_that_cannot_land_are_a_clear_error_naming_each_column(tmp_path, monkeypatch, pg_database):
    with pg_database.connect() as c:
        c.execute("CREATE TABLE accounts (ref text PRIMARY KEY, label text)")
        c.execute("CREATE TABLE things (id int PRIMARY KEY, name bytea, tags text[], site point, acct_ref text)")
        c.execute("INSERT INTO things VALUES (1, 'x', '{a,b}', '(1,2)', 'A-1')")
    h = SqlHarness(tmp_path, monkeypatch, pg_database,
                   _jobs({"id": "external_id", "name": "name", "tags": "tags", "site": "site"}), objects_yaml=OBJECTS)
    out = h.sync("things")
    assert out.loads == [] and "Nothing was loaded" in out.error
    for col, typ in (("name", "bytea"), ("tags", "text[]"), ("site", "point")):
        assert f"column {col} is of type {typ}, which cannot be landed" in out.error, out.error
    assert "cast it to text in a source query" in out.error
    assert h.count("gs_ops.syncs") == 0


def test_a_column_whose_type_cannot_fill_its_field_is_named(tmp_path, monkeypatch, pg_database):
    with pg_database.connect() as c:
        c.execute("CREATE TABLE accounts (ref text PRIMARY KEY, label text)")
        c.execute("CREATE TABLE things (id int PRIMARY KEY, seen_at boolean, email int, tags jsonb, acct_ref text)")
    h = SqlHarness(tmp_path, monkeypatch, pg_database,
                   _jobs({"id": "external_id", "seen_at": "seen_at", "email": "email", "tags": "tags"}),
                   objects_yaml=OBJECTS)
    out = h.sync("things")
    assert "job things maps seen_at (boolean) to thing__gc.seen_at, a datetime field" in out.error
    assert "job things maps email (integer) to thing__gc.email, a email field" in out.error
    # a JSON array lands as JSON text ('["a","c"]'), never as items 'a;c': every row would be a reject
    assert "job things maps tags (jsonb) to thing__gc.tags, a multi_select field, which takes text" in out.error
    assert out.loads == []


MARIADB_COLUMNS = {"id": "external_id", "active": "active", "seen_at": "seen_at", "changed_at": "changed_at",
                   "tier": "tier", "tags": "tags", "mrr": "mrr", "name": "name"}


def test_mariadb_types_that_differ(tmp_path, monkeypatch, mariadb_database):
    # BOOLEAN is TINYINT(1) (1/0 into a boolean field), DATETIME is wall-clock time taken as UTC, TIMESTAMP is
    # an instant MariaDB shows in the session's zone (UTC for a sync), ENUM and SET are text
    with mariadb_database.connect() as c, c.cursor() as cur:
        cur.execute("CREATE TABLE accounts (ref varchar(10) PRIMARY KEY, label text)")
        cur.execute("INSERT INTO accounts VALUES ('A-1', 'Acme')")
        cur.execute("CREATE TABLE things (id int PRIMARY KEY, active boolean, seen_at datetime(3), "
                    "changed_at timestamp NULL, tier enum('gold','silver','bronze'), tags set('a','b','c'), "
                    "mrr decimal(10,2), name varchar(50), acct_ref varchar(10))")
        cur.execute("SET time_zone = '-07:00'")  # a writer in another zone: TIMESTAMP keeps the instant
        cur.execute("INSERT INTO things VALUES (1, true, '2025-03-01 08:30:00.250', '2025-03-01 03:00:00', "
                    "'silver', 'c', 99.95, 'Alpha', 'A-1'), (3, 1, NULL, NULL, NULL, 'c,a', NULL, 'Gamma', 'A-1'), "
                    "(2, false, '2024-02-29 00:00:00', NULL, 'gold', 'b', 0, 'Beta', 'A-1')")
    h = SqlHarness(tmp_path, monkeypatch, mariadb_database, _jobs(MARIADB_COLUMNS), objects_yaml=OBJECTS)
    h.run("accounts")
    out, runs = h.run("things")
    # a SET of two comes as 'a,c': a multi_select takes items separated by ';', so it is a reject naming the
    # column and the value (a SET of one item fills it)
    assert (runs[0].inserted, runs[0].rejected) == (2, 1), h.rows("SELECT source_id, reasons FROM gs_ops.rejects")
    rej = h.rows("SELECT source_id, reasons FROM gs_ops.rejects")
    assert rej[0][0] == "3" and '"field":"tags"' in rej[0][1] and '"value":"a,c"' in rej[0][1]
    cols = ["external_id", "active", "seen_at", "changed_at", "tier", "tags", "mrr", "name", "account"]
    gsid = h.rows("SELECT gsid FROM gs.acct__gc")[0][0]
    assert h.rows(f"SELECT {', '.join(cols)} FROM gs.thing__gc ORDER BY external_id") == [
        ("1", True, datetime(2025, 3, 1, 8, 30, 0, 250000), datetime(2025, 3, 1, 10), "Silver", "c", 99.95, "Alpha",
         gsid),
        ("2", False, datetime(2024, 2, 29), None, "Gold", "b", 0.0, "Beta", gsid)]
