"""The S3 file kind: files in a bucket (connection `type: s3`).

Units of work are file versions under a job's prefix that its pick-up rule takes (discovery); the
reader downloads, decompresses and converts a file and lands it as a prepared CSV file (reader);
after the loads of a file have committed it moves to the archive or error prefix (lifecycle).
"""

from __future__ import annotations

import os

from gs_assets.config.jobs import Job
from gs_assets.config.loader import PlatformConfig
from gs_assets.connectors.kind import Kind, UnitNotFound
from gs_assets.connectors.s3_files.assets import (SourceObject, build_file_source_asset, land_partition, matching_keys,
                                                  source_objects)
from gs_assets.connectors.s3_files.config import FileSource, S3Connection
from gs_assets.connectors.s3_files.lifecycle import finish_files, unfinished_loads
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


def discover(cfg: PlatformConfig, job: Job, resources) -> list[str]:
    """Every file directly under the job's prefix that its pick-up rule takes, by name."""
    return matching_keys(resources["s3"], cfg.connections[job.connection].bucket, job.source)


def land(context, cfg: PlatformConfig, warehouse, resources, connection: str, source_object: str, key: str) -> dict:
    """Land the file `key` (a partition of the source asset); its materialization metadata."""
    so = SourceObject(connection, source_object, cfg.connections[connection].bucket)
    return land_partition(context, cfg, so, warehouse, resources["s3"], key)


def after_commit(warehouse, cfg: PlatformConfig, resources, destination: str, log=None) -> list:
    """Error files beside, and the move to the archive or error prefix of, every file whose loads
    into `destination` (and every other object reading it) have committed."""
    loads = unfinished_loads(warehouse, cfg, destination)
    return finish_files(warehouse, cfg, resources["s3"], loads, log) if loads else []


def partitions_name(connection: str, source_object: str) -> str:
    return SourceObject(connection, source_object, "").partitions_name


def nothing_to_load(cfg: PlatformConfig, job: Job) -> str:
    bucket = cfg.connections[job.connection].bucket
    return f"no file matching {job.source.rule_text} under s3://{bucket}/{job.source.prefix}"


def dry_run(warehouse, cfg: PlatformConfig, job: Job, resources, unit: str, preview_rows: int = 10):
    """`gsdp test-run`: the file `unit` (a local path, or a key in the connection's bucket) through
    the job, rolled back."""
    from gs_assets.connectors.s3_files.dry_run import dry_run as run
    if os.path.exists(unit):
        chunks, name, label = _local_chunks(unit), os.path.basename(unit), unit
    else:
        bucket = cfg.connections[job.connection].bucket
        try:
            body = resources["s3"].get_object(Bucket=bucket, Key=unit)["Body"]
        except Exception as e:  # noqa: BLE001 - reported as a user error
            raise UnitNotFound(f"{unit!r} is neither a local file nor a readable key in s3://{bucket}/ ({e})") from None
        chunks, name, label = body.iter_chunks(8 << 20), os.path.basename(unit), f"s3://{bucket}/{unit}"
    return run(warehouse, cfg, job, chunks=chunks, name=name, source_file=label, preview_rows=preview_rows)


def _local_chunks(path: str):
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            yield chunk


S3_FILES = Kind(
    type="s3",
    description="CSV/TSV files in an S3 bucket",
    connection_model=S3Connection,
    source_model=FileSource,
    discover=discover,
    land=land,
    after_commit=after_commit,
    partitions_name=partitions_name,
    nothing_to_load=nothing_to_load,
    dry_run=dry_run,
    assets=_assets,
    jobs=_jobs,
    sensors=_sensors,
    schedules=_schedules,
    resources=lambda: {"s3": s3_resource_from_env(), "sqs": sqs_resource_from_settings()},  # sqs: listing: sqs
)
