"""Schedules for file jobs that set `schedule` (a cron expression) in config.

At each tick the job's source is scanned like the sensor does, and a load is requested for each
file version not yet requested by this schedule. Loading is idempotent (the file ledger), so a
file that the sensor also picked up is not loaded twice.
"""


import json

import dagster as dg
from dagster_aws.s3 import S3Resource

from gs_assets.assets.file_sources import SourceObject
from gs_assets.config.loader import PlatformConfig
from sensors.s3_files import plan_file_runs, source_job_name


def build_file_job_schedules(cfg: PlatformConfig, sources: list[SourceObject]) -> list[dg.ScheduleDefinition]:
    schedules = []
    for job in sorted(cfg.jobs.values(), key=lambda j: j.name):
        if not job.schedule:
            continue
        so = next(s for s in sources if s.key == dg.AssetKey(job.source_asset_path))
        dest = dg.AssetKey(["gs", job.destination])

        def _tick(context: dg.ScheduleEvaluationContext, s3: S3Resource, so=so, dest=dest, job=job):
            planned, _ = plan_file_runs(cfg, [so], s3.get_client(), {})
            runs = [dg.RunRequest(run_key=f"{p.key}|{p.etag}", partition_key=p.key,
                                  tags={"gsdp/etag": p.etag, "gsdp/job": job.name})
                    for p in planned]
            if not runs:
                return dg.SkipReason(f"no files match {job.source.rule_text}")
            # Schedules cannot return partition requests; register the file partitions directly.
            context.instance.add_dynamic_partitions(so.partitions_name, sorted({p.key for p in planned}))
            return runs

        schedules.append(dg.ScheduleDefinition(
            name=f"{job.name}_schedule", cron_schedule=job.schedule, execution_timezone=job.timezone,
            job_name=f"{job.name}_job", execution_fn=_tick,
            description=f"Scans for {job.source.rule_text} and loads new files via job {job.name}"))
    return schedules
