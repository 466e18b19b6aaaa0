"""The one place that wires assets, resources, sensors and schedules from the user's config.

`dagster dev` (workspace.yaml) and `dagster definitions validate` load this module. A broken
config fails here, at load time, with the file and key in the message.
"""

from __future__ import annotations

import dagster as dg

from gs_assets.assets.matrix_objects import build_object_asset
from gs_assets.chains import build_chain_job
from gs_assets.config.loader import PlatformConfig, load_platform_config
from gs_assets.connectors import registry
from gs_assets.dagster_jobs import build_apply_objects_job, build_job_asset_job
from gs_assets.settings import Settings
from resources.smtp import smtp_resource_from_settings
from resources.warehouse import Warehouse
from schedules.chain_schedules import build_chain_schedules
from sensors.lookup_retry import build_lookup_retry_sensor
from sensors.notifications import build_notification_sensors
from sensors.run_recovery import build_run_recovery_sensor


def warehouse_path() -> str:
    return Settings.from_env().warehouse


def warehouse_from_env(database: str | None = None) -> Warehouse:
    """The warehouse resource as configured by GSDP_WAREHOUSE / GSDP_WAREHOUSE_MEMORY_LIMIT."""
    return Warehouse(database=database or warehouse_path(),
                     memory_limit=Settings.from_env().warehouse_memory_limit)


def build_definitions(cfg: PlatformConfig | None = None, *, warehouse: str | None = None) -> dg.Definitions:
    cfg = cfg or load_platform_config()
    kinds = registry.kinds()  # each connector kind brings its assets, jobs, sensors, schedules, resources
    source_assets = [a for k in kinds for a in k.assets(cfg)]
    object_assets = [build_object_asset(cfg, obj) for obj in cfg.model.objects.values()]
    jobs = [j for k in kinds for j in k.jobs(cfg)]
    jobs += [build_job_asset_job(cfg, job) for job in sorted(cfg.jobs.values(), key=lambda j: j.name)]
    jobs += [build_chain_job(cfg, chain) for chain in sorted(cfg.chains.values(), key=lambda c: c.name)]
    # Rows waiting for a looked-up record are retried by their destination's materialization.
    retry_sensors = []
    if any(j.retry_unmatched_lookups is not None for j in cfg.jobs.values()):
        jobs.append(build_apply_objects_job())
        retry_sensors.append(build_lookup_retry_sensor(cfg, jobs[-1]))
    wh = warehouse_from_env(warehouse)
    jobs_by_name = {j.name: j for j in jobs}
    return dg.Definitions(
        assets=[*source_assets, *object_assets],
        # A run's steps share one process: each step process would import Dagster and the config
        # again (seconds per step); steps that write wait for the `warehouse` pool either way.
        executor=dg.in_process_executor,
        jobs=jobs,
        sensors=[s for k in kinds for s in k.sensors(cfg, jobs_by_name, wh)] + build_notification_sensors(cfg)
        + [build_run_recovery_sensor()] + retry_sensors,
        schedules=[s for k in kinds for s in k.schedules(cfg)] + build_chain_schedules(cfg),
        resources={"warehouse": wh, "smtp": smtp_resource_from_settings(),
                   **{key: r for k in kinds for key, r in k.resources().items()}},
    )


defs = build_definitions()
