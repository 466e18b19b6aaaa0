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
from resources.s3 import clean_etag, list_files, sqs_client_for


@dataclass
class PlannedRun:
    source: SourceObject
    key: str
    etag: str
    destinations: list[str]


def _source_of(cfg: PlatformConfig, so: SourceObject):
    return jobs_reading(cfg, so.connection, so.name)[0].source


def _matches(src, key: str) -> bool:
    return match_file(src.prefix, src.match, src.file_name, key) is not None


def _direct_child(prefix: str, key: str) -> bool:
    return key.startswith(prefix) and "/" not in key[len(prefix):]


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


MAX_RUNS_PER_TICK = 200
SQS_SEEN_KEYS = 10_000  # keys remembered per source in sqs mode, to drop duplicate notifications


def _source_state(state: dict, so: SourceObject) -> dict:
    """Cursor state of one source: {"etags": {key: etag}, "after": key or None}."""
    raw = state.get(so.key.to_user_string()) or {}
    if "etags" not in raw:  # first cursor format: a plain {key: etag} map
        raw = {"etags": dict(raw), "after": None}
    return {"etags": dict(raw["etags"]), "after": raw.get("after")}


def _dests(cfg: PlatformConfig, so: SourceObject) -> list[str]:
    return sorted({j.destination for j in jobs_reading(cfg, so.connection, so.name)})


def plan_file_runs(cfg: PlatformConfig, sources: list[SourceObject], client, state: dict,
                   unmatched: list[str] | None = None, *, max_runs: int = MAX_RUNS_PER_TICK,
                   sqs_client=None, limit_keys: set[str] | None = None) -> tuple[list[PlannedRun], dict]:
    """Compare what is in the bucket with the cursor state; return the runs to request and the new state.

    Per source, by its `listing` setting:
      full        list the prefix; the cursor keeps the ETag of every listed key that was requested
                  (keys that left the prefix, e.g. archived, drop out, so it stays bounded);
      start_after keys sort by date or sequence: list only from a window of the last
                  `listing_window` keys on (S3 StartAfter), so a tick does not grow with history;
      sqs         read S3 event notifications from an SQS queue instead of listing at all.
    A file enters the cursor only when its run is requested; at most `max_runs` per tick, the
    rest on the next tick. Files under a watched prefix that match no job go to `unmatched`.
    (`limit_keys`, for benchmarks: plan only these keys.)
    """
    new_state: dict = dict(state)
    planned: list[PlannedRun] = []
    srcs = {so.key: _source_of(cfg, so) for so in sources}  # looked up once, not per listed key

    def take(so: SourceObject, key: str, etag: str, st: dict) -> bool:
        if st["etags"].get(key) == etag:
            return False
        if len(planned) >= max_runs:
            return False
        st["etags"][key] = etag
        planned.append(PlannedRun(so, key, etag, _dests(cfg, so)))
        return True

    def offer(sos: list[SourceObject], states: dict, bucket: str, key: str, etag: str,
              present: dict | None = None) -> None:
        """Give one file to every source whose rule it matches; note it when none does."""
        if limit_keys is not None and key not in limit_keys:
            return
        hit = False
        for so in sos:
            if so.bucket != bucket or not _matches(srcs[so.key], key):
                continue
            hit = True
            st = states[so.key]
            if (st["etags"].get(key) == etag or take(so, key, etag, st)) and present is not None:
                present[so.key][key] = etag
        if not hit and unmatched is not None and any(
                so.bucket == bucket and _direct_child(srcs[so.key].prefix, key) for so in sos):
            unmatched.append(f"s3://{bucket}/{key}")

    def keyed(sos):
        return {so.key: _source_state(state, so) for so in sos}

    # full listing, grouped by (bucket, prefix) so several jobs on one prefix share one listing
    groups: dict[tuple[str, str], list[SourceObject]] = {}
    for so in sources:
        if srcs[so.key].listing == "full":
            groups.setdefault((so.bucket, srcs[so.key].prefix), []).append(so)
    for (bucket, prefix), sos in sorted(groups.items()):
        states, present = keyed(sos), {so.key: {} for so in sos}
        for obj in list_files(client, bucket, prefix):
            offer(sos, states, bucket, obj["Key"], clean_etag(obj.get("ETag")) or "", present)
        for so in sos:
            new_state[so.key.to_user_string()] = {"etags": present[so.key], "after": None}

    # start_after: list from the start of the remembered window on
    for so in sources:
        src = srcs[so.key]
        if src.listing != "start_after":
            continue
        states = keyed([so])
        st = states[so.key]
        start = min(st["etags"]) if st["etags"] else st["after"]
        for obj in list_files(client, so.bucket, src.prefix, start_after=_before(start) if start else None):
            offer([so], states, so.bucket, obj["Key"], clean_etag(obj.get("ETag")) or "")
        keys = sorted(st["etags"])
        after = st["after"]
        if len(keys) > src.listing_window:
            after = keys[-src.listing_window - 1]
            keys = keys[-src.listing_window:]
        new_state[so.key.to_user_string()] = {"etags": {k: st["etags"][k] for k in keys}, "after": after}

    # sqs: event notifications, each queue drained once for every source it serves
    queues: dict[str, list[SourceObject]] = {}
    for so in sources:
        if srcs[so.key].listing == "sqs":
            queues.setdefault(srcs[so.key].sqs_queue_url, []).append(so)
    for queue_url, sos in sorted(queues.items()):
        states = keyed(sos)
        for bucket, key, etag in _drain_queue(sqs_client, queue_url, max_runs - len(planned)):
            offer(sos, states, bucket, key, etag)
        for so in sos:
            st = states[so.key]
            keys = list(st["etags"])[-SQS_SEEN_KEYS:]
            new_state[so.key.to_user_string()] = {"etags": {k: st["etags"][k] for k in keys}, "after": None}
    return order_runs(cfg, planned), new_state


def _before(key: str) -> str:
    """A StartAfter value that includes `key` itself: the string just before it."""
    if not key:
        return key
    last = key[-1]
    return key[:-1] + (chr(ord(last) - 1) + "\U0010ffff" if ord(last) > 0 else "")


def _drain_queue(sqs, queue_url: str, budget: int):
    """S3 object-created records from the queue; each message is deleted once read (its records
    are then requested or ignored). Stops when the queue is empty or the budget is spent."""
    from urllib.parse import unquote_plus
    if sqs is None:
        raise RuntimeError("listing: sqs needs an SQS client (GSDP_SQS_ENDPOINT_URL or AWS defaults)")
    out = []
    while len(out) < budget:
        resp = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        msgs = resp.get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            try:
                body = json.loads(m["Body"])
            except ValueError:
                body = {}
            if "Message" in body and isinstance(body["Message"], str):  # delivered through SNS
                try:
                    body = json.loads(body["Message"])
                except ValueError:
                    body = {}
            for rec in body.get("Records", []):
                if not str(rec.get("eventName", "")).startswith("ObjectCreated"):
                    continue
                o = rec.get("s3", {})
                out.append((o.get("bucket", {}).get("name"), unquote_plus(o.get("object", {}).get("key", "")),
                            (o.get("object", {}).get("eTag") or "").strip('"')))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return out


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
        needs_sqs = any(jobs_reading(cfg, so.connection, so.name)[0].source.listing == "sqs" for so in sources)
        planned, new_state = plan_file_runs(cfg, sources, s3.get_client(), state, unmatched,
                                            sqs_client=sqs_client_for(s3) if needs_sqs else None)
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
