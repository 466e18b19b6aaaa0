"""The Bulk API kind: CSV files pushed over HTTP (jobs with `bulk_upload: true`).

The Bulk API service (app.py) checks an upload and stages it in the job's S3 connection; its
sensor takes queued uploads in arrival order (units of work) and requests the job's run, which
lands the file through the S3 file reader and archives it like any file (the kind rides on the S3
kind's connections, so it has no connection model of its own).
"""

from __future__ import annotations

from gs_assets.config.jobs import Job
from gs_assets.config.loader import PlatformConfig
from gs_assets.connectors.bulk_upload import access_keys as ak
from gs_assets.connectors.bulk_upload import requests_store as rs
from gs_assets.connectors.bulk_upload.sensor import build_bulk_sensors
from gs_assets.connectors.kind import Kind
from gs_assets.connectors.s3_files import connector as s3_files


def discover(cfg: PlatformConfig, job: Job, resources) -> list[str]:
    """The staged S3 keys of the job's uploads still queued, in arrival order."""
    con = rs.ensure(ak.connect())
    try:
        return [r.s3_key for r in rs.queued_after(con, 0) if r.job == job.name]
    finally:
        con.close()


def _sensors(cfg: PlatformConfig, jobs_by_name: dict, warehouse) -> list:
    return build_bulk_sensors(cfg, jobs_by_name)


BULK_UPLOAD = Kind(
    type="bulk_upload",
    description="CSV uploads through the Bulk API (HTTP), staged in the job's S3 connection",
    connection_model=None,
    discover=discover,
    land=s3_files.land,  # an upload is a file in the job's S3 connection
    after_commit=s3_files.after_commit,
    partitions_name=s3_files.partitions_name,
    sensors=_sensors,
)
