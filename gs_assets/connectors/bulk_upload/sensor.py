"""Bulk API uploads through Dagster: a sensor turns queued uploads into runs of their job, and
run status sensors write each run's outcome back to the upload's status.

`bulk_uploads_sensor` reads the Bulk API's queue (its SQLite file) after its cursor and requests
one run of `<job>_job` per upload, with the landed S3 key as the file partition, so an upload is
loaded exactly like a file the S3 sensor found (and shows as a partition in the UI). The run key
is the request id: a request is never run twice. `bulk_status_success_sensor` and
`bulk_status_failure_sensor` copy the job run's status, counts, timings and error file into the
request, which the service reports. Dagster's run status sensors skip a run for good when they
fail (say the warehouse stayed busy past their wait), so `bulk_uploads_sensor` also settles
uploads still "running" whose run ended a while ago (GSDP_BULK_STATUS_GRACE_SECONDS, default 60).
"""

import time

import dagster as dg

from gs_assets.connectors.s3_files.assets import source_objects
from gs_assets.connectors.bulk_upload import access_keys as ak
from gs_assets.connectors.bulk_upload import requests_store as rs
from gs_assets.config.loader import PlatformConfig
from gs_assets.dagster_jobs import job_asset_job_name
from gs_assets.engine import ledger
from gs_assets.settings import Settings
from resources.warehouse import Warehouse, WarehouseBusy

TAG = "gsdp/bulk_request"


def build_bulk_sensors(cfg: PlatformConfig, jobs_by_name: dict) -> list[dg.SensorDefinition]:
    bulk_jobs = [j for j in cfg.jobs.values() if j.bulk_upload]
    if not bulk_jobs:
        return []
    sources = {(s.connection, s.name): s for s in source_objects(cfg)}

    @dg.sensor(name="bulk_uploads_sensor", jobs=[jobs_by_name[job_asset_job_name(j.name)] for j in bulk_jobs],
               minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Loads files uploaded through the Bulk API (one run per upload, in arrival order)")
    def _uploads(context: dg.SensorEvaluationContext, warehouse: Warehouse) -> dg.SensorResult:
        settled = settle_missed(context, warehouse)
        after = int(context.cursor or 0)
        con = rs.ensure(ak.connect())
        try:
            queued = rs.queued_after(con, after)
            runs, adds, last = [], {}, after
            for req in queued:
                job = cfg.jobs.get(req.job)
                last = max(last, req.seq)
                if job is None or not job.bulk_upload:
                    rs.update(con, req.request_id, status="Failed",
                              error=f"job {req.job!r} no longer accepts uploads (config changed); upload again later")
                    continue
                so = sources[(job.connection, job.source.object)]
                adds.setdefault(so.partitions_name, []).append(req.s3_key)
                runs.append(dg.RunRequest(run_key=req.request_id, job_name=job_asset_job_name(job.name), partition_key=req.s3_key,
                                          tags={TAG: req.request_id, "gsdp/etag": req.etag or "", "gsdp/job": job.name}))
                rs.update(con, req.request_id, status="running")
        finally:
            con.close()
        if not runs:
            return dg.SensorResult(skip_reason="no queued uploads" + (f"; settled {settled} upload status(es) "
                                   f"the status sensors missed" if settled else ""), cursor=str(last))
        by_name = {s.partitions_name: s for s in sources.values()}
        return dg.SensorResult(run_requests=runs, cursor=str(last), dynamic_partitions_requests=[
            by_name[name].partitions_def.build_add_request(keys) for name, keys in adds.items()])

    def settle_missed(context, warehouse: Warehouse) -> int:
        """Record the outcome of uploads still "running" whose Dagster run ended over the grace
        period ago (their status sensor missed them); a busy warehouse waits for the next tick."""
        grace = Settings.from_env().bulk_status_grace_seconds
        db = rs.ensure(ak.connect())
        try:
            running = rs.with_status(db, "running")
        finally:
            db.close()
        settled = 0
        for req in running:
            recs = context.instance.get_run_records(dg.RunsFilter(tags={TAG: req.request_id}), limit=1)
            if not recs or not recs[0].dagster_run.is_finished or not recs[0].end_time \
                    or time.time() - recs[0].end_time < grace:
                continue
            run = recs[0].dagster_run
            error = None if run.status == dg.DagsterRunStatus.SUCCESS else f"the load's Dagster run {run.run_id} {run.status.value.lower()}"
            try:
                record(run, warehouse, error, wait_seconds=10)
            except WarehouseBusy as e:
                context.log.info(f"upload {req.request_id}: {e}; settling on a later tick")
                break
            settled += 1
        return settled

    def record(run, warehouse: Warehouse, error: str | None, wait_seconds: float = 40) -> None:
        request_id = run.tags.get(TAG)
        if not request_id:
            return
        job_name = run.tags.get("gsdp/job")
        with warehouse.read(wait_seconds=wait_seconds) as con:
            found = ledger.last_run_of(con, run.run_id, job_name)
        db = rs.ensure(ak.connect())
        try:
            if found is None:
                rs.update(db, request_id, status="Failed", dagster_run_id=run.run_id,
                          error=error or "the load did not run; see the Dagster run")
                return
            r = found.run
            files = (found.load.error_files if found.load else None) or []
            mine = next((f for f in files if f.endswith(f".{job_name}.errors.csv")), None) or \
                next((f for f in files if f.endswith(".errors.csv")), None)
            rs.update(db, request_id, status=r.status, dagster_run_id=run.run_id, job_run_id=r.job_run_id,
                      started_at=str(r.started_at), ended_at=str(r.ended_at), rows_read=r.rows_read, inserted=r.inserted,
                      updated=r.updated, unchanged=r.unchanged, rejected=r.rejected, filtered=r.filtered,
                      error=r.error or (error if r.status == "Failed" else None), error_file=mine)
        finally:
            db.close()

    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="bulk_status_success_sensor",
                          default_status=dg.DefaultSensorStatus.RUNNING,
                          description="Writes the outcome of Bulk API loads back to their upload status")
    def _done(context: dg.RunStatusSensorContext, warehouse: Warehouse):
        record(context.dagster_run, warehouse, None)

    @dg.run_failure_sensor(name="bulk_status_failure_sensor", default_status=dg.DefaultSensorStatus.RUNNING,
                           description="Marks Bulk API uploads whose load failed, with the error")
    def _failed(context: dg.RunFailureSensorContext, warehouse: Warehouse):
        errors = [e.event_specific_data.error.message.strip() for e in context.get_step_failure_events()
                  if e.event_specific_data and e.event_specific_data.error]
        record(context.dagster_run, warehouse, "; ".join(errors) or (context.failure_event.message if context.failure_event else None))

    return [_uploads, _done, _failed]
