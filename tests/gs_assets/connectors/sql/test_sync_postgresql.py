"""The SQL kind against a real PostgreSQL 15 (started by the tests: tests/sql_servers.py): full and
incremental syncs with exact counts, the cursor rule's boundary, chunked loads, deletes (soft-delete
column, key check), schema drift and type problems before anything lands, rejects with key and
column, re-sync windows, a read-only login."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from gs_assets.connectors.incremental import Window
from tests.gs_assets.connectors.sql.sql_harness import SqlHarness, sql_job

T0 = datetime(2025, 1, 1, 12, 0, 0)

SUBS = {"id": "external_id", "product": "product", "quantity": "quantity", "mrr": "mrr", "starts_on": "start_date"}


def _subs_table(db, n: int = 30) -> None:
    with db.connect() as c:
        c.execute("CREATE SCHEMA billing")
        c.execute("CREATE TABLE billing.subs (id int PRIMARY KEY, product text, quantity int, mrr numeric(12,2), "
                  "starts_on date, deleted boolean NOT NULL DEFAULT false, updated_at timestamp NOT NULL)")
        c.execute("INSERT INTO billing.subs (id, product, quantity, mrr, starts_on, updated_at) "
                  "SELECT g, 'Plan ' || (g %% 3), g, g * 10.5, date '2024-01-01' + g, %s + g * interval '1 minute' "
                  "FROM generate_series(1, %s) g", [T0, n])


def _job(**kw):
    cursor = kw.pop("cursor", {"column": "updated_at", "lookback_seconds": 0, "visibility_lag_seconds": 0})
    return sql_job("subs", "sub__gc", ["external_id"], kw.pop("mappings", SUBS), table="billing.subs",
                   cursor=cursor, **kw)


def _objects_yaml() -> str:
    # A subscription-like object of its own (the standard Subscription needs a company lookup).
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
def subs_db(pg_database):
    _subs_table(pg_database)
    return pg_database


def test_full_then_incremental_exact_counts(tmp_path, monkeypatch, subs_db):
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": _job()}, objects_yaml=_objects_yaml())
    out, runs = h.run("subs")
    assert (out.mode, out.records, len(out.loads)) == ("full", 30, 1)
    assert (runs[0].inserted, runs[0].rejected) == (30, 0)
    assert out.cursor_to == "2025-01-01T12:30:00"
    with subs_db.connect() as c:
        c.execute("UPDATE billing.subs SET mrr = 1, updated_at = %s WHERE id <= 3", [datetime(2025, 2, 1)])
        c.execute("INSERT INTO billing.subs (id, product, quantity, mrr, starts_on, updated_at) VALUES "
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


def test_chunked_loads_advance_the_cursor_and_resume(tmp_path, monkeypatch, pg_database):
    _subs_table(pg_database, n=250)
    h = SqlHarness(tmp_path, monkeypatch, pg_database, {"subs": _job()}, objects_yaml=_objects_yaml(),
                   connection_options={"records_per_load": 100, "fetch_rows": 100})
    out = h.sync("subs")
    assert [r.rows_read for r in out.loads] == [100, 100, 50]
    syncs = h.rows("SELECT records, cursor_to->>'cursor' FROM gs_ops.syncs ORDER BY synced_at")
    assert syncs == [(100, "2025-01-01T13:40:00"), (100, "2025-01-01T15:20:00"), (50, "2025-01-01T16:10:00")]
    runs = h.apply("sub__gc")
    assert sum(r.inserted for r in runs) == 250


def test_soft_delete_column_applies_the_delete_policy(tmp_path, monkeypatch, subs_db):
    h = SqlHarness(tmp_path, monkeypatch, subs_db,
                   {"subs": _job(source={"soft_delete": {"column": "deleted"}}, deletes={"policy": "delete"})},
                   objects_yaml=_objects_yaml())
    h.run("subs")
    with subs_db.connect() as c:
        c.execute("UPDATE billing.subs SET deleted = true, updated_at = %s WHERE id IN (4, 5)", [datetime(2025, 3, 1)])
    out, runs = h.run("subs")
    assert out.deleted == 2
    assert sum(r.deletes_applied for r in runs) == 2
    assert h.count("gs.sub__gc") == 28


def test_key_check_finds_rows_deleted_in_the_source(tmp_path, monkeypatch, subs_db):
    h = SqlHarness(tmp_path, monkeypatch, subs_db,
                   {"subs": _job(source={"key_check": {"every_hours": 0}}, deletes={"policy": "delete"})},
                   objects_yaml=_objects_yaml())
    out, _ = h.run("subs")
    assert (out.deleted, [r.rows_read for r in out.loads]) == (0, [30, 0])  # a full sync checks keys too
    with subs_db.connect() as c:
        c.execute("DELETE FROM billing.subs WHERE id IN (7, 8, 9)")
    out, runs = h.run("subs")
    assert out.deleted == 3 and sum(r.deletes_applied for r in runs) == 3
    assert h.count("gs.sub__gc") == 27
    out, _ = h.run("subs")  # nothing new is gone: nothing counted twice
    assert out.deleted == 0


def test_key_check_waits_for_its_interval(tmp_path, monkeypatch, subs_db):
    h = SqlHarness(tmp_path, monkeypatch, subs_db,
                   {"subs": _job(source={"key_check": {"every_hours": 24}}, deletes={"policy": "delete"})},
                   objects_yaml=_objects_yaml())
    h.run("subs")  # full: checked now
    with subs_db.connect() as c:
        c.execute("DELETE FROM billing.subs WHERE id = 7")
    out, _ = h.run("subs")
    assert out.deleted == 0 and [r.rows_read for r in out.loads] == [1]  # the boundary row; no check for 24 h


def test_renamed_column_is_reported_before_anything_lands(tmp_path, monkeypatch, subs_db):
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": _job()}, objects_yaml=_objects_yaml())
    h.run("subs")
    with subs_db.connect() as c:
        c.execute("ALTER TABLE billing.subs RENAME COLUMN product TO plan")
    out = h.sync("subs")
    assert out.error is not None and out.loads == []
    assert "'product' (read by subs)" in out.error and "plan" in out.error and "Nothing was loaded" in out.error
    assert out.added_fields == ["plan"] and out.removed_fields == ["product"]
    assert h.count("gs_ops.syncs") == 1


def test_dropped_table_is_a_clear_error(tmp_path, monkeypatch, subs_db):
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": _job()}, objects_yaml=_objects_yaml())
    with subs_db.connect() as c:
        c.execute("DROP TABLE billing.subs")
    out = h.sync("subs")
    assert "cannot read billing.subs" in out.error and "dropped or renamed" in out.error
    assert out.loads == []


def test_wrong_password_names_the_connection_and_never_the_secret(tmp_path, monkeypatch, subs_db):
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": _job()}, objects_yaml=_objects_yaml())
    monkeypatch.setenv("GSDP_DB_PASSWORD", "wrong-password-123")
    out = h.sync("subs")
    assert out.error.startswith("connection db (PostgreSQL 127.0.0.1:")
    assert "password authentication failed" in out.error and "auth.env" in out.error
    assert "wrong-password-123" not in out.error and subs_db.password not in out.error


def test_wrong_host_port_is_a_clear_error(tmp_path, monkeypatch, subs_db):
    from tests.dagster_helpers import free_port
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": _job()}, objects_yaml=_objects_yaml(),
                   connection_options={"port": free_port(), "connect_timeout_seconds": 5})
    out = h.sync("subs")
    assert out.error.startswith("connection db (PostgreSQL 127.0.0.1:") and "cannot connect" in out.error
    assert "Check host and port" in out.error


def test_a_value_that_cannot_convert_is_a_reject_with_key_and_column(tmp_path, monkeypatch, pg_database):
    with pg_database.connect() as c:
        c.execute("CREATE TABLE subs (id text PRIMARY KEY, product text, quantity text, updated_at timestamptz)")
        c.execute("INSERT INTO subs VALUES ('a', 'P', '3', now() - interval '1 hour'), "
                  "('b', 'P', 'three', now() - interval '1 hour'), ('c', 'P', '4', now() - interval '1 hour')")
    job = sql_job("subs", "sub__gc", ["external_id"], {"id": "external_id", "product": "product",
                                                            "quantity": "quantity"}, table="subs",
                  cursor={"column": "updated_at"})
    h = SqlHarness(tmp_path, monkeypatch, pg_database, {"subs": job}, objects_yaml=_objects_yaml())
    out, runs = h.run("subs")
    assert (runs[0].inserted, runs[0].rejected) == (2, 1)
    rej = h.rows("SELECT source_id, reasons FROM gs_ops.rejects")
    assert rej[0][0] == "b" and "quantity" in rej[0][1]


def test_binary_column_mapped_is_a_config_error_before_landing(tmp_path, monkeypatch, pg_database):
    with pg_database.connect() as c:
        c.execute("CREATE TABLE subs (id int PRIMARY KEY, product bytea, flag boolean)")
        c.execute("INSERT INTO subs VALUES (1, 'x', true)")
    job = sql_job("subs", "sub__gc", ["external_id"], {"id": "external_id", "product": "product"},
                  table="subs")
    h = SqlHarness(tmp_path, monkeypatch, pg_database, {"subs": job}, objects_yaml=_objects_yaml())
    out = h.sync("subs")
    assert "column product is of type bytea, which cannot be landed" in out.error and out.loads == []


def test_type_that_cannot_fill_the_field_is_named(tmp_path, monkeypatch, pg_database):
    with pg_database.connect() as c:
        c.execute("CREATE TABLE subs (id int PRIMARY KEY, product text, flag boolean)")
    job = sql_job("subs", "sub__gc", ["external_id"], {"id": "external_id", "product": "product",
                                                            "flag": "start_date"}, table="subs")
    h = SqlHarness(tmp_path, monkeypatch, pg_database, {"subs": job}, objects_yaml=_objects_yaml())
    out = h.sync("subs")
    assert "job subs maps flag (boolean) to sub__gc.start_date, a date field" in out.error


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


def test_composite_key_and_query_dataset(tmp_path, monkeypatch, pg_database):
    with pg_database.connect() as c:
        c.execute("CREATE TABLE lines (invoice int, line int, product text, amount numeric, updated_at timestamptz, "
                  "PRIMARY KEY (invoice, line))")
        c.execute("INSERT INTO lines SELECT i, l, 'P' || l, i * l, now() - interval '1 day' "
                  "FROM generate_series(1, 5) i, generate_series(1, 3) l")
        c.execute("UPDATE lines SET amount = -1 WHERE invoice = 4 AND line = 2")
    job = sql_job("lines", "sub__gc", ["external_id"],
                  {"line_key": "external_id", "product": "product", "amount": "mrr"},
                  query="SELECT invoice, line, invoice || '-' || line AS line_key, product, amount, updated_at "
                        "FROM lines WHERE invoice > 1",
                  primary_key=["invoice", "line"], cursor={"column": "updated_at"})
    h = SqlHarness(tmp_path, monkeypatch, pg_database, {"lines": job}, objects_yaml=_objects_yaml())
    out, runs = h.run("lines")
    assert (out.records, runs[0].inserted, runs[0].rejected) == (12, 11, 1)
    assert h.rows("SELECT source_id FROM gs_ops.rejects") == [("4:2",)]


def test_copy_text_survives_quotes_newlines_empty_and_null_across_block_cuts(tmp_path, monkeypatch, pg_database):
    from gs_assets.connectors.sql.systems import postgresql
    monkeypatch.setattr(postgresql, "COPY_BLOCK_BYTES", 64)  # cut the COPY stream every few rows
    tricky = ["a,b", 'he said "hi"', "line1\nline2", "", None, '"', "\\N", "x\r\ny", "naïve ☃"]
    with pg_database.connect() as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY, product text, flag boolean, updated_at timestamptz)")
        for i in range(60):
            c.execute("INSERT INTO t VALUES (%s, %s, %s, now() - interval '1 hour')",
                      [i, tricky[i % len(tricky)], [True, False, None][i % 3]])
    job = sql_job("t", "sub__gc", ["external_id"], {"id": "external_id", "product": "product"}, table="t",
                  cursor={"column": "updated_at"}, source={"columns": ["flag"]})
    h = SqlHarness(tmp_path, monkeypatch, pg_database, {"t": job}, objects_yaml=_objects_yaml())
    out, runs = h.run("t")
    assert out.pages > 5 and runs[0].inserted == 60
    got = dict(h.rows("SELECT CAST(external_id AS INT), product FROM gs.sub__gc"))
    # the engine keeps an empty text as NULL, like an empty CSV cell
    assert got == {i: (tricky[i % len(tricky)] or None) for i in range(60)}
    from gs_assets.engine.raw_landing import raw_table_name
    raw = h.rows(f"SELECT flag FROM {raw_table_name('db', 't', out.loads[0].load_id)} ORDER BY CAST(id AS INT)")
    assert [r[0] for r in raw[:3]] == ["true", "false", None]


def test_a_percent_sign_in_a_source_query_with_cursor_bounds(tmp_path, monkeypatch, subs_db):
    job = sql_job("subs", "sub__gc", ["external_id"], {"id": "external_id", "product": "product"},
                  query="SELECT id, product, updated_at FROM billing.subs WHERE product LIKE 'Plan %' "
                        "AND product NOT LIKE '%%2'",
                  cursor={"column": "updated_at", "lookback_seconds": 0, "visibility_lag_seconds": 0})
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": job}, objects_yaml=_objects_yaml())
    out, runs = h.run("subs")
    assert runs[0].inserted == 20  # Plan 0 and Plan 1 of 30 ('%%2' is the SQL text '%%2': any text ending in 2)
    out, runs = h.run("subs")  # incremental: bounds are parameters now
    assert out.mode == "incremental" and out.records == 1


def test_query_dataset_with_percent_signs_and_a_cursor(tmp_path, monkeypatch, subs_db):
    # the bounds are bound parameters: a '%' or '%s' in the user's own query must stay as written
    job = sql_job("subs", "sub__gc", ["external_id"], SUBS,
                  query="SELECT * FROM billing.subs WHERE product LIKE 'Plan%' AND product <> '%s'",
                  cursor={"column": "updated_at", "lookback_seconds": 0, "visibility_lag_seconds": 0},
                  source={"key_check": {"every_hours": 0}})  # the key check reads the query again, unbound
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": job}, objects_yaml=_objects_yaml())
    out, runs = h.run("subs")
    assert (out.records, runs[0].inserted) == (30, 30)
    out, runs = h.run("subs")
    assert (out.mode, out.records, out.deleted) == ("incremental", 1, 0)


def test_a_transaction_that_commits_while_the_snapshot_opens_is_not_lost(tmp_path, monkeypatch, subs_db):
    # T is open when the sync starts and commits after the sync's snapshot began (here: while it describes
    # the table), so its row is not in the snapshot: the upper bound must still stop below T's start.
    # Measured once T is gone, the bound would pass it, the stored cursor would move past it (row 100,
    # committed later) and no later sync would read it (no lookback here).
    h = SqlHarness(tmp_path, monkeypatch, subs_db, {"subs": _job()}, objects_yaml=_objects_yaml())
    w = subs_db.connect(autocommit=False)
    w.execute("INSERT INTO billing.subs (id, product, quantity, mrr, starts_on, updated_at) "
              "VALUES (99, 'Late', 1, 1, '2025-01-01', now())")  # now(): T's start
    with subs_db.connect() as c:
        c.execute("INSERT INTO billing.subs (id, product, quantity, mrr, starts_on, updated_at) "
                  "VALUES (100, 'After', 1, 1, '2025-01-01', clock_timestamp())")
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
    h.run("subs")
    assert h.count("gs.sub__gc") == 32  # 30, row 99 (T's) and row 100: nothing lost
    assert h.rows("SELECT product FROM gs.sub__gc WHERE external_id = '99'") == [("Late",)]
