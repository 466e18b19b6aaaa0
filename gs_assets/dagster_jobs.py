"""Dagster job names and the asset-job builders, in one place.

- source jobs `load_<connection>__<source object>_job`: land one unit of a source (the partition)
  and apply it to every object its jobs that load on arrival write;
- per-job asset jobs `<job>_job`: land one unit through one job (plus the jobs of the same source
  that load on arrival) into its destination;
- chain jobs `<chain>_chain_job` (built by gs_assets.chains: its ops run the members in order);
- `apply_objects_job`: apply pending loads (and rows waiting for a lookup) into matrix objects.
"""

from __future__ import annotations

import dagster as dg

from gs_assets.config.jobs import Job
from gs_assets.config.loader import PlatformConfig
from gs_assets.engine.pipeline import jobs_reading

APPLY_OBJECTS_JOB = "apply_objects_job"


def source_job_name(connection: str, source_object: str) -> str:
    return f"load_{connection}__{source_object}_job"


def job_asset_job_name(job_name: str) -> str:
    return f"{job_name}_job"


def chain_job_name(chain_name: str) -> str:
    return f"{chain_name}_chain_job"


def build_source_job(cfg: PlatformConfig, connection: str, source_object: str, key: dg.AssetKey):
    dests = sorted({j.destination for j in jobs_reading(cfg, connection, source_object) if cfg.loads_on_arrival(j)})
    return dg.define_asset_job(
        source_job_name(connection, source_object),
        selection=dg.AssetSelection.assets(key, *[dg.AssetKey(["gs", d]) for d in dests]),
        description=f"Land one file of {key.to_user_string()}"
                    + (f" and load it into {', '.join(dests)}." if dests else " (its jobs apply it at their schedule or chain)."),
        tags={"gsdp/source": key.to_user_string()},
    )


def build_job_asset_job(cfg: PlatformConfig, job: Job):
    # This job, plus the jobs of the same source that load on arrival (they apply every file
    # of their source whichever run lands it), so the file is finished and archived.
    siblings = sorted({j.destination for j in jobs_reading(cfg, job.connection, job.source.object)
                       if j.name != job.name and cfg.loads_on_arrival(j)} - {job.destination})
    return dg.define_asset_job(
        job_asset_job_name(job.name),
        selection=dg.AssetSelection.assets(dg.AssetKey(job.source_asset_path), dg.AssetKey(["gs", job.destination]),
                                           *[dg.AssetKey(["gs", d]) for d in siblings]),
        description=f"Load one file through job {job.name} into {job.destination} (pick the file as the partition)"
                    + (f"; jobs of the same source that load on arrival apply it too ({', '.join(siblings)})"
                       if siblings else "") + ".",
        tags={"gsdp/job": job.name},
    )


def build_apply_objects_job() -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(APPLY_OBJECTS_JOB, selection=dg.AssetSelection.groups("matrix"), description=(
        "Apply pending loads (and rows waiting for a lookup) into matrix objects; run with the objects to "
        "apply as asset selection"))
