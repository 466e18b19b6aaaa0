"""The Dagster instance settings written by ./dev: the warehouse pool, the run queue, run
monitoring; a file the user took over (marker line removed) is left alone."""

import dagster as dg

from gs_assets.instance_config import MARKER, write_instance_config


def test_the_instance_has_a_one_slot_pool_a_run_queue_and_run_monitoring(tmp_path):
    write_instance_config(tmp_path, max_concurrent_runs=3)
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    conc = instance.get_concurrency_config()
    assert conc.pool_config.default_pool_limit == 1
    assert conc.pool_config.pool_granularity.value == "op"
    assert conc.run_queue_config.max_concurrent_runs == 3
    assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"


def test_an_old_generated_file_is_upgraded_and_a_users_own_file_is_kept(tmp_path):
    (tmp_path / "a").mkdir()
    old = tmp_path / "a" / "dagster.yaml"
    old.write_text("# Local Dagster instance for gs-data-platform. Writers ...\nconcurrency:\n  pools:\n    default_limit: 1\n")
    write_instance_config(tmp_path / "a")
    assert old.read_text().startswith(MARKER) and "run_monitoring" in old.read_text()
    (tmp_path / "b").mkdir()
    mine = tmp_path / "b" / "dagster.yaml"
    mine.write_text("telemetry:\n  enabled: false\n")
    write_instance_config(tmp_path / "b")
    assert mine.read_text() == "telemetry:\n  enabled: false\n"
