"""Source object assets for file jobs: `source/<connection>/<object>`, one partition per file.

Materializing a partition downloads that S3 file (streamed to a temp file, never held in memory)
and lands it as it came in the raw table, once per file version (key + ETag).
"""


import warnings
from dataclasses import dataclass

import dagster as dg
from dagster_aws.s3 import S3Resource

from gs_assets.config.jobs import Job
from gs_assets.config.loader import PlatformConfig
from gs_assets.connectors.s3_files.reader import land
from gs_assets.engine import ledger
from gs_assets.engine.pipeline import jobs_reading
from gs_assets.engine.progress import logged_progress
from gs_assets.connectors.s3_files.lifecycle import finish_files
from gs_assets.engine.warehouse_setup import ensure_tables
from gs_assets.connectors.s3_files.resource import clean_etag
from gs_assets.engine.lineage import source_schema_metadata
from resources.warehouse import Warehouse


@dataclass(frozen=True)
class SourceObject:
    connection: str
    name: str
    bucket: str

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey(["source", self.connection, self.name])

    @property
    def partitions_name(self) -> str:
        return f"files__{self.connection}__{self.name}"

    @property
    def partitions_def(self) -> dg.DynamicPartitionsDefinition:
        return dg.DynamicPartitionsDefinition(name=self.partitions_name)


def source_objects(cfg: PlatformConfig) -> list[SourceObject]:
    seen: dict[tuple[str, str], SourceObject] = {}
    for job in cfg.jobs.values():
        if cfg.connections[job.connection].type != "s3":
            continue  # a job on another kind's connection
        k = (job.connection, job.source.object)
        if k not in seen:
            seen[k] = SourceObject(job.connection, job.source.object, cfg.connections[job.connection].bucket)
    return sorted(seen.values(), key=lambda s: (s.connection, s.name))


def matching_keys(client, bucket: str, src) -> list[str]:
    """Every file directly under the source's prefix that its pick-up rule takes, by name (files
    already processed have moved to the archive or error prefix)."""
    from gs_assets.connectors.s3_files.discovery import match_file
    from gs_assets.connectors.s3_files.resource import list_files
    return sorted(o["Key"] for o in list_files(client, bucket, src.prefix)
                  if match_file(src.prefix, src.match, src.file_name, o["Key"]))


def land_s3_object(warehouse, cfg: PlatformConfig, so: "SourceObject", client, key: str, head: dict, run_id: str,
                   log=None, *, force: bool = False, read_key: str | None = None):
    """Land one S3 object, the version `head` describes, through the engine (streamed lazily:
    an already-landed version is never downloaded). With `log`, download progress is logged.
    `force` lands it again though it was loaded; `read_key` reads the bytes from another key (the
    archived copy of `key`, to re-apply a file that has moved)."""
    chunks = _s3_chunks(client, so.bucket, read_key or key, head["ETag"])
    if log is not None:
        chunks = logged_progress(chunks, total_bytes=head.get("ContentLength"), label=read_key or key, log=log)
    return land(warehouse, cfg, connection=so.connection, source_object=so.name,
                chunks=chunks, name=key, source_file=f"s3://{so.bucket}/{key}",
                etag=clean_etag(head.get("ETag")), size_bytes=head.get("ContentLength"), run_id=run_id, log=log,
                force=force)


def _s3_chunks(client, bucket: str, key: str, etag: str, size: int = 8 << 20):
    """The object's bytes, streamed. The GET is only sent when the first chunk is asked for, so a
    version the ledger already holds is never downloaded."""
    body = client.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"]
    try:
        yield from body.iter_chunks(size)
    finally:
        body.close()


def build_file_source_asset(cfg: PlatformConfig, so: SourceObject) -> dg.AssetsDefinition:
    jobs: list[Job] = jobs_reading(cfg, so.connection, so.name)
    src = jobs[0].source
    per_run = cfg.connections[so.connection].backfill_files_per_run
    desc = (f"Files `{src.rule_text}` in bucket `{so.bucket}`, landed as they came, one table per file "
            f"version: `raw_{so.connection}.\"{so.name}__<load id>\"` (`gs_ops.loads.raw_table` names it). "
            f"Read by job(s): {', '.join(j.name for j in jobs)}. One partition per file; a backfill lands "
            f"up to {per_run} files per run.")

    def _source(context: dg.AssetExecutionContext, warehouse: Warehouse, s3: S3Resource) -> dg.MaterializeResult:
        keys = list(context.partition_keys)
        client = s3.get_client()
        ensure_tables(warehouse, cfg.model)
        if len(keys) == 1:
            meta = land_partition(context, cfg, so, warehouse, client, keys[0])
            if "error" in meta:
                raise dg.Failure(description=meta.pop("error"), metadata=meta)
            return dg.MaterializeResult(metadata=meta)
        # A backfill range: every file lands (or fails) on its own; each partition gets its own
        # metadata; the run fails at the end if any file failed, naming them.
        failed = []
        for i, key in enumerate(keys, 1):
            meta = land_partition(context, cfg, so, warehouse, client, key)
            context.log.info(f"file {i}/{len(keys)} ({100 * i // len(keys)}%): {key}: {meta.get('landing', 'failed')}, "
                             f"{meta.get('dagster/row_count', 0):,} rows")
            if "error" in meta:
                failed.append(f"{key}: {meta.pop('error')}")
            context.add_asset_metadata(meta, partition_key=key)
        if failed:
            raise dg.Failure(description=f"{len(failed)} of {len(keys)} file(s) could not be loaded (the others "
                                         f"landed and stay landed):\n" + "\n".join(failed))
        return dg.MaterializeResult(metadata={"files_in_run": len(keys)})

    with warnings.catch_warnings():  # backfill_policy is "beta" in Dagster: a note for us, not for users' logs
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.asset(
            key=so.key,
            partitions_def=so.partitions_def,
            backfill_policy=dg.BackfillPolicy.multi_run(per_run),
            group_name=so.connection,
            kinds={"s3", "csv"},
            pool="warehouse",
            description=desc,
            metadata={"bucket": so.bucket, "prefix": src.prefix, "file_name": src.file_name, "match": src.match,
                      "jobs": ", ".join(j.name for j in jobs)},
        )(_source)


REAPPLY_TAG = "gsdp/reapply"


def _reapply_asked(context) -> bool:
    """The run asks to re-apply a file version that was already loaded: the tag `gsdp/reapply=true`
    (set by `gsdp run JOB --file KEY --reapply`, or in the UI launchpad)."""
    return str(context.run.tags.get(REAPPLY_TAG, "")).lower() in ("true", "1", "yes")


def _loaded_before(warehouse: Warehouse, so: "SourceObject", uri: str, etag: str | None) -> ledger.LoadRecord | None:
    """This source object's latest successful load of the file (of `etag` when given), or None."""
    with warehouse.connect() as con:
        return ledger.latest_load(con, so.connection, so.name, source_file=uri, etag=etag, any_etag=True)


def same_object(last_modified, landed_at, archived_to: str | None, uri: str) -> bool:
    """The object at `uri` is the very one a finished load read, not a re-upload of the same bytes:
    the load left the file in place (archive_prefix "") and the object was there before it landed.
    (A file that was moved away and is back is always a re-upload.)"""
    from datetime import timezone
    return (archived_to == uri and last_modified is not None and landed_at is not None
            and last_modified.astimezone(timezone.utc).replace(tzinfo=None) <= landed_at)


def _archive_identical(context, cfg: PlatformConfig, so: "SourceObject", warehouse: Warehouse, client, key: str,
                       head: dict, prior) -> dict:
    """A re-upload of a version already loaded: record it in the ledger (status 'identical', with a
    note naming the load it repeats), move it to the archive prefix like any loaded file, apply nothing."""
    import uuid

    from gs_assets.connectors.s3_files.discovery import file_match
    from gs_assets.engine.pipeline import _record_load
    uri = f"s3://{so.bucket}/{key}"
    etag = clean_etag(head.get("ETag"))
    job_names = [j.name for j in jobs_reading(cfg, so.connection, so.name)]
    note = (f"identical to load {prior.load_id} of {str(prior.landed_at)[:19]} UTC (same key and content), not applied again; "
            f"to re-apply it run `gsdp run {job_names[0]} --file {key} --reapply` (or launch a run with the tag "
            f"{REAPPLY_TAG}=true)")
    load_id = str(uuid.uuid4())
    src = jobs_reading(cfg, so.connection, so.name)[0].source
    fm = file_match(src, key)
    with warehouse.transaction() as con:
        _record_load(con, load_id=load_id, connection=so.connection, source_object=so.name, raw_table=None,
                     source_file=uri, etag=etag, size_bytes=head.get("ContentLength"), status="identical", rows_read=0,
                     malformed_rows=0, header=None, error=None, run_id=context.run.run_id, file_name=fm.file_name,
                     file_date=fm.file_date, note=note)
    context.log.info(f"{uri}: {note}")
    (fin,) = finish_files(warehouse, cfg, client, [load_id], context.log) or [None]
    meta = {"file": dg.MetadataValue.text(uri), "etag": etag or "", "size_bytes": head.get("ContentLength") or 0,
            "load_id": load_id, "landing": "identical", "identical_to": prior.load_id, "note": note,
            "dagster/row_count": 0}
    if fin:
        meta["moved_to"] = fin.moved_to
    return meta


def land_partition(context, cfg: PlatformConfig, so: SourceObject, warehouse: Warehouse, client, key: str) -> dict:
    """Land one file partition (for the source asset and for chain members); its metadata, with
    "error" when the file could not be loaded (a failed file is moved to the error prefix).

    A file version (key + ETag) that was loaded and finished is not applied again when the same
    bytes are uploaded again: the re-upload is archived with a note (status 'identical' in
    gs_ops.loads), unless re-applying was asked for (`gsdp/reapply=true`, `on_identical_file:
    reapply`): then it is landed again and every job applies it (also from its archived copy when
    the file has already moved)."""
    uri = f"s3://{so.bucket}/{key}"
    src = jobs_reading(cfg, so.connection, so.name)[0].source
    reapply = _reapply_asked(context)
    inserting = [j.name for j in jobs_reading(cfg, so.connection, so.name) if j.operation.value == "insert"]
    refused = reapply and bool(inserting)  # invariant 3: the same file twice never duplicates records
    reapply = reapply and not refused

    def say_refused(prior) -> None:
        if refused and prior is not None:
            context.log.warning(f"{uri} is not re-applied: job(s) {', '.join(inserting)} insert records, so applying "
                                f"the same file again would add them twice (use upsert to re-apply files)")
    try:
        head = client.head_object(Bucket=so.bucket, Key=key)
    except client.exceptions.ClientError as e:
        requested = context.run.tags.get("gsdp/etag") or None
        with warehouse.connect() as con:  # this source object's load of the file (of the requested version)
            prior = ledger.latest_load(con, so.connection, so.name, source_file=uri, etag=requested, any_etag=True,
                                       statuses=("landed", "identical"))
        moved = prior.archived_to if prior else None
        say_refused(prior)
        if prior and reapply and moved and moved.startswith(f"s3://{so.bucket}/") and moved != uri:
            read_key = moved[len(f"s3://{so.bucket}/"):]
            try:
                head = client.head_object(Bucket=so.bucket, Key=read_key, IfMatch=f'"{prior.etag}"')
            except client.exceptions.ClientError:
                head = None
            if head is not None:
                context.log.info(f"re-applying {uri} from its archived copy {moved} ({REAPPLY_TAG})")
                return _landed_meta(context, cfg, so, warehouse, client, key, head, force=True, read_key=read_key)
        if prior:
            context.log.info(f"{uri} was loaded as version {prior.etag} (load {prior.load_id}) and moved to "
                             f"{prior.archived_to}")
            return {"file": uri, "etag": prior.etag or "", "load_id": prior.load_id, "landing": "already_landed",
                    "archived_to": prior.archived_to or ""}
        return {"file": uri, "error": f"{uri} cannot be read ({e.response['Error'].get('Code')}) and was never "
                                      f"loaded; it may have been deleted. Upload it again."}
    prior = _loaded_before(warehouse, so, uri, clean_etag(head.get("ETag")))
    force = False
    if prior is not None and prior.archived_to is not None:  # this version was loaded and its file finished
        reupload = not same_object(head.get("LastModified"), prior.landed_at, prior.archived_to, uri)
        say_refused(prior)
        if reapply or (reupload and src.on_identical_file == "reapply"):
            force = True
            context.log.info(f"re-applying {uri} version {prior.etag} (loaded before as load {prior.load_id}; "
                             + (f"run tag {REAPPLY_TAG})" if reapply else "on_identical_file: reapply)"))
        elif reupload:
            return _archive_identical(context, cfg, so, warehouse, client, key, head, prior)
    return _landed_meta(context, cfg, so, warehouse, client, key, head, force=force)


def _landed_meta(context, cfg: PlatformConfig, so: SourceObject, warehouse: Warehouse, client, key: str, head: dict,
                 *, force: bool = False, read_key: str | None = None) -> dict:
    uri = f"s3://{so.bucket}/{key}"
    etag, size = clean_etag(head.get("ETag")), head.get("ContentLength")
    requested = context.run.tags.get("gsdp/etag")
    res = land_s3_object(warehouse, cfg, so, client, key, head, context.run.run_id, log=context.log,
                         force=force, read_key=read_key)
    meta = {
        "file": dg.MetadataValue.text(uri),
        "etag": etag or "",
        "size_bytes": size or 0,
        "load_id": res.load_id or "",
        "landing": res.status,
        "dagster/row_count": res.rows_read,
        "malformed_rows": res.malformed_rows,
    }
    meta.update(source_schema_metadata(cfg, so.connection, so.name, warehouse, res))
    if requested and requested != etag:
        meta["note"] = f"the sensor saw version {requested}; the file changed since, version {etag} was loaded"
    if res.status == "failed":
        (fin,) = finish_files(warehouse, cfg, client, [res.load_id], context.log) or [None]
        if fin:
            meta["moved_to"] = fin.moved_to
            meta["error_files"] = ", ".join(fin.error_files)
        meta["error"] = res.error
    elif res.status == "already_landed":
        context.log.info(f"{key} version {etag} was already loaded (load {res.load_id}); nothing new landed")
    return meta
