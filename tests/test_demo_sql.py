"""The demo's SQL half: the shipped config's `billing_db` connection (PostgreSQL) and its job
`billing_subscriptions`, synced through Dagster from the demo's local PostgreSQL
(gs_assets/demo/billing_db.py), land subscriptions at the CSV demo's companies; a second run reuses
the server's data and syncs incrementally."""

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture
def pg_root():
    # Under the system temp dir, not pytest's: as root the server runs as postgres, which cannot
    # traverse root's 0700 /tmp/pytest-of-root.
    root = Path(tempfile.mkdtemp(prefix="gsdp-demo-pg-"))
    root.chmod(0o755)
    yield root / "pg"
    from gs_assets.demo.local_databases import LocalPostgres
    LocalPostgres(root / "pg").stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow  # a PostgreSQL server and two Dagster runs
def test_sql_demo_syncs_the_billing_database_into_subscription(tmp_path, monkeypatch, capsys, pg_root):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    monkeypatch.setenv("GSDP_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("GSDP_CONFIG_DIR", str(REPO / "config"))  # the shipped config
    monkeypatch.delenv("GSDP_BILLING_DB_PASSWORD", raising=False)
    (tmp_path / "dh").mkdir()
    import dagster as dg
    import duckdb

    from gs_assets.config.loader import load_platform_config
    from gs_assets.demo import run_demo
    from gs_assets.demo.local_databases import LocalPostgres, free_port
    from gs_assets.demo.sample_data import generate
    from gs_assets.engine.warehouse_setup import sync_object_tables
    from resources.warehouse import Warehouse

    cfg = load_platform_config()  # loads without a server: config load never connects
    conn = cfg.connections["billing_db"]
    assert (conn.type, conn.system, conn.host, conn.port, conn.database, conn.user) == (
        "sql", "postgresql", "127.0.0.1", 54390, "billing", "billing_reader")
    job = cfg.jobs["billing_subscriptions"]
    assert (job.destination, job.operation.value, job.identifiers) == ("subscription", "upsert", ["external_id"])
    conn.port = free_port()  # a `./dev demo` may hold the shipped port while the tests run
    generate(tmp_path / "sample")
    with Warehouse(database=os.environ["GSDP_WAREHOUSE"]).connect() as con:  # the CSV demo's companies
        sync_object_tables(con, cfg.model)
        con.execute("INSERT INTO gs.company (gsid, name, external_id, created_at, modified_at) SELECT uuid()::VARCHAR, "
                    "'Company ' || c, printf('A%05d', c), now(), now() FROM range(500) t(c) WHERE c NOT IN (17, 233)")

    with dg.DagsterInstance.get() as instance:
        outcomes = run_demo.run_sql_demo(cfg, instance, {"subscription": 0}, pg_root=pg_root,
                                         sample_dir=tmp_path / "sample")
        out = capsys.readouterr().out
        password = os.environ["GSDP_BILLING_DB_PASSWORD"]
        assert [(j, ok) for j, _, ok, _ in outcomes] == [("billing_subscriptions", True)], out
        for line in (f"local PostgreSQL on 127.0.0.1:{conn.port} (data in {pg_root}), database billing: "
                     "billing.subscriptions holds 233 rows (created now; two of unknown companies, one soft-deleted)",
                     "connection billing_db logs in as billing_reader (read-only: SELECT only), password in "
                     "GSDP_BILLING_DB_PASSWORD",
                     "sync now of connection billing_db: 1 run(s)",
                     f"connection billing_db (PostgreSQL, 127.0.0.1:{conn.port}/billing): synced datasets (gs_ops.syncs)",
                     "  subscriptions       full              1      1      233        1",
                     "            billing_subscriptions       gs.subscription     Partial Success     233   230     0"
                     "     0    2    1",
                     "    billing_subscriptions        2 x company_id lookup_no_match    e.g. record SUB-00001: no "
                     "company record matches external_id=A90001",
                     "gs.subscription             230           0",
                     "Assets > source/billing_db/subscriptions", "./dev sql \"SELECT s.external_id"):
            assert line in out, out
        assert password not in out
        con = duckdb.connect(os.environ["GSDP_WAREHOUSE"], read_only=True)
        try:
            # every subscription at its company, found by the CSV account id
            assert con.execute("SELECT count(*), count(DISTINCT s.company_id), min(c.external_id), max(c.external_id), "
                               "count(*) FILTER (WHERE s.product = 'Platform') FROM gs.subscription s "
                               "JOIN gs.company c ON c.gsid = s.company_id").fetchone() == (230, 125, "A00000", "A00496", 125)
            assert con.execute("SELECT count(*) FROM gs.subscription WHERE external_id = 'SUB-00003'").fetchone() == (0,)
        finally:
            con.close()
        # the server stopped at the end; its data stays, and the login can only read
        server = LocalPostgres(pg_root)
        assert not server.running()
        owner = replace(server.start(), database="billing")
        with owner.connect() as c:
            assert c.execute("SELECT has_table_privilege('billing_reader', 'billing.subscriptions', 'SELECT'), "
                             "has_table_privilege('billing_reader', 'billing.subscriptions', 'INSERT'), "
                             "has_table_privilege('billing_reader', 'billing.subscriptions', 'UPDATE')").fetchone() \
                == (True, False, False)
        server.stop()

        # a second run reuses the data: an incremental sync reads only the row at the cursor again
        outcomes = run_demo.run_sql_demo(cfg, instance, {"subscription": 230}, pg_root=pg_root,
                                         sample_dir=tmp_path / "sample")
        out = capsys.readouterr().out
        assert [ok for _, _, ok, _ in outcomes] == [True], out
        for line in ("billing.subscriptions holds 233 rows (kept from the last run;",
                     "  subscriptions       incremental       1      1        1        0",
                     "            billing_subscriptions       gs.subscription     Success               1     0     0"
                     "     1    0    0",
                     "gs.subscription             230         230"):
            assert line in out, out
        assert os.environ["GSDP_BILLING_DB_PASSWORD"] != password  # a new password each start


@pytest.mark.slow  # initialises a PostgreSQL data directory
def test_sql_demo_says_what_to_do_when_its_port_is_taken(tmp_path, monkeypatch, capsys, pg_root):
    import socket

    import dagster as dg

    from gs_assets.config.loader import load_platform_config
    from gs_assets.demo import run_demo
    from gs_assets.demo.sample_data import generate

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    monkeypatch.setenv("GSDP_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("GSDP_CONFIG_DIR", str(REPO / "config"))
    (tmp_path / "dh").mkdir()
    generate(tmp_path / "sample")
    cfg = load_platform_config()
    with socket.socket() as other:  # another program on the port the connection names
        other.bind(("127.0.0.1", 0))
        other.listen()
        cfg.connections["billing_db"].port = other.getsockname()[1]
        with dg.DagsterInstance.get() as instance:
            outcomes = run_demo.run_sql_demo(cfg, instance, {}, pg_root=pg_root, sample_dir=tmp_path / "sample")
    assert outcomes == [("billing_subscriptions", None, False, None)]
    err = capsys.readouterr().err
    assert (f"SQL connection billing_db: not synced. The demo's PostgreSQL cannot listen on 127.0.0.1:"
            f"{cfg.connections['billing_db'].port}: another program uses that port. Stop it, or give "
            "connections.billing_db.port in config/connections.yaml a free port") in err, err
    assert "Traceback" not in err
