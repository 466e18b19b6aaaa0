"""The one place that wires assets, resources, sensors and schedules from the user's config.

`dagster dev` (workspace.yaml) and `dagster definitions validate` load this module. A broken
config fails here, at load time, with the file and key in the message.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from gs_assets.connectors.s3_files.assets import build_file_source_asset, source_objects
from gs_assets.assets.matrix_objects import build_object_asset
from gs_assets.chains import build_chain_job
from gs_assets.config.loader import PlatformConfig, load_platform_config
from gs_assets.dagster_jobs import build_apply_objects_job, build_job_asset_job
from gs_assets.connectors.s3_files.resource import s3_resource_from_env
from resources.warehouse import DEFAULT_MEMORY_LIMIT, Warehouse
from schedules.chain_schedules import build_chain_schedules
from gs_assets.connectors.s3_files.schedules import build_file_job_schedules
from gs_assets.connectors.bulk_upload.sensor import build_bulk_sensors
from sensors.lookup_retry import build_lookup_retry_sensor
from sensors.notifications import build_notification_sensors
from sensors.run_recovery import build_run_recovery_sensor
from gs_assets.engine.pipeline import jobs_reading
from gs_assets.connectors.s3_files.sensor import build_s3_files_sensor, build_source_jobs

DEFAULT_WAREHOUSE = Path(__file__).resolve().parents[1] / "data" / "warehouse.duckdb"


def warehouse_path() -> str:
    return os.environ.get("GSDP_WAREHOUSE", str(DEFAULT_WAREHOUSE))


def warehouse_from_env(database: str | None = None) -> Warehouse:
    """The warehouse resource as configured by GSDP_WAREHOUSE / GSDP_WAREHOUSE_MEMORY_LIMIT."""
    return Warehouse(database=database or warehouse_path(),
                     memory_limit=os.environ.get("GSDP_WAREHOUSE_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT))


def build_definitions(cfg: PlatformConfig | None = None, *, warehouse: str | None = None) -> dg.Definitions:
    cfg = cfg or load_platform_config()
    sources = source_objects(cfg)
    source_assets = [build_file_source_asset(cfg, so) for so in sources]
    object_assets = [build_object_asset(cfg, obj) for obj in cfg.model.objects.values()]
    source_jobs = build_source_jobs(cfg, sources)
    jobs = list(source_jobs)
    jobs += [build_job_asset_job(cfg, job) for job in sorted(cfg.jobs.values(), key=lambda j: j.name)]
    jobs += [build_chain_job(cfg, chain) for chain in sorted(cfg.chains.values(), key=lambda c: c.name)]
    # Rows waiting for a looked-up record are retried by their destination's materialization.
    retry_sensors = []
    if any(j.retry_unmatched_lookups is not None for j in cfg.jobs.values()):
        jobs.append(build_apply_objects_job())
        retry_sensors.append(build_lookup_retry_sensor(cfg, jobs[-1]))
    # The sensor watches sources read by a job that loads on arrival (no schedule, no chain); files
    # of sources read only by scheduled jobs or chain members wait for their schedule or chain.
    watched = [so for so in sources if any(cfg.loads_on_arrival(j) for j in jobs_reading(cfg, so.connection, so.name))]
    wh = warehouse_from_env(warehouse)
    return dg.Definitions(
        assets=[*source_assets, *object_assets],
        # A run's steps share one process: each step process would import Dagster and the config
        # again (seconds per step); steps that write wait for the `warehouse` pool either way.
        executor=dg.in_process_executor,
        jobs=jobs,
        sensors=([build_s3_files_sensor(cfg, watched, source_jobs, warehouse=wh)] if watched else []) + build_notification_sensors(cfg)
        + build_bulk_sensors(cfg, {j.name: j for j in jobs}) + [build_run_recovery_sensor()] + retry_sensors,
        schedules=build_file_job_schedules(cfg, sources) + build_chain_schedules(cfg),
        resources={
            "warehouse": wh,
            "s3": s3_resource_from_env(),
        },
    )


defs = build_definitions()
