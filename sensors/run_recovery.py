"""Runs whose process died (SIGKILL, OOM killer, a reboot) are failed and give back their pool slot.

Dagster's default run launcher cannot tell that a run worker is gone: the run would stay
"Started" for ever and keep its `warehouse` pool slot, so every later load would wait behind it.
The warehouse itself is safe (each load commits in one transaction; a killed one leaves nothing),
so the run only needs to be marked failed, with a message that says what to do, and its slot freed.

A run counts as dead when none of the processes that wrote its events is alive on this machine.
This holds for local deployments (`dagster dev`, the default launcher), where runs start on the
machine of the code server; container launchers have their own run monitoring.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.launcher import DefaultRunLauncher

ACTIVE = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
_EVENTS = {DagsterEventType.RUN_START, DagsterEventType.STEP_START, DagsterEventType.ENGINE_EVENT}


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, killed but not yet reaped by its parent, is dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def run_pids(instance: dg.DagsterInstance, run_id: str) -> set[int]:
    pids: set[int] = set()
    cursor = None
    while True:
        conn = instance.get_records_for_run(run_id, cursor=cursor, of_type=_EVENTS, limit=500)
        for rec in conn.records:
            ev = rec.event_log_entry.dagster_event
            if ev is not None and ev.pid:
                pids.add(ev.pid)
        if not conn.has_more:
            return pids
        cursor = conn.cursor


def recover_dead_runs(instance: dg.DagsterInstance, log=None) -> list[str]:
    """Fail every started run whose processes are all gone and free its pool slots; their ids."""
    recovered = []
    for rec in instance.get_run_records(dg.RunsFilter(statuses=ACTIVE)):
        run = rec.dagster_run
        pids = run_pids(instance, run.run_id)
        if not pids or any(process_alive(p) for p in pids):
            continue
        msg = (f"The process of this run ({', '.join(map(str, sorted(pids)))}) ended without reporting (killed or "
               f"crashed). Loads that had not committed left nothing in the warehouse and stay pending; files were "
               f"not archived. Re-execute the run (or materialize the partition again) to load them.")
        held = run.run_id in instance.event_log_storage.get_concurrency_run_ids()
        instance.report_run_failed(run, message=msg)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        recovered.append(run.run_id)
        if log:
            log.warning(f"run {run.run_id} ({run.job_name}): {msg}" + (" Its pool slot was freed." if held else ""))
    return recovered


def build_run_recovery_sensor(minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    @dg.sensor(name="run_recovery_sensor", minimum_interval_seconds=minimum_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Fails runs whose process was killed and frees their warehouse pool slot, so later "
                           "loads do not wait behind them (local deployments)")
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        if not isinstance(context.instance.run_launcher, DefaultRunLauncher):
            return dg.SkipReason("runs start through a launcher with its own run monitoring")
        recovered = recover_dead_runs(context.instance, context.log)
        return dg.SkipReason(f"failed {len(recovered)} dead run(s): {', '.join(recovered)}" if recovered
                             else "no dead runs")

    return _sensor
