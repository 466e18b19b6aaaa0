"""Schedules for file jobs that set `schedule` in config (every day / weekday / week / month at a
time in a time zone, or cron).

At each tick the job's source is scanned like the sensor does, and a load is requested for each
file version (ETag + LastModified) not yet requested by this schedule. The sensor does not load
files for a scheduled job: it watches only sources read by a job without schedule or chain, and
when a source is read by both kinds, the sensor's run lands the file and applies the unscheduled
jobs; this schedule applies its job later (landing is idempotent: the file ledger), and the file
is archived once every job reading it has applied it.
"""



import dagster as dg
from dagster_aws.s3 import S3Resource

from gs_assets.connectors.s3_files.assets import SourceObject
from gs_assets.config.loader import PlatformConfig
from gs_assets.dagster_jobs import job_asset_job_name
from gs_assets.dynamic_partitions import add_partitions
from gs_assets.connectors.s3_files.sensor import plan_file_runs


def _build_one(cfg: PlatformConfig, so: SourceObject, job) -> dg.ScheduleDefinition:
    @dg.schedule(name=f"{job.name}_schedule", cron_schedule=job.schedule.cron_expression(),
                 execution_timezone=job.schedule_timezone, job_name=job_asset_job_name(job.name),
                 description=f"{job.schedule.describe()} ({job.schedule_timezone}): scans for "
                             f"{job.source.rule_text} and loads new files via job {job.name}")
    def _tick(context: dg.ScheduleEvaluationContext, s3: S3Resource):
        planned, _ = plan_file_runs(cfg, [so], s3.get_client(), {})
        if not planned:
            return dg.SkipReason(f"no files match {job.source.rule_text}")
        # Schedules cannot return partition requests; register the file partitions directly.
        add_partitions(context.instance, so.partitions_name, sorted({p.key for p in planned}))
        return [dg.RunRequest(run_key=f"{p.key}|{p.version or p.etag}", partition_key=p.key,
                              tags={"gsdp/etag": p.etag, "gsdp/job": job.name}) for p in planned]

    return _tick


def build_file_job_schedules(cfg: PlatformConfig, sources: list[SourceObject]) -> list[dg.ScheduleDefinition]:
    out = []
    for job in sorted(cfg.jobs.values(), key=lambda j: j.name):
        if cfg.connections[job.connection].type != "s3":
            continue  # a job on another kind's connection (its kind schedules it)
        if job.schedule and cfg.chain_of(job.name) is None:  # a chain's schedule replaces its members'
            so = next(s for s in sources if s.key == dg.AssetKey(job.source_asset_path))
            out.append(_build_one(cfg, so, job))
    return out
