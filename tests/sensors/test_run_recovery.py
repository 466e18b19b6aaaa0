"""run_recovery_sensor: a started run whose processes are all gone is failed and its pool slot
freed; a run with a live process is left alone. (The SIGKILL drill covers real killed runs.)"""

import os
import subprocess
import sys

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData

from sensors.run_recovery import build_run_recovery_sensor, process_alive
from tests.dagster_helpers import persistent_instance


def started_run(instance, pid: int) -> dg.DagsterRun:
    run = instance.add_run(dg.DagsterRun(job_name="load_files__accounts_job", run_id=os.urandom(16).hex()[:8] + "-0000-0000-0000-000000000000",
                                         status=dg.DagsterRunStatus.STARTED))
    event = DagsterEvent(event_type_value=DagsterEventType.ENGINE_EVENT.value, job_name=run.job_name,
                         message="Started process for run", event_specific_data=EngineEventData({}), pid=pid)
    instance.report_dagster_event(event, run_id=run.run_id)
    return run


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_run_whose_process_is_gone_is_failed_and_a_live_one_is_not(tmp_path):
    instance = persistent_instance(tmp_path)
    dead = started_run(instance, dead_pid())
    live = started_run(instance, os.getpid())
    assert not process_alive(dead_pid()) and process_alive(os.getpid())
    instance.event_log_storage.set_concurrency_slots("warehouse", 1)
    assert instance.event_log_storage.claim_concurrency_slot("warehouse", dead.run_id, "source__files__accounts").is_claimed

    result = build_run_recovery_sensor()(dg.build_sensor_context(instance=instance))

    assert dead.run_id in result.skip_message and live.run_id not in result.skip_message
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(live.run_id).status == dg.DagsterRunStatus.STARTED
    assert instance.event_log_storage.get_concurrency_info("warehouse").active_slot_count == 0
    failure = instance.get_records_for_run(dead.run_id, of_type=DagsterEventType.RUN_FAILURE).records[0]
    assert "Re-execute the run" in failure.event_log_entry.dagster_event.message
