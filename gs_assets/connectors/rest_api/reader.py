"""The REST API kind's reader: one sync of one stream, landed through the engine.

A sync discovers the stream's fields (schema drift is reported; a field a job maps that the source
no longer has fails the sync before anything lands), reads pages from the stream's cursor (the
cursor rule in ../shared/DESIGN.md, implemented by `sync.read_stream`), and commits a load every
`records_per_load` records at a page boundary. Each load's ledger row (gs_ops.syncs) carries the
window it read and the cursor the stream advances to, in the landing's own transaction: the
cursor moves exactly when the load commits. A sync stopped by the daily budget, a failure or a
killed process keeps the loads that committed; the next sync resumes from the last one.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Optional

import pyarrow as pa

from gs_assets.config.loader import PlatformConfig
from gs_assets.connectors.rest_api.auth import ConnectionAuthError
from gs_assets.connectors.rest_api.client import ApiError, BudgetExhausted
from gs_assets.connectors.rest_api.config import RestApiConnection, RestSource
from gs_assets.connectors.rest_api.spec import BoundStream
from gs_assets.connectors.incremental import SyncOutcome, outcome_metadata  # noqa: F401  (re-exported)
from gs_assets.connectors.rest_api.sync import SOURCE_ID, CursorState, FieldInfo, Window, discover_fields, read_stream
from gs_assets.engine import ledger
from gs_assets.engine.pipeline import Unit, jobs_reading, land_records
from gs_assets.engine.raw_landing import RecordBatches
from resources.warehouse import Warehouse

RECORD_KEY = "_record_key"  # a composite primary key's text, each row's location for rejects
DELETED = "_deleted"  # a landed row the source reported deleted ('true'): the engine applies the job's delete policy


class SyncFailed(Exception):
    """A sync that cannot go on (a mapped field gone, an API error the spec says to fail on):
    one paragraph; what committed before it stays."""


def bound_stream(conn: RestApiConnection, src: RestSource) -> BoundStream:
    return conn.spec.stream(src.stream_name, src.sobject)


def _pk_columns(stream: BoundStream) -> list[str]:
    return [k.strip() for k in stream.spec.primary_key.split(",")]


def always_present(stream: BoundStream) -> set[str]:
    """Columns every record has whatever fields are requested (the primary key, kept keys)."""
    return set(_pk_columns(stream)) | set(stream.spec.flatten.keep)


def needed_columns(cfg: PlatformConfig, connection: str, source_object: str, stream: BoundStream) -> list[str]:
    """The fields a sync asks for: the primary key, cursor and delete flag, the source's `fields`,
    and every column a job of the source reads (mapped, matched, in a formula)."""
    jobs = jobs_reading(cfg, connection, source_object)
    s = stream.spec
    cols = _pk_columns(stream)
    if s.incremental is not None:
        cols.append(s.incremental.cursor_field)
    if s.deletes is not None and s.deletes.flag_field:
        cols.append(s.deletes.flag_field)
    cols += list(jobs[0].source.fields) if jobs else []
    for j in jobs:
        cols += j.mapped_source_columns
    return list(dict.fromkeys(cols))


def discovered_fields(client, stream: BoundStream) -> list[FieldInfo]:
    if stream.spec.field_discovery is None:
        return [FieldInfo(name) for name in [*stream.spec.fields, *stream.spec.response_fields]]
    return discover_fields(client, stream)


def check_fields(cfg: PlatformConfig, connection: str, source_object: str, stream: BoundStream,
                 discovered: list[FieldInfo]) -> list[FieldInfo]:
    """The discovered fields the sync requests; a column a job reads that the source does not have
    (now) fails the sync before anything lands, naming the job and the field."""
    names = {f.name for f in discovered}
    present = names | always_present(stream)
    problems = []
    jobs = jobs_reading(cfg, connection, source_object)
    for j in jobs:
        gone = [c for c in j.mapped_source_columns if c not in present]
        if gone:
            problems.append(f"job {j.name} reads {', '.join(repr(c) for c in gone)}")
    extra = [c for c in (jobs[0].source.fields or []) if c not in present]
    if extra:
        problems.append(f"the source's `fields` name {', '.join(repr(c) for c in extra)}")
    if problems:
        raise SyncFailed(
            f"{connection}/{source_object}: {'; '.join(problems)}, which {stream.object} does not have in "
            f"{connection} now (the source describes {len(names)} field(s); none of them is named so, and names are "
            f"case-sensitive). Nothing was loaded. The field may have been deleted or renamed, or the integration "
            f"user may have lost access to it: restore it, or change the job's mappings, and run again.")
    wanted = set(needed_columns(cfg, connection, source_object, stream))
    return [f for f in discovered if f.name in wanted]


def _iso(literal: Optional[str], fmt: Optional[str] = None) -> Optional[str]:
    """A window bound as ISO text (requests write epoch milliseconds or seconds for some systems)."""
    if literal is None:
        return None
    if literal.isdigit():
        return datetime.fromtimestamp(int(literal) / (1 if fmt == "epoch_s" else 1000),
                                      tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return literal


def _table(batches: list[pa.RecordBatch], deleted: list[str], stream: BoundStream) -> pa.Table:
    """One chunk's records and delete rows as one table of text columns (pages may differ in
    columns: a field that appeared mid-sync is a column from then on)."""
    cols: list[str] = []
    for b in batches:
        cols += [c for c in b.schema.names if c not in cols]
    pk = _pk_columns(stream)
    for c in pk + ([RECORD_KEY] if len(pk) > 1 else []):
        if c not in cols:
            cols.append(c)
    cols = [c for c in cols if c != SOURCE_ID]
    if deleted:
        cols.append(DELETED)
    parts = []
    for b in batches:
        if b.num_rows == 0:
            continue
        have = {c: b.column(c) for c in b.schema.names}
        have[RECORD_KEY] = have.get(SOURCE_ID)
        arrays = [have[c] if have.get(c) is not None else pa.nulls(b.num_rows, pa.string()) for c in cols]
        parts.append(pa.Table.from_arrays(arrays, names=cols))
    if deleted:
        rows = {c: [None] * len(deleted) for c in cols}
        rows[pk[0] if len(pk) == 1 else RECORD_KEY] = list(deleted)
        rows[DELETED] = ["true"] * len(deleted)
        parts.append(pa.Table.from_pydict(rows, schema=pa.schema([(c, pa.string()) for c in cols])))
    if not parts:
        return pa.Table.from_pydict({c: [] for c in cols}, schema=pa.schema([(c, pa.string()) for c in cols]))
    return pa.concat_tables(parts)


def sync_stream(warehouse: Warehouse, cfg: PlatformConfig, client, *, connection: str, source_object: str,
                window: Optional[Window] = None, run_id: str = "", log=None,
                now: Optional[datetime] = None) -> SyncOutcome:
    """Sync one stream (incremental from its cursor, in full, or an explicit window) and land it in
    loads of at most `records_per_load` records. Never raises for what committed: the outcome says
    what landed, why it stopped early (budget) or failed (`error`)."""
    conn: RestApiConnection = cfg.connections[connection]
    src: RestSource = jobs_reading(cfg, connection, source_object)[0].source
    stream = bound_stream(conn, src)
    out = SyncOutcome()
    try:
        discovered = discovered_fields(client, stream)
    except BudgetExhausted as e:  # spent before the first page: nothing to commit, the next run starts here
        out.stopped = str(e)
        return out
    except ApiError as e:
        out.error = str(e)
        return out
    out.fields = [f.name for f in discovered]
    with warehouse.connect() as con:
        prev = ledger.last_sync(con, connection, source_object)
        start = None if (window is not None or src.full_refresh) else ledger.stream_cursor(con, connection, source_object)
    if prev is not None and prev.fields and stream.spec.field_discovery is not None:
        out.added_fields = [f for f in out.fields if f not in prev.fields]
        out.removed_fields = [f for f in prev.fields if f not in out.fields]
    fields = check_fields(cfg, connection, source_object, stream, discovered)
    state = None
    if start is not None and start.cursor_to:
        state = CursorState.from_dict(start.cursor_to)
        out.cursor_from = state.cursor
    sync_id = str(uuid.uuid4())
    batches: list[pa.RecordBatch] = []
    deleted: list[str] = []
    pending = {"pages": 0, "records": 0, "state": state}

    def commit() -> None:
        if not batches and not deleted:
            return
        table = _table(batches, deleted, stream)
        pk = _pk_columns(stream)
        id_column = pk[0] if len(pk) == 1 else RECORD_KEY
        part = len(out.loads) + 1
        st: Optional[CursorState] = pending["state"]
        rec = ledger.SyncRecord(
            load_id="", connection=connection, source_object=source_object, sync_id=sync_id, mode=out.mode,
            window_from=out.window_from, window_to=out.window_to, pages=pending["pages"], records=pending["records"],
            deleted=len(deleted), cursor_to=st.to_dict() if st else None,
            fields=out.fields, stopped=None, synced_at=datetime.now(timezone.utc).replace(tzinfo=None))
        label = (f"{conn.system}:{connection}/{stream.name} {out.mode} "
                 f"{out.window_from or 'start'}..{out.window_to or 'now'} part {part}")

        @contextmanager
        def records():
            # a sync that read nothing new still lands (an empty batch with the schema): its ledger row
            # moves the cursor (a server-side token advances even when no record changed)
            yield RecordBatches(batches=table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)],
                                id_column=id_column)

        res = land_records(warehouse, cfg, connection=connection, source_object=source_object,
                           unit=Unit(source_file=label, etag=sync_id + f"#{part}"), records=records, run_id=run_id,
                           log=log, on_landed=lambda con, load_id: ledger.insert_sync(con, rec._replace(load_id=load_id)))
        out.loads.append(res)
        batches.clear()
        deleted.clear()
        pending["pages"] = pending["records"] = 0
        if res.status == "failed":
            raise SyncFailed(f"{label}: {res.error}")
        if st is not None:
            out.cursor_to = st.cursor

    try:
        for page in read_stream(client, stream, fields=fields, window=window, state=state, now=now,
                                export_threshold=conn.bulk_export_above_rows):
            out.mode = page.mode
            fmt = stream.spec.incremental.literal_format if stream.spec.incremental else None
            out.window_from = out.window_from or _iso(page.lower, fmt)
            out.window_to = _iso(page.upper, fmt)
            out.pages += 1
            out.records += page.num_records
            out.deleted += len(page.deleted_ids)
            batches.append(page.records)
            deleted.extend(page.deleted_ids)
            pending["pages"] += 1
            pending["records"] += page.num_records
            pending["state"] = page.state
            if pending["records"] + len(deleted) >= conn.records_per_load:
                commit()
        commit()
    except BudgetExhausted as e:
        out.stopped = str(e)
        commit()
    except (ApiError, ConnectionAuthError, SyncFailed) as e:
        out.error = str(e)
        try:
            commit()  # the pages read before the failure are complete: keep them
        except SyncFailed as e2:
            out.error += f" (and the pages read before it could not be landed: {e2})"
    return out
