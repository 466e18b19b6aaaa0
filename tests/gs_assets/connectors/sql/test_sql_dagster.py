"""The SQL kind through Dagster, against the real PostgreSQL: the definitions carry one source asset
per dataset (time partitions, kinds, the `sql` resource), `gsdp run JOB` syncs and applies, an
earlier partition re-syncs its window without moving the cursor, a failing sync fails the run
with its paragraph, `gsdp connections test` checks the datasets, and a schedule syncs the latest
partition."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pytest
import yaml

from gs_assets.cli import main
from gs_assets.config.loader import load_platform_config
from gs_assets.dagster_jobs import job_asset_job_name
from gs_assets.definitions import build_definitions
from tests.conftest import write_config
from tests.gs_assets.connectors.sql.sql_harness import sql_job

pytestmark = pytest.mark.slow  # Dagster runs in process: the full suite (CI) runs them, the fast lane does not

OBJECTS = """
custom_objects:
  sub__gc:
    fields:
      external_id: {type: string, max_length: 100}
      product: {type: string, max_length: 255}
      mrr: {type: currency, min: 0}
"""


@pytest.fixture
def world(tmp_path, monkeypatch, pg_database):
    with pg_database.connect() as c:
        c.execute("CREATE TABLE subs (id int PRIMARY KEY, product text, mrr numeric, updated_at timestamptz)")
        c.execute("INSERT INTO subs SELECT g, 'P' || g, g, timestamptz '2025-01-10 00:00+00' + g * interval '1 hour' "
                  "FROM generate_series(1, 20) g")
    ro = pg_database.read_only_role()
    job = sql_job("subs", "sub__gc", ["external_id"], {"id": "external_id", "product": "product", "mrr": "mrr"},
                  table="public.subs", cursor={"column": "updated_at", "lookback_seconds": 0,
                                                "visibility_lag_seconds": 0}, schedule="0 * * * *",
                  connection="billing")
    doc = {"connections": {"billing": {"type": "sql", "system": "postgresql", **ro.params(), "tls": {"mode": "prefer"},
                                       "sync_start": "2025-01-01"}},
           "jobs": {"subs": job}}
    write_config(tmp_path / "config", yaml.safe_dump(doc, sort_keys=False), OBJECTS)
    monkeypatch.setenv("GSDP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("GSDP_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("GSDP_BILLING_PASSWORD", ro.password)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    (tmp_path / "dh").mkdir()

    class World:
        db = pg_database
        root = tmp_path

        def rows(self, sql):
            import duckdb
            with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
                return con.execute(sql).fetchall()

        def defs(self):
            return build_definitions(load_platform_config(tmp_path / "config"))
    return World()


def test_definitions_carry_the_dataset_asset_its_job_and_schedule(world):
    defs = world.defs()
    spec = defs.resolve_assets_def(dg.AssetKey(["source", "billing", "subs"]))
    assert {"postgresql", "sql"} <= set(spec.specs_by_key[spec.key].kinds)
    assert isinstance(spec.partitions_def, dg.MonthlyPartitionsDefinition)
    assert "sql" in spec.required_resource_keys
    assert defs.resolve_schedule_def("subs_schedule").job_name == job_asset_job_name("subs")


def test_gsdp_run_syncs_then_an_earlier_partition_resyncs_its_window(world, capsys):
    assert main(["run", "subs"]) == 0
    assert world.rows("SELECT count(*) FROM gs.sub__gc") == [(20,)]
    with world.db.connect() as c:  # a row that appeared with an old stamp: below the cursor, missed by syncs
        c.execute("INSERT INTO subs VALUES (99, 'late', 1, timestamptz '2025-01-10 05:30+00')")
    assert main(["run", "subs"]) == 0
    assert world.rows("SELECT count(*) FROM gs.sub__gc WHERE external_id = '99'") == [(0,)]
    cursor = world.rows("SELECT cursor_to->>'cursor' FROM gs_ops.syncs ORDER BY synced_at DESC LIMIT 1")
    res = world.defs().resolve_job_def(job_asset_job_name("subs")).execute_in_process(
        instance=dg.DagsterInstance.get(), partition_key="2025-01-01", raise_on_error=False)
    assert res.success
    assert world.rows("SELECT count(*) FROM gs.sub__gc WHERE external_id = '99'") == [(1,)]
    modes = world.rows("SELECT mode, window_from, window_to FROM gs_ops.syncs WHERE mode = 'window'")
    assert modes == [("window", "2025-01-01T00:00:00+00:00", "2025-02-01T00:00:00+00:00")]
    latest = world.rows("SELECT cursor_to->>'cursor' FROM gs_ops.syncs WHERE mode <> 'window' "
                        "ORDER BY synced_at DESC LIMIT 1")
    assert latest == cursor


def test_a_failing_sync_fails_the_run_with_its_paragraph(world, capsys):
    with world.db.connect() as c:
        c.execute("ALTER TABLE subs RENAME COLUMN mrr TO amount")
    assert main(["run", "subs"]) == 1
    err = capsys.readouterr()
    text = err.out + err.err
    assert "public.subs has no column 'mrr' (read by subs)" in text
    assert "Traceback" not in text


def test_connections_test_checks_the_dataset(world, capsys):
    assert main(["connections", "test", "billing"]) == 0
    out = capsys.readouterr().out
    assert "dataset subs" in out and "OK, reads 4 of its 4 column(s)" in out
    assert "may also write" not in out  # a read-only login


def test_the_schedule_syncs_the_latest_partition(world):
    defs = world.defs()
    sched = defs.resolve_schedule_def("subs_schedule")
    with dg.build_schedule_context(scheduled_execution_time=datetime(2026, 12, 1, 6),
                                   repository_def=defs.get_repository_def()) as ctx:
        req = sched.evaluate_tick(ctx).run_requests[0]
    from gs_assets.connectors.incremental import current_key
    assert req.partition_key == current_key(load_platform_config(world.root / "config").connections["billing"])
