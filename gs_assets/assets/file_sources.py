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
from gs_assets.engine.pipeline import jobs_reading, land
from gs_assets.engine.progress import logged_progress
from gs_assets.assets.file_lifecycle import finish_files
from gs_assets.assets.warehouse_setup import ensure_tables
from resources.s3 import clean_etag
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
        k = (job.connection, job.source.object)
        if k not in seen:
            seen[k] = SourceObject(job.connection, job.source.object, cfg.connections[job.connection].bucket)
    return sorted(seen.values(), key=lambda s: (s.connection, s.name))


def matching_keys(client, bucket: str, src) -> list[str]:
    """Every file directly under the source's prefix that its pick-up rule takes, by name (files
    already processed have moved to the archive or error prefix)."""
    from gs_assets.engine.pickup import match_file
    from resources.s3 import list_files
    return sorted(o["Key"] for o in list_files(client, bucket, src.prefix)
                  if match_file(src.prefix, src.match, src.file_name, o["Key"]))


def land_s3_object(warehouse, cfg: PlatformConfig, so: "SourceObject", client, key: str, head: dict, run_id: str,
                   log=None):
    """Land one S3 object, the version `head` describes, through the engine (streamed lazily:
    an already-landed version is never downloaded). With `log`, download progress is logged."""
    chunks = _s3_chunks(client, so.bucket, key, head["ETag"])
    if log is not None:
        chunks = logged_progress(chunks, total_bytes=head.get("ContentLength"), label=key, log=log)
    return land(warehouse, cfg, connection=so.connection, source_object=so.name,
                chunks=chunks, name=key, source_file=f"s3://{so.bucket}/{key}",
                etag=clean_etag(head.get("ETag")), size_bytes=head.get("ContentLength"), run_id=run_id, log=log)


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


def land_partition(context, cfg: PlatformConfig, so: SourceObject, warehouse: Warehouse, client, key: str) -> dict:
    """Land one file partition (for the source asset and for chain members); its metadata, with
    "error" when the file could not be loaded (a failed file is moved to the error prefix)."""
    uri = f"s3://{so.bucket}/{key}"
    try:
        head = client.head_object(Bucket=so.bucket, Key=key)
    except client.exceptions.ClientError as e:
        requested = context.run.tags.get("gsdp/etag") or None
        with warehouse.connect() as con:  # this source object's load of the file (of the requested version)
            prior = con.execute("SELECT load_id, etag, status, archived_to FROM gs_ops.loads WHERE connection = ? "
                                "AND source_object = ? AND source_file = ? AND (? IS NULL OR etag = ?) "
                                "ORDER BY seq DESC LIMIT 1",
                                [so.connection, so.name, uri, requested, requested]).fetchone()
        if prior and prior[2] == "landed":
            context.log.info(f"{uri} was loaded as version {prior[1]} (load {prior[0]}) and moved to {prior[3]}")
            return {"file": uri, "etag": prior[1] or "", "load_id": prior[0], "landing": "already_landed",
                    "archived_to": prior[3] or ""}
        return {"file": uri, "error": f"{uri} cannot be read ({e.response['Error'].get('Code')}) and was never "
                                      f"loaded; it may have been deleted. Upload it again."}
    etag, size = clean_etag(head.get("ETag")), head.get("ContentLength")
    requested = context.run.tags.get("gsdp/etag")
    res = land_s3_object(warehouse, cfg, so, client, key, head, context.run.run_id, log=context.log)
    meta = {
        "file": dg.MetadataValue.text(uri),
        "etag": etag or "",
        "size_bytes": size or 0,
        "load_id": res.load_id or "",
        "landing": res.status,
        "dagster/row_count": res.rows_read,
        "malformed_rows": res.malformed_rows,
    }
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
