"""System `redshift` (redshift-connector) against the local PostgreSQL 15, whose wire protocol
Redshift speaks, through a relay that plays Redshift's front end (redshift_front.py: it takes the
Redshift-only start-up parameters off, which PostgreSQL would refuse, and says no to TLS): describe,
full and incremental counts, DECLARE/FETCH chunks, tls prefer falling back to plain TCP, a wrong
password, a query dataset."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.gs_assets.connectors.sql.redshift_front import RedshiftFront
from tests.gs_assets.connectors.sql.sql_harness import SqlHarness, sql_job
from tests.gs_assets.connectors.sql.test_sync_postgresql import SUBS, _job, _objects_yaml, _subs_table

# Through a relay on the PostgreSQL server: the full suite (CI) runs them, the fast lane does not.
pytestmark = pytest.mark.slow


@pytest.fixture
def front(pg_database):
    with RedshiftFront(pg_database.port) as f:
        yield f


def _harness(tmp_path, monkeypatch, db, front, jobs=None, **options):
    return SqlHarness(tmp_path, monkeypatch, db, jobs or {"subs": _job()}, objects_yaml=_objects_yaml(),
                      system="redshift", connection_options={"port": front.port, **options})


def test_describe_through_the_redshift_driver(tmp_path, monkeypatch, pg_database, front):
    _subs_table(pg_database)
    h = _harness(tmp_path, monkeypatch, pg_database, front)
    with h.system() as s:
        s.begin_snapshot()
        cols = [(c.name, c.db_type, c.category) for c in s.describe("billing.subs")]
        now = s.server_now()
    assert cols == [("id", "integer", "integer"), ("product", "text", "text"), ("quantity", "integer", "integer"),
                    ("mrr", "numeric", "decimal"), ("starts_on", "date", "date"), ("deleted", "boolean", "boolean"),
                    ("updated_at", "timestamp", "datetime")]
    assert now.tzinfo is not None and now.utcoffset().total_seconds() == 0
    # the driver sent Redshift's own start-up parameters: the relay took them off
    assert front.startup_params[0]["client_protocol_version"] and front.startup_params[0]["user"] == pg_database.user


def test_full_then_incremental_exact_counts(tmp_path, monkeypatch, pg_database, front):
    _subs_table(pg_database)
    h = _harness(tmp_path, monkeypatch, pg_database, front)
    out, runs = h.run("subs")
    assert (out.mode, out.records, runs[0].inserted) == ("full", 30, 30)
    assert out.cursor_to == "2025-01-01T12:30:00"
    with pg_database.connect() as c:
        c.execute("UPDATE billing.subs SET mrr = 1, updated_at = %s WHERE id <= 3", [datetime(2025, 2, 1)])
    out, runs = h.run("subs")
    assert (out.mode, out.records, out.window_from) == ("incremental", 4, "2025-01-01T12:30:00")
    assert (runs[0].updated, runs[0].unchanged) == (3, 1)
    assert h.rows("SELECT mrr FROM gs.sub__gc WHERE external_id = '2'") == [(1.0,)]


def test_declare_fetch_reads_in_chunks(tmp_path, monkeypatch, pg_database, front):
    _subs_table(pg_database, n=250)
    h = _harness(tmp_path, monkeypatch, pg_database, front, fetch_rows=100, records_per_load=100)
    out = h.sync("subs")
    assert out.error is None, out.error
    assert (out.pages, [r.rows_read for r in out.loads]) == (3, [100, 100, 50])  # FETCH FORWARD 100, three times
    assert sum(r.inserted for r in h.apply("sub__gc")) == 250


def test_tls_prefer_falls_back_to_plain_tcp(tmp_path, monkeypatch, pg_database, front):
    _subs_table(pg_database)
    h = _harness(tmp_path, monkeypatch, pg_database, front, tls={"mode": "prefer"})
    out, runs = h.run("subs")
    assert (out.records, runs[0].inserted) == (30, 30)
    assert front.tls_requests == 1 and len(front.startup_params) == 1  # asked for TLS, was told no, went on in plain


def test_tls_require_against_a_server_without_tls_is_a_clear_error(tmp_path, monkeypatch, pg_database, front):
    _subs_table(pg_database)
    h = _harness(tmp_path, monkeypatch, pg_database, front, tls={"mode": "require"})
    out = h.sync("subs")
    assert out.error.startswith(f"connection db (Amazon Redshift 127.0.0.1:{front.port}/{pg_database.database}): "
                                "cannot connect: the server refuses TLS") and "tls" in out.error
    assert front.startup_params == [] and out.loads == []


def test_wrong_password_names_the_connection_and_never_the_secret(tmp_path, monkeypatch, pg_database, front):
    _subs_table(pg_database)
    h = _harness(tmp_path, monkeypatch, pg_database, front)
    monkeypatch.setenv("GSDP_DB_PASSWORD", "wrong-password-123")
    out = h.sync("subs")
    assert out.error.startswith(f"connection db (Amazon Redshift 127.0.0.1:{front.port}/{pg_database.database}): "
                                "cannot connect: password authentication failed for user")
    assert "auth.env" in out.error and "{'S'" not in out.error  # the server's message, not the driver's dict
    assert "wrong-password-123" not in out.error and pg_database.password not in out.error


def test_query_dataset_with_percent_signs_and_a_cursor(tmp_path, monkeypatch, pg_database, front):
    # the bounds go into DECLARE as literals: a '%s' in the user's own query must stay as written
    _subs_table(pg_database)
    job = sql_job("subs", "sub__gc", ["external_id"], SUBS,
                  query="SELECT * FROM billing.subs WHERE product LIKE 'Plan%' AND product <> '%s'",
                  cursor={"column": "updated_at", "lookback_seconds": 0, "visibility_lag_seconds": 0})
    h = _harness(tmp_path, monkeypatch, pg_database, front, jobs={"subs": job})
    out, runs = h.run("subs")
    assert (out.records, runs[0].inserted) == (30, 30)
    out, runs = h.run("subs")
    assert (out.mode, out.records) == ("incremental", 1)


def test_a_read_only_login_syncs(tmp_path, monkeypatch, pg_database, front):
    _subs_table(pg_database)
    ro = pg_database.read_only_role()
    h = _harness(tmp_path, monkeypatch, ro, front)
    out, runs = h.run("subs")
    assert (out.records, runs[0].inserted) == (30, 30)


def test_wrong_host_port_is_a_clear_error(tmp_path, monkeypatch, pg_database, front):
    from tests.dagster_helpers import free_port
    port = free_port()
    h = SqlHarness(tmp_path, monkeypatch, pg_database, {"subs": _job()}, objects_yaml=_objects_yaml(),
                   system="redshift", connection_options={"port": port, "connect_timeout_seconds": 5})
    out = h.sync("subs")
    assert out.error.startswith(f"connection db (Amazon Redshift 127.0.0.1:{port}/") and "cannot connect" in out.error
    assert "Check host and port" in out.error and "\n" not in out.error, out.error
    assert "communication error: Connection refused" in out.error  # not the driver's tuple


def test_dropped_table_is_a_clear_error(tmp_path, monkeypatch, pg_database, front):
    _subs_table(pg_database)
    h = _harness(tmp_path, monkeypatch, pg_database, front)
    with pg_database.connect() as c:
        c.execute("DROP TABLE billing.subs")
    out = h.sync("subs")
    assert 'cannot read billing.subs: relation "billing.subs" does not exist.' in out.error, out.error
    assert "dropped or renamed" in out.error and out.loads == []
