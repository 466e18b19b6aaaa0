"""The SQL kind against a real MariaDB (Debian's, started by the tests: tests/sql_servers.py), system
`mariadb` through PyMySQL: the same behaviours as test_sync_postgresql.py (full and incremental
counts, chunked loads, deletes, drift, errors, rejects, windows, a read-only login, composite keys),
the oldest open transaction as the upper bound (information_schema.innodb_trx, shown in the server's
OS time zone), and MariaDB's own column types (TINYINT(1), DATETIME vs TIMESTAMP, JSON, ENUM,
DECIMAL, TEXT, BLOB).

The test server's OS time zone is +05:30 while its SQL time zone is UTC (tests/sql_servers.py), so
code that mixes the two fails here."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gs_assets.connectors.incremental import Window
from tests.gs_assets.connectors.sql.sql_harness import SqlHarness, sql_job

# The PostgreSQL twin of these tests runs in the fast lane; the full suite (CI) runs these too.
pytestmark = pytest.mark.slow

T0 = datetime(2025, 1, 1, 12, 0, 0)

SUBS = {"id": "external_id", "product": "product", "quantity": "quantity", "mrr": "mrr", "starts_on": "start_date"}


def _subs_table(db, n: int = 30) -> None:
    with db.connect() as c, c.cursor() as cur:
        cur.execute("CREATE TABLE subs (id int PRIMARY KEY, product varchar(100), quantity int, mrr decimal(12,2), "
                    "starts_on date, deleted boolean NOT NULL DEFAULT false, updated_at datetime(6) NOT NULL)")
        cur.executemany("INSERT INTO subs (id, product, quantity, mrr, starts_on, updated_at) "
                        "VALUES (%s, %s, %s, %s, %s, %s)",
                        [(g, f"Plan {g % 3}", g, g * 10.5, datetime(2024, 1, 1).date() + timedelta(days=g),
                          T0 + timedelta(minutes=g)) for g in range(1, n + 1)])


def _job(**kw):
    cursor = kw.pop("cursor", {"column": "updated_at", "lookback_seconds": 0, "visibility_lag_seconds": 0})
    return sql_job("subs", "sub__gc", ["external_id"], kw.pop("mappings", SUBS), table=kw.pop("table", "subs"),
                   cursor=cursor, **kw)


def _objects_yaml() -> str:
    return """
custom_objects:
  sub__gc:
    fields:
      external_id: {type: string, max_length: 100}
      product: {type: string, max_length: 255}
      quantity: {type: number, decimals: 0}
      mrr: {type: currency, min: 0}
      start_date: {type: date}
"""


@pytest.fixture
def subs_db(mariadb_database):
    _subs_table(mariadb_database)
    return mariadb_database


def _exec(db, *statements, params=None):
    with db.connect() as c, c.cursor() as cur:
        for s in statements:
            cur.execute(s, params)


def test_full_then_incremental_exact_counts(tmp_path, monkeypatch, subs_db):
    # the table schema-qualified (MariaDB's schema is its database)
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": _job(table=f"{subs_db.database}.subs")},
                   objects_yaml=_objects_yaml())
    out, runs = h.run("subs")
    assert (out.mode, out.records, len(out.loads)) == ("full", 30, 1)
    assert (runs[0].inserted, runs[0].rejected) == (30, 0)
    assert out.cursor_to == "2025-01-01T12:30:00"
    with subs_db.connect() as c, c.cursor() as cur:
        cur.execute("UPDATE subs SET mrr = 1, updated_at = %s WHERE id <= 3", [datetime(2025, 2, 1)])
        cur.execute("INSERT INTO subs (id, product, quantity, mrr, starts_on, updated_at) VALUES "
                    "(31, 'New', 1, 5, '2025-01-01', %s), (32, 'New', 1, 5, '2025-01-01', %s)",
                    [datetime(2025, 2, 1), datetime(2025, 2, 1, 0, 0, 1)])
    out, runs = h.run("subs")
    # closed lower bound: row 30 at the stored cursor is read again (the upsert absorbs it), plus 5 changed
    assert (out.mode, out.records, out.window_from) == ("incremental", 6, "2025-01-01T12:30:00")
    assert (runs[0].inserted, runs[0].updated, runs[0].unchanged) == (2, 3, 1)
    assert h.count("gs.sub__gc") == 32
    assert h.rows("SELECT mrr FROM gs.sub__gc WHERE external_id = '2'") == [(1.0,)]
    out, runs = h.run("subs")  # nothing new: only the boundary row
    assert (out.records, runs[0].unchanged) == (1, 1)


def test_chunked_loads_advance_the_cursor_and_resume(tmp_path, monkeypatch, mariadb_database):
    _subs_table(mariadb_database, n=250)
    h = SqlHarness(tmp_path, monkeypatch, mariadb_database, {"subs": _job()}, objects_yaml=_objects_yaml(),
                   connection_options={"records_per_load": 100, "fetch_rows": 100})
    out = h.sync("subs")
    assert [r.rows_read for r in out.loads] == [100, 100, 50] and out.pages == 3
    syncs = h.rows("SELECT records, cursor_to->>'cursor' FROM gs_ops.syncs ORDER BY synced_at")
    assert syncs == [(100, "2025-01-01T13:40:00"), (100, "2025-01-01T15:20:00"), (50, "2025-01-01T16:10:00")]
    runs = h.apply("sub__gc")
    assert sum(r.inserted for r in runs) == 250


def test_soft_delete_column_applies_the_delete_policy(tmp_path, monkeypatch, subs_db):
    # `deleted` is a BOOLEAN, which MariaDB keeps as TINYINT(1): 1 means deleted
    h = SqlHarness(tmp_path, monkeypatch, subs_db,
                   {"subs": _job(source={"soft_delete": {"column": "deleted"}}, deletes={"policy": "delete"})},
                   objects_yaml=_objects_yaml())
    h.run("subs")
    _exec(subs_db, "UPDATE subs SET deleted = true, updated_at = %s WHERE id IN (4, 5)", params=[datetime(2025, 3, 1)])
    out, runs = h.run("subs")
    assert out.deleted == 2
    assert sum(r.deletes_applied for r in runs) == 2
    assert h.count("gs.sub__gc") == 28


def test_key_check_finds_rows_deleted_in_the_source(tmp_path, monkeypatch, subs_db):
    h = SqlHarness(tmp_path, monkeypatch, subs_db,
                   {"subs": _job(source={"key_check": {"every_hours": 0}}, deletes={"policy": "delete"})},
                   objects_yaml=_objects_yaml())
    out, _ = h.run("subs")
    assert (out.deleted, [r.rows_read for r in out.loads]) == (0, [30, 0])
    _exec(subs_db, "DELETE FROM subs WHERE id IN (7, 8, 9)")
    out, runs = h.run("subs")
    assert out.deleted == 3 and sum(r.deletes_applied for r in runs) == 3
    assert h.count("gs.sub__gc") == 27
    out, _ = h.run("subs")
    assert out.deleted == 0


def test_renamed_column_is_reported_before_anything_lands(tmp_path, monkeypatch, subs_db):
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": _job()}, objects_yaml=_objects_yaml())
    h.run("subs")
    _exec(subs_db, "ALTER TABLE subs RENAME COLUMN product TO plan")
    out = h.sync("subs")
    assert out.error is not None and out.loads == []
    assert "'product' (read by subs)" in out.error and "plan" in out.error and "Nothing was loaded" in out.error
    assert out.added_fields == ["plan"] and out.removed_fields == ["product"]
    assert h.count("gs_ops.syncs") == 1


def test_dropped_table_is_a_clear_error(tmp_path, monkeypatch, subs_db):
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": _job()}, objects_yaml=_objects_yaml())
    _exec(subs_db, "DROP TABLE subs")
    out = h.sync("subs")
    assert "cannot read subs" in out.error and "dropped or renamed" in out.error
    assert out.loads == []


def test_wrong_password_names_the_connection_and_never_the_secret(tmp_path, monkeypatch, subs_db):
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": _job()}, objects_yaml=_objects_yaml())
    monkeypatch.setenv("GSDP_DB_PASSWORD", "wrong-password-123")
    out = h.sync("subs")
    assert out.error.startswith(f"connection db (MariaDB 127.0.0.1:{subs_db.port}/{subs_db.database}): cannot connect")
    assert "Access denied" in out.error and "auth.env" in out.error
    assert "wrong-password-123" not in out.error and subs_db.password not in out.error


def test_a_value_that_cannot_convert_is_a_reject_with_key_and_column(tmp_path, monkeypatch, mariadb_database):
    _exec(mariadb_database, "CREATE TABLE subs (id varchar(10) PRIMARY KEY, product text, quantity varchar(20), "
                            "updated_at timestamp(6) NOT NULL DEFAULT '2025-01-01 00:00:00')",
          "INSERT INTO subs (id, product, quantity) VALUES ('a', 'P', '3'), ('b', 'P', 'three'), ('c', 'P', '4')")
    job = sql_job("subs", "sub__gc", ["external_id"], {"id": "external_id", "product": "product",
                                                            "quantity": "quantity"}, table="subs",
                  cursor={"column": "updated_at"})
    h = SqlHarness(tmp_path, monkeypatch, mariadb_database, {"subs": job}, objects_yaml=_objects_yaml())
    out, runs = h.run("subs")
    assert (runs[0].inserted, runs[0].rejected) == (2, 1)
    rej = h.rows("SELECT source_id, reasons FROM gs_ops.rejects")
    assert rej[0][0] == "b" and "quantity" in rej[0][1] and "three" in rej[0][1]


def test_a_window_resync_reads_its_window_and_leaves_the_cursor(tmp_path, monkeypatch, subs_db):
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": _job()}, objects_yaml=_objects_yaml())
    h.run("subs")
    w = Window(datetime(2025, 1, 1, 12, 10, tzinfo=timezone.utc), datetime(2025, 1, 1, 12, 20, tzinfo=timezone.utc))
    out, runs = h.run("subs", window=w)
    assert (out.mode, out.records) == ("window", 10)  # minutes 10..19, the end is open
    out, _ = h.run("subs")
    assert (out.mode, out.window_from) == ("incremental", "2025-01-01T12:30:00")


def test_a_read_only_login_syncs(tmp_path, monkeypatch, subs_db):
    ro = subs_db.read_only_role()
    h = SqlHarness(tmp_path, monkeypatch, ro, {"subs": _job()}, objects_yaml=_objects_yaml())
    out, runs = h.run("subs")
    assert (out.records, runs[0].inserted) == (30, 30)


def test_composite_key_and_query_dataset(tmp_path, monkeypatch, mariadb_database):
    _exec(mariadb_database,
          "CREATE TABLE `lines` (invoice int, line int, product varchar(20), amount decimal(10,2), "
          "updated_at timestamp NOT NULL DEFAULT '2025-01-01 00:00:00', PRIMARY KEY (invoice, line))",
          "INSERT INTO `lines` (invoice, line, product, amount) "
          "SELECT i.seq, l.seq, CONCAT('P', l.seq), i.seq * l.seq FROM seq_1_to_5 i, seq_1_to_3 l",
          "UPDATE `lines` SET amount = -1 WHERE invoice = 4 AND line = 2")
    job = sql_job("lines", "sub__gc", ["external_id"],
                  {"line_key": "external_id", "product": "product", "amount": "mrr"},
                  query="SELECT invoice, line, CONCAT(invoice, '-', line) AS line_key, product, amount, updated_at "
                        "FROM `lines` WHERE invoice > 1",
                  primary_key=["invoice", "line"], cursor={"column": "updated_at"})
    h = SqlHarness(tmp_path, monkeypatch, mariadb_database, {"lines": job}, objects_yaml=_objects_yaml())
    out, runs = h.run("lines")
    assert (out.records, runs[0].inserted, runs[0].rejected) == (12, 11, 1)
    assert h.rows("SELECT source_id FROM gs_ops.rejects") == [("4:2",)]


# ---------------------------------------------------------------------------- in-flight transactions

def _open_writer(db):
    """Another session with a transaction left open that has written a row: (connection, UTC just
    before it began, UTC just after its write)."""
    w = db.connect(autocommit=False, init_command="SET time_zone = '+00:00'")
    cur = w.cursor()
    cur.execute("SELECT UTC_TIMESTAMP(6)")
    before = cur.fetchone()[0]
    cur.execute("BEGIN")
    cur.execute("INSERT INTO subs (id, product, quantity, mrr, starts_on, updated_at) "
                "VALUES (99, 'Late', 1, 1, '2025-01-01', UTC_TIMESTAMP(6))")
    cur.execute("SELECT UTC_TIMESTAMP(6)")
    after = cur.fetchone()[0]
    return w, before, after


def test_the_test_server_keeps_its_os_clock_off_utc(mariadb_database):
    # the premise of the next test: trx_started read as UTC would be 5.5 h off
    with mariadb_database.connect() as c, c.cursor() as cur:
        cur.execute("SELECT @@system_time_zone, @@global.time_zone")
        assert cur.fetchone() == ("XST", "+00:00")


def test_an_open_transaction_lowers_the_upper_bound_to_its_start(tmp_path, monkeypatch, subs_db):
    # innodb_trx.trx_started is in the server's OS time zone (+05:30 here), whatever the session's
    # time_zone: read as UTC it would lie 5.5 h ahead and guard nothing
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": _job()}, objects_yaml=_objects_yaml())
    w, before, after = _open_writer(subs_db)
    try:
        out, runs = h.run("subs")
        upper = datetime.fromisoformat(out.window_to)
        # trx_started has whole seconds: the bound is the start rounded down, never later than it
        assert before.replace(microsecond=0) <= upper < after, (before, out.window_to, after)
        assert (out.records, runs[0].inserted) == (30, 30)
        w.commit()
    finally:
        w.close()
    out, runs = h.run("subs")  # the row the open transaction wrote, stamped after the bound, is read now
    assert (out.records, runs[0].inserted) == (2, 1)  # the boundary row again, and row 99
    assert h.count("gs.sub__gc") == 31


def test_a_transaction_that_commits_while_the_snapshot_opens_is_not_lost(tmp_path, monkeypatch, subs_db):
    # T is open when the sync starts and commits after the sync's snapshot began (here: while it describes
    # the table), so its row is not in the snapshot: the upper bound must still stop below it. Measured
    # once T is gone, the bound would pass it, the stored cursor would move past it (row 100, committed
    # later in T's time) and no later sync would read it (no lookback here).
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": _job()}, objects_yaml=_objects_yaml())
    w, before, after = _open_writer(subs_db)
    _exec(subs_db, "INSERT INTO subs (id, product, quantity, mrr, starts_on, updated_at) "
                   "VALUES (100, 'After', 1, 1, '2025-01-01', UTC_TIMESTAMP(6))")
    system = h.system()
    describe = system.describe

    def describe_then_commit_t(dataset):
        w.commit()
        return describe(dataset)

    system.describe = describe_then_commit_t
    try:
        out = h.sync("subs", system=system)
        assert out.error is None, out.error
    finally:
        w.close()
    h.apply("sub__gc")
    out, runs = h.run("subs")
    assert h.count("gs.sub__gc") == 32  # 30, row 99 (T's) and row 100: nothing lost
    assert h.rows("SELECT product FROM gs.sub__gc WHERE external_id = '99'") == [("Late",)]


def test_without_the_process_privilege_the_lag_alone_guards(tmp_path, monkeypatch, subs_db):
    ro = subs_db.read_only_role()  # SELECT only: innodb_trx is refused to it
    h = SqlHarness(tmp_path, monkeypatch, ro, {"subs": _job()}, objects_yaml=_objects_yaml())
    w, before, after = _open_writer(subs_db)
    try:
        out, runs = h.run("subs")
        assert datetime.fromisoformat(out.window_to) >= after  # now - lag (0 s here)
        assert (out.records, runs[0].inserted) == (30, 30)
    finally:
        w.rollback()
        w.close()


# ---------------------------------------------------------------------------- MariaDB's types

def _types_objects_yaml() -> str:
    return """
custom_objects:
  thing__gc:
    fields:
      external_id: {type: string, max_length: 100}
      active: {type: boolean}
      happened_at: {type: datetime}
      stamped_at: {type: datetime}
      tier: {type: dropdown, values: [Gold, Silver, Bronze]}
      amount: {type: currency, decimals: 2}
      notes: {type: string, max_length: 5000}
      attrs: {type: string, max_length: 5000}
      tags: {type: multi_select, values: [a, b, c]}
"""


THINGS = {"id": "external_id", "active": "active", "happened_at": "happened_at", "stamped_at": "stamped_at",
          "tier": "tier", "amount": "amount", "notes": "notes", "attrs": "attrs"}


def _things_table(db) -> None:
    _exec(db, "CREATE TABLE things (id int PRIMARY KEY, active tinyint(1), happened_at datetime, "
              "stamped_at timestamp NULL, tier enum('gold','silver','bronze'), amount decimal(14,4), notes text, "
              "attrs json, tags json, payload blob)")
    with db.connect(init_command="SET time_zone = '+05:00'") as c, c.cursor() as cur:
        # a TIMESTAMP is kept in UTC and shown in the session's zone: written at +05:00 here, read in UTC
        cur.execute("INSERT INTO things VALUES (1, 1, '2025-03-01 10:00:00', '2025-03-01 15:00:00', 'gold', "
                    "1234.5678, 'line one\nline two', '{\"b\": 2, \"a\": [1, 2]}', '[\"a\", \"c\"]', x'00ff'), "
                    "(2, 0, '2025-03-02 00:00:00', NULL, 'bronze', 0, '', NULL, NULL, NULL), "
                    "(3, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)")


def test_mariadb_types_land_in_their_fields(tmp_path, monkeypatch, mariadb_database):
    _things_table(mariadb_database)
    job = sql_job("things", "thing__gc", ["external_id"], THINGS, table="things")
    h = SqlHarness(tmp_path, monkeypatch, mariadb_database, {"things": job}, objects_yaml=_types_objects_yaml())
    with h.system() as s:
        s.begin_snapshot()
        kinds = {c.name: (c.db_type, c.category) for c in s.describe("things")}
    assert kinds["active"] == ("TINYINT(1)", "integer") and kinds["amount"] == ("DECIMAL", "decimal")
    assert kinds["happened_at"] == ("DATETIME", "datetime") and kinds["stamped_at"] == ("TIMESTAMP", "datetime")
    assert kinds["tier"] == ("ENUM", "text") and kinds["notes"] == ("TEXT", "text")
    # MariaDB's JSON is LONGTEXT with a json_valid check: the protocol says TEXT, and it lands as written
    assert kinds["attrs"] == ("TEXT", "text") and kinds["payload"] == ("BLOB", "binary")
    out, runs = h.run("things")
    assert (runs[0].inserted, runs[0].rejected) == (2, 1)
    rej = h.rows("SELECT source_id, reasons FROM gs_ops.rejects")
    assert rej[0][0] == "3" and "active" in rej[0][1]  # TINYINT(1) holding 2 is no boolean: a reject, not true
    rows = h.rows("SELECT external_id, active, happened_at, stamped_at, tier, amount, notes, attrs "
                  "FROM gs.thing__gc ORDER BY external_id")
    assert rows[0] == ("1", True, datetime(2025, 3, 1, 10), datetime(2025, 3, 1, 10), "Gold", 1234.57,
                       "line one\nline two", '{"b": 2, "a": [1, 2]}')
    assert rows[1][:6] == ("2", False, datetime(2025, 3, 2), None, "Bronze", 0.0)


def test_mariadb_blob_is_refused_naming_the_column(tmp_path, monkeypatch, mariadb_database):
    _things_table(mariadb_database)
    job = sql_job("things", "thing__gc", ["external_id"], {"id": "external_id", "payload": "notes"}, table="things")
    h = SqlHarness(tmp_path, monkeypatch, mariadb_database, {"things": job}, objects_yaml=_types_objects_yaml())
    out = h.sync("things")
    assert "column payload is of type BLOB, which cannot be landed" in out.error and out.loads == []


def test_query_dataset_with_percent_signs_and_a_cursor(tmp_path, monkeypatch, subs_db):
    # the bounds are sent as parameters: a '%' or '%s' in the user's own query must stay as written
    job = sql_job("subs", "sub__gc", ["external_id"], SUBS,
                  query="SELECT * FROM subs WHERE product LIKE 'Plan%' AND product <> '%s'",
                  cursor={"column": "updated_at", "lookback_seconds": 0, "visibility_lag_seconds": 0},
                  source={"key_check": {"every_hours": 0}})  # the key check reads the query again, unbound
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": job}, objects_yaml=_objects_yaml())
    out, runs = h.run("subs")
    assert (out.records, runs[0].inserted) == (30, 30)
    out, runs = h.run("subs")
    assert (out.mode, out.records, out.deleted) == ("incremental", 1, 0)


# ---------------------------------------------------------------------------- connecting

def test_wrong_host_port_is_a_clear_error(tmp_path, monkeypatch, subs_db):
    from tests.dagster_helpers import free_port
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": _job()}, objects_yaml=_objects_yaml(),
                   connection_options={"port": free_port(), "connect_timeout_seconds": 5})
    out = h.sync("subs")
    assert out.error.startswith("connection db (MariaDB 127.0.0.1:") and "cannot connect" in out.error
    assert "Check host and port" in out.error


def test_tls_prefer_takes_plain_tcp_from_a_server_without_tls(tmp_path, monkeypatch, subs_db):
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": _job()}, objects_yaml=_objects_yaml(),
                   connection_options={"tls": {"mode": "prefer"}})
    out, runs = h.run("subs")
    assert (out.records, runs[0].inserted) == (30, 30)


def test_tls_require_never_falls_back_to_plain_tcp(tmp_path, monkeypatch, subs_db):
    # the test server has no TLS (have_ssl DISABLED): require must refuse, not read in plain text
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": _job()}, objects_yaml=_objects_yaml(),
                   connection_options={"tls": {"mode": "require"}})
    out = h.sync("subs")
    assert out.error is not None and out.loads == []
    assert "cannot connect" in out.error and "SSL is required but the server doesn't support it" in out.error
    assert "tls" in out.error.split(". ", 1)[1]  # the hint points at the tls settings


def test_whether_the_login_could_write_is_told(tmp_path, monkeypatch, subs_db):
    # `gsdp connections test` notes a login that could write: a read-only role is all a sync needs
    ro = subs_db.read_only_role()
    for db, table, expected in ((subs_db, "subs", True), (subs_db, f"{subs_db.database}.subs", True),
                                (ro, "subs", False), (ro, f"`{subs_db.database}`.`subs`", False)):
        h = SqlHarness(tmp_path / f"{db.user}{expected}{len(table)}", monkeypatch, db, {"subs": _job()},
                       objects_yaml=_objects_yaml())
        with h.system() as s:
            s.begin_snapshot()
            assert s.can_write(table) is expected, (db.user, table)
