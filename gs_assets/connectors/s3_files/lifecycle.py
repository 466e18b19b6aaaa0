"""After a file is loaded: error files beside it, then the move to the archive or error prefix.

A file is finished when every job that reads it has a final run for it (committed): the jobs of
every source object (of its connection) whose pick-up rule takes the file, not only of the object
whose load just committed. Only then
are its error files written and the file moved: a load that rolls back leaves the file where it
was, so it can be retried. Moves keep the ETag check, so a file re-uploaded meanwhile stays.
"""

import os
from dataclasses import dataclass, field
from typing import Optional

from gs_assets.config.loader import PlatformConfig
from gs_assets.engine import ledger
from gs_assets.engine.error_files import write_error_file, write_failure_file
from gs_assets.connectors.s3_files.reader import scratch_dir
from gs_assets.engine.pipeline import jobs_reading
from resources.warehouse import Warehouse


@dataclass
class Finished:
    load_id: str
    source_file: str
    moved_to: str
    error_files: list[str] = field(default_factory=list)


def split_s3(uri: str) -> tuple[str, str]:
    rest = uri[len("s3://"):]
    bucket, _, key = rest.partition("/")
    return bucket, key


def _etag_at(client, bucket: str, key: str) -> Optional[str]:
    """The ETag of the object at `key`, or None when there is none."""
    try:
        return (client.head_object(Bucket=bucket, Key=key).get("ETag") or "").strip('"')
    except client.exceptions.ClientError:
        return None


def finish_files(warehouse: Warehouse, cfg: PlatformConfig, client, load_ids: list[str], log=None) -> list[Finished]:
    done: list[Finished] = []
    for load_id in dict.fromkeys(load_ids):
        with scratch_dir("gsdp-err-") as tmp:
            plan = _plan(warehouse, cfg, client, load_id, tmp)
            if plan is not None:
                done.append(_move(warehouse, client, plan, log))
    return done


@dataclass
class _Plan:
    load_ids: list[str]  # every unfinished load of this file version (one per source object reading it)
    source_file: str
    bucket: str
    key: str
    etag: str
    new_key: Optional[str]  # None: the file stays where it is
    errors: list[tuple[str, str]]  # (local path, S3 key) of error files


def objects_taking(cfg: PlatformConfig, connection: str, key: str) -> list[str]:
    """Source objects of a connection whose pick-up rule takes this key (every one of them must
    have loaded the file before it is finished)."""
    from gs_assets.connectors.s3_files.discovery import match_file
    out: set[str] = set()
    for j in cfg.jobs.values():
        if j.connection == connection and match_file(j.source.prefix, j.source.match, j.source.file_name, key):
            out.add(j.source.object)
    return sorted(out)


def _plan(warehouse: Warehouse, cfg: PlatformConfig, client, load_id: str, tmp: str) -> Optional[_Plan]:
    """Decide where a finished file goes and write its error files locally (warehouse reads only).

    A file version is finished when every source object of its connection whose pick-up rule
    takes it (and the object of this load) has a load of it, and every job reading each of those
    objects has a final run for that load (an identical re-upload that was not applied again
    needs none)."""
    with warehouse.connect() as con:
        row = ledger.load(con, load_id)
        if not row or row.archived_to is not None or not row.source_file.startswith("s3://"):
            return None
        conn, obj, source_file, etag = row.connection, row.source_object, row.source_file, row.etag
        bucket, key = split_s3(source_file)
        objects = sorted({obj, *objects_taking(cfg, conn, key)})
        chosen = []  # per object: its load of this version (an unfinished one first)
        for o in objects:
            if not jobs_reading(cfg, conn, o):
                continue
            ld = ledger.latest_load(con, conn, o, source_file=source_file, etag=etag, statuses=(),
                                    unfinished_first=True)
            if ld is None:
                return None  # another source object has not landed this file yet
            chosen.append(ld)
        if not chosen:
            return None
        runs = []
        for ld in chosen:
            if ld.status == "identical":
                continue
            mine = ledger.final_runs_of_load(con, ld.load_id)
            if {j.name for j in jobs_reading(cfg, conn, ld.source_object)} - {r.job for r in mine}:
                return None  # another job still has to apply this file
            runs += [(r, ld.header) for r in mine]
        local: list[tuple[str, str]] = []  # (local path, suffix after the file's new key)
        for ld in chosen:
            if ld.status == "failed":
                path = os.path.join(tmp, f"failure-{ld.source_object}.csv")
                write_failure_file(path, ld.error or "the file could not be loaded")
                local.append((path, ".errors.csv" if len(chosen) == 1 else f".{ld.source_object}.errors.csv"))
        for run, header in runs:
            if run.rejected:
                path = os.path.join(tmp, f"{run.job}.csv")
                write_error_file(con, run.job_run_id, header or [], path)
                local.append((path, f".{run.job}.errors.csv"))
    # Where the file goes (S3 look-ups only after the warehouse connection is closed).
    src = jobs_reading(cfg, conn, chosen[0].source_object)[0].source
    failed = all(ld.status == "failed" for ld in chosen) or (
        bool(runs) and all(ld.status != "identical" for ld in chosen) and all(r.status == "Failed" for r, _h in runs))
    name = os.path.basename(key)
    prefix = src.error_to if failed else src.archive_to
    target_dir = prefix if prefix != "" else key[: len(key) - len(name)]
    new_key = target_dir + name
    # Another file of that name archived earlier keeps its place; this very version already there
    # is an earlier move of this load that was interrupted (killed after the copy): finish it.
    if prefix != "" and _etag_at(client, bucket, new_key) not in (None, etag):
        new_key = f"{target_dir}{load_id[:8]}_{name}"
    errors = [(path, new_key + suffix) for path, suffix in local]
    load_ids = [load_id] + [ld.load_id for ld in chosen if ld.archived_to is None and ld.load_id != load_id]
    return _Plan(load_ids, source_file, bucket, key, etag, new_key if prefix != "" else None, errors)


def _move(warehouse: Warehouse, client, p: _Plan, log) -> Finished:
    """Upload the error files and move the file (S3 only: the warehouse is not held meanwhile)."""
    for path, ekey in p.errors:
        client.upload_file(path, p.bucket, ekey)
    moved = p.source_file
    if p.new_key is not None:
        try:
            extra = {"CopySourceIfMatch": f'"{p.etag}"'} if p.etag else {}
            client.copy_object(Bucket=p.bucket, Key=p.new_key, CopySource={"Bucket": p.bucket, "Key": p.key}, **extra)
            head = client.head_object(Bucket=p.bucket, Key=p.key)
            if (head.get("ETag") or "").strip('"') == p.etag:
                client.delete_object(Bucket=p.bucket, Key=p.key)
            moved = f"s3://{p.bucket}/{p.new_key}"
        except client.exceptions.ClientError as e:
            if p.etag and _etag_at(client, p.bucket, p.new_key) == p.etag:
                moved = f"s3://{p.bucket}/{p.new_key}"  # an interrupted earlier move had finished the copy
            elif log:
                log.warning(f"{p.source_file} was not moved ({e.response['Error'].get('Code')}): it changed or vanished")
    error_uris = [f"s3://{p.bucket}/{k}" for _, k in p.errors]
    with warehouse.connect() as con:
        ledger.finish_loads(con, p.load_ids, moved, error_uris)
    if log:
        log.info(f"{p.source_file} -> {moved}" + (f"; error files: {', '.join(error_uris)}" if error_uris else ""))
    return Finished(p.load_ids[0], p.source_file, moved, error_uris)


def unfinished_loads(warehouse: Warehouse, cfg: PlatformConfig, destination: str) -> list[str]:
    """Loads of the files feeding `destination` that have not been archived yet (files of S3
    connections: other kinds finish their own units)."""
    pairs = {(j.connection, j.source.object) for j in cfg.jobs_into(destination)
             if cfg.connections[j.connection].type == "s3"}
    if not pairs:
        return []
    with warehouse.connect() as con:
        rows = ledger.unfinished_loads(con)
    return [r.load_id for r in rows if (r.connection, r.source_object) in pairs]
