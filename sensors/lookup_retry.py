"""`lookup_retry_sensor`: when rows wait for a looked-up record (job option
`retry_unmatched_lookups`) and that object has got new or changed records since they were last
tried, request a run of the waiting job's destination object (`apply_objects_job`, with the object
as asset selection); its materialization retries them (gs_assets/engine/lookup_retry.py).

The sensor reads the warehouse read-only, waiting for a load that is writing (bounded below the
sensor's own timeout). The run key holds what it saw (the due rows per load and when the
looked-up objects last changed), so one change is requested once; a later change asks again.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from gs_assets.config.loader import PlatformConfig
from gs_assets.dagster_jobs import APPLY_OBJECTS_JOB
from gs_assets.engine.lookup_retry import due_loads, last_changes, waiting_table_exists
from gs_assets.settings import Settings
from resources.warehouse import Warehouse, WarehouseBusy

TAG = "gsdp/lookup_retry"


def due_destinations(cfg: PlatformConfig, warehouse: Warehouse, now: datetime | None = None) -> dict[str, list[str]]:
    """Destination objects with rows due for a lookup retry -> what makes them due (for the run key)."""
    # A scheduled job or chain member retries in its own runs (its schedule or chain), like its loads.
    jobs = sorted((j for j in cfg.jobs.values() if j.retry_unmatched_lookups is not None and cfg.loads_on_arrival(j)),
                  key=lambda j: j.name)
    if not jobs or (warehouse.database not in (":memory:", "") and not Path(warehouse.database).exists()):
        return {}
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    out: dict[str, list[str]] = {}
    with warehouse.read(wait_seconds=Settings.from_env().sensor_warehouse_wait_seconds) as con:
        if not waiting_table_exists(con):
            return {}
        for job in jobs:
            due = due_loads(con, cfg.model, job, now)
            if due:
                changes = last_changes(con, cfg.model, job)
                out.setdefault(job.destination, []).extend(
                    [f"{job.name}:{d.load_id}:{d.rows}:{d.last_tried_at}" for d in due]
                    + [f"{name}@{ts}" for name, ts in sorted(changes.items())])
    return out


def build_lookup_retry_sensor(cfg: PlatformConfig, job_def) -> dg.SensorDefinition:
    @dg.sensor(name="lookup_retry_sensor", job=job_def, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Retries rows whose lookup found nothing once the looked-up object has new records "
                           "(jobs with retry_unmatched_lookups): requests a run of their destination object")
    def _sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse):
        try:
            due = due_destinations(cfg, warehouse)
        except WarehouseBusy as e:
            return dg.SkipReason(f"{e} Checking again on the next tick.")
        if not due:
            return dg.SkipReason("no rows wait for a looked-up record that has arrived since they were tried")
        return [dg.RunRequest(run_key=f"lookup_retry:{dest}:{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:16]}",
                              asset_selection=[dg.AssetKey(["gs", dest])], tags={TAG: dest})
                for dest, parts in sorted(due.items())]

    return _sensor
