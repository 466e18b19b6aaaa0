"""The S3 file kind: files in a bucket (connection `type: s3`).

Units of work are file versions under a job's prefix that its pick-up rule takes (discovery); the
reader downloads, decompresses and converts a file and lands it as a prepared CSV file (reader);
after the loads of a file have committed it moves to the archive or error prefix (lifecycle).
"""

from __future__ import annotations

from gs_assets.config.jobs import S3Connection
from gs_assets.config.loader import PlatformConfig
from gs_assets.connectors.kind import Kind
from gs_assets.connectors.s3_files.assets import build_file_source_asset, matching_keys, source_objects
from gs_assets.connectors.s3_files.lifecycle import finish_files
from gs_assets.connectors.s3_files.reader import land
from gs_assets.connectors.s3_files.resource import s3_resource_from_env
from resources.sqs import sqs_resource_from_settings
from gs_assets.connectors.s3_files.schedules import build_file_job_schedules
from gs_assets.connectors.s3_files.sensor import build_s3_files_sensor, build_source_jobs
from gs_assets.dagster_jobs import source_job_name
from gs_assets.engine.pipeline import jobs_reading


def _assets(cfg: PlatformConfig) -> list:
    return [build_file_source_asset(cfg, so) for so in source_objects(cfg)]


def _jobs(cfg: PlatformConfig) -> list:
    return build_source_jobs(cfg, source_objects(cfg))


def _sensors(cfg: PlatformConfig, jobs_by_name: dict, warehouse) -> list:
    # The sensor watches sources read by a job that loads on arrival (no schedule, no chain); files
    # of sources read only by scheduled jobs or chain members wait for their schedule or chain.
    sources = source_objects(cfg)
    watched = [so for so in sources if any(cfg.loads_on_arrival(j) for j in jobs_reading(cfg, so.connection, so.name))]
    source_jobs = [jobs_by_name[source_job_name(so.connection, so.name)] for so in sources]
    return [build_s3_files_sensor(cfg, watched, source_jobs, warehouse=warehouse)] if watched else []


def _schedules(cfg: PlatformConfig) -> list:
    return build_file_job_schedules(cfg, source_objects(cfg))


S3_FILES = Kind(
    type="s3",
    description="CSV/TSV files in an S3 bucket",
    connection_model=S3Connection,
    discover=matching_keys,
    land=land,
    after_commit=finish_files,
    assets=_assets,
    jobs=_jobs,
    sensors=_sensors,
    schedules=_schedules,
    resources=lambda: {"s3": s3_resource_from_env(), "sqs": sqs_resource_from_settings()},  # sqs: listing: sqs
)
