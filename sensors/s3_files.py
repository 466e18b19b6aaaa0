"""The S3 file sensor: registers new files as partitions and requests their loads.

A file version is (key, ETag). The cursor remembers, per source object, the version last requested
for each key, so a tick requests each new or re-uploaded file exactly once and nothing else.
Runs name assets by key: the file's source partition plus the objects its jobs load.
"""


import json
from dataclasses import dataclass

import dagster as dg
from dagster_aws.s3 import S3Resource

from gs_assets.assets.file_sources import SourceObject
from gs_assets.config.loader import PlatformConfig
from gs_assets.engine.pickup import match_file
from gs_assets.engine.pipeline import jobs_reading
from resources.s3 import clean_etag, list_files


@dataclass
class PlannedRun:
    source: SourceObject
    key: str
    etag: str
    destinations: list[str]


def matches(cfg: PlatformConfig, so: SourceObject, key: str) -> bool:
    src = jobs_reading(cfg, so.connection, so.name)[0].source
    return match_file(src.prefix, src.match, src.file_name, key) is not None


def object_ancestors(cfg: PlatformConfig) -> dict[str, set[str]]:
    """For each object, the objects its jobs look up, directly or through other objects."""
    deps = {name: set() for name in cfg.model.objects}
    for job in cfg.jobs.values():
        for lk in job.lookups:
            if lk.object != job.destination:
                deps[job.destination].add(lk.object)
    out: dict[str, set[str]] = {}

    def visit(n: str, stack: tuple = ()) -> set[str]:
        if n in out:
            return out[n]
        acc: set[str] = set()
        for d in deps[n]:
            if d not in stack:
                acc |= {d} | visit(d, stack + (n,))
        out[n] = acc
        return acc

    for n in deps:
        visit(n)
    return out


def order_runs(cfg: PlatformConfig, planned: list["PlannedRun"]) -> list["PlannedRun"]:
    """Runs whose objects are looked up by another run's objects go first (stable topological order)."""
    anc = object_ancestors(cfg)
    planned = sorted(planned, key=lambda p: (p.source.name, p.key))

    def before(a: "PlannedRun", b: "PlannedRun") -> bool:
        return any(da in anc[db] for da in a.destinations for db in b.destinations) and not any(
            db in anc[da] for da in a.destinations for db in b.destinations)

    out: list[PlannedRun] = []
    remaining = list(planned)
    while remaining:
        for i, cand in enumerate(remaining):
            if not any(before(other, cand) for other in remaining if other is not cand):
                out.append(remaining.pop(i))
                break
        else:  # a cycle of lookups between files: keep file order for the rest
            out.extend(remaining)
            break
    return out


def plan_file_runs(cfg: PlatformConfig, sources: list[SourceObject], client, state: dict,
                   unmatched: list[str] | None = None) -> tuple[list[PlannedRun], dict]:
    """Compare the bucket listing with the cursor state; return runs to request and the new state.

    Files directly under a watched prefix that match no job are appended to `unmatched`."""
    new_state = {k: dict(v) for k, v in state.items()}
    planned: list[PlannedRun] = []
    by_bucket_prefix: dict[tuple[str, str], list[SourceObject]] = {}
    for so in sources:
        src = jobs_reading(cfg, so.connection, so.name)[0].source
        by_bucket_prefix.setdefault((so.bucket, src.prefix), []).append(so)
    for (bucket, prefix), sos in sorted(by_bucket_prefix.items()):
        for obj in list_files(client, bucket, prefix):
            key, etag = obj["Key"], clean_etag(obj.get("ETag")) or ""
            hit = False
            for so in sos:
                if not matches(cfg, so, key):
                    continue
                hit = True
                seen = new_state.setdefault(so.key.to_user_string(), {})
                if seen.get(key) == etag:
                    continue
                seen[key] = etag
                dests = sorted({j.destination for j in jobs_reading(cfg, so.connection, so.name)})
                planned.append(PlannedRun(so, key, etag, dests))
            if not hit and unmatched is not None and "/" not in key[len(prefix):]:
                unmatched.append(f"s3://{bucket}/{key}")
    return order_runs(cfg, planned), new_state


def source_job_name(so: SourceObject) -> str:
    return f"load_{so.connection}__{so.name}_job"


def build_source_jobs(cfg: PlatformConfig, sources: list[SourceObject]) -> list:
    """One job per source object: land a file (the partition) and apply it to every object its jobs load."""
    out = []
    for so in sources:
        dests = sorted({j.destination for j in jobs_reading(cfg, so.connection, so.name)})
        out.append(dg.define_asset_job(
            source_job_name(so),
            selection=dg.AssetSelection.assets(so.key, *[dg.AssetKey(["gs", d]) for d in dests]),
            description=f"Land one file of {so.key.to_user_string()} and load it into {', '.join(dests)}.",
            tags={"gsdp/source": so.key.to_user_string()},
        ))
    return out


def build_s3_files_sensor(cfg: PlatformConfig, sources: list[SourceObject], jobs: list,
                          minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    @dg.sensor(name="s3_files_sensor", jobs=jobs, minimum_interval_seconds=minimum_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Picks up new and re-uploaded files for every file job and requests their loads.")
    def _sensor(context: dg.SensorEvaluationContext, s3: S3Resource) -> dg.SensorResult:
        state = json.loads(context.cursor) if context.cursor else {}
        unmatched: list[str] = []
        planned, new_state = plan_file_runs(cfg, sources, s3.get_client(), state, unmatched)
        if unmatched:
            context.log.info(f"{len(unmatched)} file(s) match no job and are ignored: {', '.join(unmatched[:20])}")
        adds: dict[str, list[str]] = {}
        runs = []
        for p in planned:
            adds.setdefault(p.source.partitions_name, [])
            if p.key not in adds[p.source.partitions_name]:
                adds[p.source.partitions_name].append(p.key)
            runs.append(dg.RunRequest(
                run_key=f"{p.source.key.to_user_string()}|{p.key}|{p.etag}",
                partition_key=p.key,
                job_name=source_job_name(p.source),
                tags={"gsdp/etag": p.etag, "gsdp/file": p.key, "gsdp/source": p.source.key.to_user_string()},
            ))
        by_name = {so.partitions_name: so for so in sources}
        reqs = [by_name[name].partitions_def.build_add_request(keys) for name, keys in adds.items()]
        if not runs:
            return dg.SensorResult(skip_reason="no new or changed files", cursor=json.dumps(new_state, sort_keys=True))
        context.log.info(f"requesting {len(runs)} load(s): " + ", ".join(r.partition_key for r in runs[:20]))
        return dg.SensorResult(run_requests=runs, dynamic_partitions_requests=reqs,
                               cursor=json.dumps(new_state, sort_keys=True))

    return _sensor
