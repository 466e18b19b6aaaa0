"""The S3 file sensor: registers new files as partitions and requests their loads.

A file version is (key, ETag). The cursor remembers, per source object, the version last requested
for each key, so a tick requests each new or re-uploaded file exactly once and nothing else.
Runs name assets by key: the file's source partition plus the objects its jobs load.
"""


import json
from dataclasses import dataclass

import dagster as dg
from dagster_aws.s3 import S3Resource

from gs_assets.connectors.s3_files.assets import SourceObject
from gs_assets.config.loader import PlatformConfig
from gs_assets.dagster_jobs import build_source_job, source_job_name
from gs_assets.connectors.s3_files.discovery import match_file
from gs_assets.engine import ledger
from gs_assets.engine.pipeline import jobs_reading
from gs_assets.connectors.s3_files.resource import clean_etag, list_files
from resources.sqs import SqsResource


@dataclass
class PlannedRun:
    source: SourceObject
    key: str
    etag: str
    destinations: list[str]
    version: str = ""  # ETag + LastModified (or the event's sequencer): tells identical re-uploads apart


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
    return sorted({j.destination for j in jobs_reading(cfg, so.connection, so.name) if cfg.loads_on_arrival(j)})


def _version(obj: dict) -> tuple[str, str]:
    """(ETag, version) of a listed object. The version adds S3's LastModified, so an upload of the
    same bytes again (after the first was archived, or over a file left in place) is a new version."""
    etag = clean_etag(obj.get("ETag")) or ""
    lm = obj.get("LastModified")
    return etag, f"{etag}|{lm.isoformat()}" if lm is not None else etag


def _known(st: dict, key: str, etag: str, version: str) -> bool:
    seen = st["etags"].get(key)
    return seen is not None and seen in (version, etag)  # a plain ETag: cursor written before versions


def plan_file_runs(cfg: PlatformConfig, sources: list[SourceObject], client, state: dict,
                   unmatched: list[str] | None = None, *, max_runs: int = MAX_RUNS_PER_TICK,
                   sqs_client=None, limit_keys: set[str] | None = None, ledger=None,
                   notes: dict[str, list[str]] | None = None) -> tuple[list[PlannedRun], dict]:
    """Compare what is in the bucket with the cursor state; return the runs to request and the new state.

    Per source, by its `listing` setting:
      full        list the prefix; the cursor keeps the version (ETag + LastModified) of every
                  listed key that was requested (keys that left the prefix, e.g. archived, drop
                  out, so it stays bounded);
      start_after keys sort by date or sequence: list only from a window of the last
                  `listing_window` keys on (S3 StartAfter), so a tick does not grow with history;
      sqs         read S3 event notifications from an SQS queue instead of listing at all; a
                  message is deleted only once all its records were planned.
    A file enters the cursor only when its run is requested; at most `max_runs` per tick, the
    rest on the next tick. Files under a watched prefix that match no job go to `unmatched`.
    `ledger(candidates)`, given [(source, key, etag, LastModified)], returns {(source key, key):
    load id} for the listed objects the file ledger already holds as loaded and finished (the very
    object: not re-uploaded since); they get no run. `notes` collects, by reason, the files that
    stay where they are without a run this tick. (`limit_keys`, for benchmarks: plan only these keys.)
    """
    new_state: dict = dict(state)
    planned: list[PlannedRun] = []
    srcs = {so.key: _source_of(cfg, so) for so in sources}  # looked up once, not per listed key

    def note(reason: str, bucket: str, key: str) -> None:
        if notes is not None:
            notes.setdefault(reason, []).append(f"s3://{bucket}/{key}")

    def take(so: SourceObject, key: str, etag: str, version: str, st: dict) -> bool:
        if len(planned) >= max_runs:
            return False
        st["etags"][key] = version
        planned.append(PlannedRun(so, key, etag, _dests(cfg, so), version))
        return True

    def offer(sos: list[SourceObject], states: dict, bucket: str, key: str, etag: str,
              present: dict | None = None, version: str | None = None, done: dict | None = None) -> bool:
        """Give one file to every source whose rule it matches; note it when none does. False when
        the tick's cap kept it from a source that has not seen it."""
        version = version or etag
        if limit_keys is not None and key not in limit_keys:
            return True
        hit, ok = False, True
        for so in sos:
            if so.bucket != bucket or not _matches(srcs[so.key], key):
                continue
            hit = True
            st = states[so.key]
            if _known(st, key, etag, version):
                if srcs[so.key].archive_to != "":  # with archive_prefix "" loaded files stay by design
                    note(f"requested earlier, waiting: {_waiting(cfg, so)}", bucket, key)
                got = True
            elif done and (so.key, key) in done:
                note(f"already loaded and finished (load {done[(so.key, key)]}; this very object, not "
                     f"uploaded again since): no run", bucket, key)
                st["etags"][key] = version
                got = True
            else:
                got = take(so, key, etag, version, st)
                if not got:
                    ok = False
                    note(f"over this tick's limit of {max_runs} runs: requested on a later tick", bucket, key)
            if got and present is not None:
                present[so.key][key] = st["etags"][key]
        if not hit and unmatched is not None and any(
                so.bucket == bucket and _direct_child(srcs[so.key].prefix, key) for so in sos):
            unmatched.append(f"s3://{bucket}/{key}")
        return ok

    def keyed(sos):
        return {so.key: _source_state(state, so) for so in sos}

    def finished(sos, states, objs) -> dict:
        """Listed objects the ledger holds as loaded and finished (asked once per listing)."""
        if ledger is None:
            return {}
        cands = []
        for obj in objs:
            etag, version = _version(obj)
            for so in sos:
                if _matches(srcs[so.key], obj["Key"]) and not _known(states[so.key], obj["Key"], etag, version):
                    cands.append((so, obj["Key"], etag, obj.get("LastModified")))
        return ledger(cands) if cands else {}

    # full listing, grouped by (bucket, prefix) so several jobs on one prefix share one listing
    groups: dict[tuple[str, str], list[SourceObject]] = {}
    for so in sources:
        if srcs[so.key].listing == "full":
            groups.setdefault((so.bucket, srcs[so.key].prefix), []).append(so)
    for (bucket, prefix), sos in sorted(groups.items()):
        states, present = keyed(sos), {so.key: {} for so in sos}
        objs = list(list_files(client, bucket, prefix))
        done = finished(sos, states, objs)
        for obj in objs:
            etag, version = _version(obj)
            offer(sos, states, bucket, obj["Key"], etag, present, version=version, done=done)
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
        objs = list(list_files(client, so.bucket, src.prefix, start_after=_before(start) if start else None))
        done = finished([so], states, objs)
        for obj in objs:
            etag, version = _version(obj)
            offer([so], states, so.bucket, obj["Key"], etag, version=version, done=done)
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

        def handle(records, sos=sos, states=states) -> bool:
            """Offer a message's records; False when the cap stopped one of them (keep the message)."""
            return all([offer(sos, states, bucket, key, etag, version=version) for bucket, key, etag, version in records])

        _drain_queue(sqs_client, queue_url, handle, lambda: len(planned) >= max_runs)
        for so in sos:
            st = states[so.key]
            keys = list(st["etags"])[-SQS_SEEN_KEYS:]
            new_state[so.key.to_user_string()] = {"etags": {k: st["etags"][k] for k in keys}, "after": None}
    return order_runs(cfg, planned), new_state


def _waiting(cfg: PlatformConfig, so: SourceObject) -> str:
    timed = [j.name for j in jobs_reading(cfg, so.connection, so.name) if not cfg.loads_on_arrival(j)]
    if timed:
        return (f"its run applies the jobs that load on arrival; job(s) {', '.join(timed)} apply it at their "
                f"schedule or chain, then it is archived")
    return "its run has not finished yet, or the file could not be moved (see that run)"


def _before(key: str) -> str:
    """A StartAfter value that includes `key` itself: the string just before it."""
    if not key:
        return key
    last = key[-1]
    return key[:-1] + (chr(ord(last) - 1) + "\U0010ffff" if ord(last) > 0 else "")


def _drain_queue(sqs, queue_url: str, handle, full) -> None:
    """Hand the S3 object-created records of each message to `handle`; a message is deleted only
    when `handle` took all its records (planned, or deliberately ignored). Once `full()` says the
    tick's cap is reached, the messages read but not handled are made visible again at once and
    stay in the queue for the next tick."""
    if sqs is None:
        raise RuntimeError("listing: sqs needs an SQS client (GSDP_SQS_ENDPOINT_URL or AWS defaults)")
    while not full():
        resp = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        msgs = resp.get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            if full() or not handle(_records(m)):
                sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"],
                                              VisibilityTimeout=0)
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def _records(m: dict) -> list[tuple]:
    """(bucket, key, etag, version) of the ObjectCreated records of one SQS message (direct from S3
    or through SNS); version tells an upload from a re-upload of the same bytes (the event's sequencer)."""
    from urllib.parse import unquote_plus
    try:
        body = json.loads(m["Body"])
    except ValueError:
        body = {}
    if "Message" in body and isinstance(body["Message"], str):  # delivered through SNS
        try:
            body = json.loads(body["Message"])
        except ValueError:
            body = {}
    out = []
    for rec in body.get("Records", []) if isinstance(body, dict) else []:
        if not str(rec.get("eventName", "")).startswith("ObjectCreated"):
            continue
        o = rec.get("s3", {})
        etag = (o.get("object", {}).get("eTag") or "").strip('"')
        stamp = o.get("object", {}).get("sequencer") or rec.get("eventTime") or ""
        out.append((o.get("bucket", {}).get("name"), unquote_plus(o.get("object", {}).get("key", "")), etag,
                    f"{etag}|{stamp}" if stamp else etag))
    return out


def build_source_jobs(cfg: PlatformConfig, sources: list[SourceObject]) -> list:
    """One job per source object: land a file (the partition) and apply it to every object its jobs
    that load on arrival write (scheduled jobs and chain members apply it at their own time)."""
    return [build_source_job(cfg, so.connection, so.name, so.key) for so in sources]


def ledger_reader(warehouse, log=None):
    """For plan_file_runs: which listed objects the file ledger holds as loaded, finished and left in
    place (archive_prefix "": a lost or new cursor must not load them again), read
    through a read-only connection (a busy warehouse only costs the check, never the tick)."""
    def finished(cands: list) -> dict:
        import duckdb
        from pathlib import Path

        from gs_assets.connectors.s3_files.assets import same_object

        from resources.warehouse import WarehouseBusy
        if warehouse is None or warehouse.database in (":memory:", "") or not Path(warehouse.database).exists():
            return {}
        uris = sorted({f"s3://{so.bucket}/{key}" for so, key, _, _ in cands})
        try:
            with warehouse.read(wait_seconds=10) as con:
                rows = ledger.left_in_place(con, uris)
        except WarehouseBusy as e:
            if log:
                log.info(f"file ledger not checked this tick ({e}); new files are requested as usual")
            return {}
        except duckdb.CatalogException:  # no load yet: the ledger tables do not exist
            return {}
        seen = {(r.connection, r.source_object, r.source_file, r.etag): (r.load_id, r.landed_at) for r in rows}
        out = {}
        for so, key, etag, lm in cands:
            hit = seen.get((so.connection, so.name, f"s3://{so.bucket}/{key}", etag))
            # The very object that was loaded and left in place (there before its load landed), not a
            # re-upload: a file that was archived and is back in the prefix always gets a run.
            if hit and same_object(lm, hit[1], uri := f"s3://{so.bucket}/{key}", uri):
                out[(so.key, key)] = hit[0]
        return out

    return finished


def build_s3_files_sensor(cfg: PlatformConfig, sources: list[SourceObject], jobs: list,
                          minimum_interval_seconds: int = 30, warehouse=None) -> dg.SensorDefinition:
    @dg.sensor(name="s3_files_sensor", jobs=jobs, minimum_interval_seconds=minimum_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Picks up new and re-uploaded files for the jobs that load on arrival (no schedule, "
                           "no chain) and requests their loads; logs files it leaves where they are, and why.")
    def _sensor(context: dg.SensorEvaluationContext, s3: S3Resource, sqs: SqsResource) -> dg.SensorResult:
        state = json.loads(context.cursor) if context.cursor else {}
        unmatched: list[str] = []
        notes: dict[str, list[str]] = {}
        needs_sqs = any(jobs_reading(cfg, so.connection, so.name)[0].source.listing == "sqs" for so in sources)
        planned, new_state = plan_file_runs(cfg, sources, s3.get_client(), state, unmatched,
                                            max_runs=MAX_RUNS_PER_TICK,
                                            sqs_client=sqs.get_client() if needs_sqs else None,
                                            ledger=ledger_reader(warehouse, context.log), notes=notes)
        if unmatched:
            context.log.info(f"{len(unmatched)} file(s) match no job and are ignored: {', '.join(unmatched[:20])}")
        for reason, files in sorted(notes.items()):
            files = list(dict.fromkeys(files))
            context.log.info(f"{len(files)} file(s) get no run now: {reason}: {', '.join(files[:20])}"
                             + (" …" if len(files) > 20 else ""))
        adds: dict[str, list[str]] = {}
        runs = []
        for p in planned:
            adds.setdefault(p.source.partitions_name, [])
            if p.key not in adds[p.source.partitions_name]:
                adds[p.source.partitions_name].append(p.key)
            # The version (ETag + LastModified) is in the run key: an identical re-upload gets a run.
            runs.append(dg.RunRequest(
                run_key=f"{p.source.key.to_user_string()}|{p.key}|{p.version or p.etag}",
                partition_key=p.key,
                job_name=source_job_name(p.source.connection, p.source.name),
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
