"""The SQL kind's reader: one sync of one dataset, landed through the engine.

A sync opens one read-only snapshot on the source (sql/systems), describes the dataset and checks
it before anything lands (a column a job reads that is gone or renamed, a type that cannot fill
its field: schema drift, reported), then reads rows ordered by (cursor, key) from a server-side
cursor under the cursor rule (../shared/DESIGN.md):

- lower bound closed: `cursor >= stored cursor - lookback`;
- upper bound open: `cursor < server now - visibility lag`, lowered to the start of the oldest
  transaction still open where the server shows it (a row it writes can only carry a later
  timestamp; it is read by the next sync instead of being skipped forever);
- the stored state is the last cursor value exactly as read plus the keys read at it (the first
  10,000: every row at that value is read again next time anyway, and the upsert absorbs it), written in
  the landing's transaction of each load (every `records_per_load` rows), so a killed sync keeps
  what committed and the next one resumes there; the upsert absorbs what is read again.

MAX(cursor) is never asked for separately (airbytehq/airbyte#85918): the bounds and the rows come
from the same snapshot. Deletes: a soft-delete column flags rows; a key check compares the keys in
the source with the keys landed before and lands the missing ones as deletes. The jobs apply both
by their delete policy.
"""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Optional

import pyarrow as pa
import pyarrow.compute as pc

from gs_assets.config.loader import PlatformConfig
from gs_assets.connectors.incremental import CursorState, SyncOutcome, Window
from gs_assets.connectors.sql.config import SqlConnection, SqlSource
from gs_assets.connectors.sql.statements import ReadPlan, dataset_sql, select_sql
from gs_assets.connectors.sql.systems.base import (DATE, DATETIME, DATETIME_TZ, INTEGER, JSON, Column, ConnectFailed,
                                                   SqlSystem)
from gs_assets.connectors.sql.types import FILLS, UNSUPPORTED, fits
from gs_assets.connectors.sql.values import record_keys
from gs_assets.engine import ledger
from gs_assets.engine.pipeline import Unit, jobs_reading, land_records
from gs_assets.engine.raw_landing import DELETED_COLUMN, RecordBatches
from resources.warehouse import Warehouse

RECORD_KEY = "_record_key"  # a composite primary key as text (its parts joined by ':'), each row's location
# Keys remembered at the last cursor value, at most: a bulk update can stamp millions of rows with one value,
# and the set (in memory, and in the state every load writes) must not grow with them. The next sync reads
# that whole value again anyway (closed lower bound); a partial list only means more is read again.
BOUNDARY_KEYS = 10_000


class SyncFailed(Exception):
    """A sync that cannot go on (schema drift, a type that cannot land): one paragraph; what
    committed before it stays."""


# ---------------------------------------------------------------------------- columns

def source_of(cfg: PlatformConfig, connection: str, source_object: str) -> SqlSource:
    return jobs_reading(cfg, connection, source_object)[0].source  # type: ignore[return-value]


def needed_columns(cfg: PlatformConfig, connection: str, source_object: str) -> list[str]:
    """The columns a sync reads: the key, cursor and soft-delete column, the source's `columns`, and
    every column a job of the source reads (mapped, matched, in a formula)."""
    jobs = jobs_reading(cfg, connection, source_object)
    cols = list(source_of(cfg, connection, source_object).always_read)
    for j in jobs:
        cols += j.mapped_source_columns
    return list(dict.fromkeys(cols))


def resolve(wanted: list[str], described: list[Column]) -> tuple[dict[str, Column], list[str]]:
    """Configured column names -> the described columns (exact name first, then the one column that
    matches ignoring case: Snowflake upper-cases unquoted names); and the names not found."""
    exact = {c.name: c for c in described}
    folded: dict[str, list[Column]] = {}
    for c in described:
        folded.setdefault(c.name.casefold(), []).append(c)
    found, missing = {}, []
    for w in wanted:
        if w in exact:
            found[w] = exact[w]
        elif len(folded.get(w.casefold(), [])) == 1:
            found[w] = folded[w.casefold()][0]
        else:
            missing.append(w)
    return found, missing


def check_columns(cfg: PlatformConfig, connection: str, source_object: str, described: list[Column]) -> dict[str, Column]:
    """The columns the sync reads, resolved; raise SyncFailed, before anything lands, for a column a
    job reads that the dataset no longer has, a type that cannot land, or one that cannot fill the
    field a job maps it to."""
    conn: SqlConnection = cfg.connections[connection]
    src = source_of(cfg, connection, source_object)
    what = src.table or "the source query"
    wanted = needed_columns(cfg, connection, source_object)
    found, missing = resolve(wanted, described)
    jobs = jobs_reading(cfg, connection, source_object)
    problems = []
    if missing:
        readers = {c: [j.name for j in jobs if c in j.mapped_source_columns] for c in missing}
        parts = [f"{c!r} (read by {', '.join(r)})" if r else f"{c!r} (the source's primary_key, cursor, "
                 "soft_delete or columns)" for c, r in readers.items()]
        have = ", ".join(c.name for c in described[:40]) + (" ..." if len(described) > 40 else "")
        problems.append(f"{what} has no column {', '.join(parts)}; it has: {have}. A column may have been "
                        "renamed or dropped: restore it, or change the source and the jobs' mappings")
    for name, col in found.items():
        if col.category in UNSUPPORTED:
            problems.append(f"column {col.name} is of type {col.db_type}, which cannot be landed (binary, spatial, "
                            "array and unknown types are not read); leave it out, or cast it to text in a source query")
    model = cfg.model
    for j in jobs:
        obj = model.objects.get(j.destination)
        if obj is None:
            continue
        for m in j.mappings:
            col = found.get(m.source) if m.source else None
            fdef = obj.fields.get(m.target)
            if col is None or fdef is None or col.category in UNSUPPORTED:
                continue
            if not fits(col.category, fdef.type):
                problems.append(f"job {j.name} maps {col.name} ({col.db_type}) to {j.destination}.{m.target}, a "
                                f"{fdef.type.value} field, which takes {', '.join(sorted(FILLS[fdef.type]))} columns; "
                                "cast it in a source query or map it to a field of a fitting type")
    if problems:
        raise SyncFailed(f"{connection}/{source_object} ({conn.label} {what}): " + "; ".join(problems)
                         + ". Nothing was loaded.")
    return found


# ---------------------------------------------------------------------------- values

def cursor_text(v: Any) -> str:
    """A cursor value exactly as read (never rounded): ISO text for times, the number for a sequence."""
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    return str(v)


def cursor_value(text: str, category: str) -> Any:
    if category in (DATETIME, DATETIME_TZ):
        return datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if category == DATE:
        return date.fromisoformat(text[:10])
    if category == INTEGER:
        return int(text)
    return Decimal(text)


def _bound(when: datetime, category: str) -> Any:
    """An upper or window bound (aware UTC) in the cursor column's own kind of value."""
    when = when.astimezone(timezone.utc)
    if category == DATETIME:
        return when.replace(tzinfo=None)  # naive columns hold UTC (the session runs in UTC)
    if category == DATE:
        return when.date()
    return when


def _lower(state: CursorState, cur_col: Column, src: SqlSource) -> Any:
    value = cursor_value(state.cursor, cur_col.category)
    if src.cursor.type == "sequence":
        return value - src.cursor.lookback_values
    if isinstance(value, datetime):
        if value.tzinfo is None and cur_col.category == DATETIME_TZ:
            value = value.replace(tzinfo=timezone.utc)
        return value - timedelta(seconds=src.cursor.lookback_seconds)
    return value - timedelta(days=-(-src.cursor.lookback_seconds // 86400))


# ---------------------------------------------------------------------------- the sync

def sync_dataset(warehouse: Warehouse, cfg: PlatformConfig, system: SqlSystem, *, connection: str, source_object: str,
                 window: Optional[Window] = None, run_id: str = "", log=None) -> SyncOutcome:
    """Sync one dataset (incremental from its cursor, in full, or a window of the cursor) in loads
    of at most `records_per_load` rows. Never raises for what committed: the outcome says what
    landed and why it failed (`error`)."""
    conn: SqlConnection = cfg.connections[connection]
    src = source_of(cfg, connection, source_object)
    out = SyncOutcome()
    try:
        with system:
            system.begin_snapshot()
            _sync(warehouse, cfg, system, conn, src, connection, source_object, window, run_id, log, out)
    except ConnectFailed as e:
        out.error = str(e)
    except SyncFailed as e:
        out.error = str(e)
    return out


def _sync(warehouse, cfg, system: SqlSystem, conn: SqlConnection, src: SqlSource, connection: str, source_object: str,
          window: Optional[Window], run_id: str, log, out: SyncOutcome) -> None:
    dataset = dataset_sql(src.table, src.query)
    now = system.server_now()  # the first statement: the snapshot starts here
    try:
        described = system.describe(dataset)
    except ConnectFailed:
        raise
    except Exception as e:  # noqa: BLE001 - the driver's error for a dropped table or a bad query
        raise SyncFailed(f"{connection}/{source_object} ({conn.label}): cannot read {src.table or 'the source query'}: "
                         f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}. Nothing was loaded. "
                         "The table may have been dropped or renamed, or the connection's role lost access to it.") from None
    out.fields = [c.name for c in described]
    with warehouse.connect() as con:
        prev = ledger.last_sync(con, connection, source_object)
        history = ledger.sync_history(con, connection, source_object)
        start = None if (window is not None or src.full_refresh or src.cursor is None) else \
            ledger.stream_cursor(con, connection, source_object)
    if prev is not None and prev.fields:
        out.added_fields = [f for f in out.fields if f not in prev.fields]
        out.removed_fields = [f for f in prev.fields if f not in out.fields]
    found = check_columns(cfg, connection, source_object, described)
    landed = needed_columns(cfg, connection, source_object)
    cur_col = found.get(src.cursor.column) if src.cursor is not None else None
    if cur_col is not None and src.cursor.type == "timestamp" and cur_col.category not in (DATETIME, DATETIME_TZ, DATE):
        raise SyncFailed(f"{connection}/{source_object}: cursor column {cur_col.name} is {cur_col.db_type}, not a date "
                         "or timestamp; set cursor.type: sequence for an ever-growing number. Nothing was loaded.")
    if cur_col is not None and src.cursor.type == "sequence" and cur_col.category not in (INTEGER, "decimal"):
        raise SyncFailed(f"{connection}/{source_object}: cursor column {cur_col.name} is {cur_col.db_type}, not a "
                         "number; a sequence cursor must be an ever-growing integer. Nothing was loaded.")

    state: Optional[CursorState] = None
    if start is not None and start.cursor_to:
        state = CursorState.from_dict(start.cursor_to)
        out.cursor_from = state.cursor if state else None
    lower = upper = None
    out.mode = "full"
    if cur_col is not None and src.cursor.type == "timestamp":
        horizon = now - timedelta(seconds=src.cursor.visibility_lag_seconds)
        inflight = system.inflight_since()
        if inflight is not None and inflight < horizon:
            # an open transaction may still commit rows stamped from its start on: they wait for the next sync
            if log is not None:
                log.info(f"{connection}/{source_object}: a transaction open since {inflight.isoformat()} holds this "
                         f"sync's upper bound there (its rows, and later ones, are read by the next sync)")
            horizon = inflight
        upper = _bound(horizon, cur_col.category)
        if window is not None:
            out.mode = "window"
            lower = _bound(window.start, cur_col.category)
            upper = min(upper, _bound(window.end, cur_col.category))
        elif state is not None:
            out.mode = "incremental"
            lower = _lower(state, cur_col, src)
    elif cur_col is not None and state is not None:  # a sequence
        out.mode = "incremental"
        lower = _lower(state, cur_col, src)
    if window is not None and out.mode != "window":
        raise SyncFailed(f"{connection}/{source_object}: a window can only be re-synced on a timestamp cursor; this "
                         "source has " + ("a sequence cursor" if cur_col is not None else "no cursor")
                         + ": sync the latest partition (a full read) instead.")
    out.window_from = cursor_text(lower) if lower is not None else None
    out.window_to = cursor_text(upper) if upper is not None else None

    pk = list(src.primary_key)
    order = [cur_col.name] + [found[k].name for k in pk] if cur_col is not None else []
    cats = [found[c].category for c in landed]
    plan = ReadPlan(dataset=dataset, columns=[(found[c].name, c) for c in landed], categories=cats,
                    cursor=cur_col.name if cur_col is not None else None, lower=lower, upper=upper, order=order)
    sql, params = select_sql(plan, system.quote, system.placeholder, system.select_expr)
    idx = {c: i for i, c in enumerate(landed)}
    flag = src.soft_delete
    with_flags = flag is not None or src.key_check is not None
    id_column = pk[0] if len(pk) == 1 else RECORD_KEY
    sync_id = str(uuid.uuid4())
    batches: list[pa.RecordBatch] = []
    pending = {"fetches": 0, "records": 0, "deleted": 0}
    tracker = {"value": None, "raw": None, "pks": set()}
    if state is not None:
        tracker["raw"], tracker["pks"] = state.cursor, set(state.pks)

    def current_state() -> Optional[CursorState]:
        if cur_col is None or out.mode == "window" or tracker["raw"] is None:
            return None
        return CursorState(tracker["raw"], tuple(sorted(tracker["pks"])))

    def commit(mode: Optional[str] = None) -> None:
        if not batches:
            return
        st = current_state()
        part = len(out.loads) + 1
        rec = ledger.SyncRecord(
            load_id="", connection=connection, source_object=source_object, sync_id=sync_id, mode=mode or out.mode,
            window_from=out.window_from, window_to=out.window_to, pages=pending["fetches"],
            records=pending["records"], deleted=pending["deleted"],
            cursor_to=st.to_dict() if st else None, fields=out.fields, stopped=None,
            synced_at=datetime.now(timezone.utc).replace(tzinfo=None))
        label = (f"{conn.system}:{connection}/{source_object} {mode or out.mode} "
                 f"{out.window_from or 'start'}..{out.window_to or 'now'} part {part}")
        # The batches as fetched: each is typed from its own values (a decimal's precision, a column NULL
        # throughout a chunk), so they need not share one Arrow schema; the landing casts each to text.
        # A key check that found nothing gone lands its empty batch: the schema alone.
        chunks = list(batches)

        @contextmanager
        def records():
            yield RecordBatches(batches=chunks, id_column=id_column)

        res = land_records(warehouse, cfg, connection=connection, source_object=source_object,
                           unit=Unit(source_file=label, etag=f"{sync_id}#{part}"), records=records, run_id=run_id,
                           log=log, on_landed=lambda con, load_id: ledger.insert_sync(con, rec._replace(load_id=load_id)))
        out.loads.append(res)
        batches.clear()
        pending.update(fetches=0, records=0, deleted=0)
        if res.status == "failed":
            raise SyncFailed(res.error if label in (res.error or "") else f"{label}: {res.error}")
        if st is not None:
            out.cursor_to = st.cursor

    def decorate(batch: pa.RecordBatch) -> pa.RecordBatch:
        """The landed columns plus the composite key's text and the delete flag."""
        arrays, names = list(batch.columns), list(landed)
        if len(pk) > 1:
            arrays.append(record_keys([batch.column(idx[k]) for k in pk]))
            names.append(RECORD_KEY)
        if with_flags:
            arrays.append(_flags(batch.column(idx[flag.column]), flag.value) if flag is not None
                          else pa.nulls(batch.num_rows, pa.string()))
            names.append(DELETED_COLUMN)
        return pa.RecordBatch.from_arrays(arrays, names=names)

    ci = idx[src.cursor.column] if cur_col is not None else None

    def pieces():
        """The system's batches cut so that a load holds at most `records_per_load` rows."""
        for batch in system.batches(sql, params, landed, cats):
            out.pages += 1
            pending["fetches"] += 1
            at = 0
            while at < batch.num_rows:
                n = min(batch.num_rows - at, max(1, conn.records_per_load - pending["records"]))
                yield batch.slice(at, n)
                at += n

    for raw in pieces():
        b = decorate(raw)
        if flag is not None:
            n_del = int(pc.sum(pc.equal(b.column(DELETED_COLUMN), "true")).as_py() or 0)
            pending["deleted"] += n_del
            out.deleted += n_del
        batches.append(b)
        out.records += raw.num_rows
        pending["records"] += raw.num_rows
        if ci is not None:
            col = raw.column(ci)
            last = col[-1].as_py()
            canon = cursor_text(cursor_value(last, cur_col.category))  # ISO text, exactly the value read
            if canon != tracker["raw"]:
                tracker["raw"], tracker["pks"] = canon, set()
            if len(tracker["pks"]) < BOUNDARY_KEYS:
                at_last = pc.fill_null(pc.equal(col, last), False)
                keys = record_keys([raw.column(idx[k]) for k in pk]).filter(at_last).to_pylist()
                tracker["pks"].update(keys[:BOUNDARY_KEYS - len(tracker["pks"])])
        if pending["records"] >= conn.records_per_load:
            commit()
    commit()
    if src.key_check is not None and out.mode != "window" and _key_check_due(src, out.mode, history):
        _key_check(warehouse, system, src, found, dataset, connection, source_object, pk, landed, out, batches,
                   pending, commit)
    if out.cursor_to is None and out.cursor_from is not None:
        out.cursor_to = out.cursor_from


def _flags(values: pa.Array, value: Optional[str]) -> pa.Array:
    """'true' where the soft-delete column says deleted, NULL elsewhere."""
    if value is None:
        hit = pc.is_valid(values)
    else:
        text = pc.utf8_lower(values.cast(pa.string()))
        want = value.lower()
        choices = {"true": ["true", "t", "1", "yes", "y"], "false": ["false", "f", "0", "no", "n"]}.get(want, [want])
        hit = pc.fill_null(pc.is_in(text, value_set=pa.array(choices)), False)
    return pc.if_else(hit, pa.scalar("true"), pa.scalar(None, pa.string()))


def _key_check_due(src: SqlSource, mode: str, history: list) -> bool:
    """On every full sync, and when the last key check is `every_hours` old (or there was none)."""
    if mode == "full":
        return True
    checks = [r.synced_at for r in history if r.mode == "key_check" and r.synced_at is not None]
    if not checks:
        return True
    age = datetime.now(timezone.utc).replace(tzinfo=None) - max(checks)
    return age >= timedelta(hours=src.key_check.every_hours)


def _key_check(warehouse, system: SqlSystem, src: SqlSource, found: dict, dataset: str, connection: str,
               source_object: str, pk: list[str], landed: list[str], out: SyncOutcome, batches: list,
               pending: dict, commit) -> None:  # noqa: PLR0913
    """Keys landed before (and not deleted since) that the source no longer has: land them as
    deletes. Read in the sync's snapshot; compared in DuckDB."""
    cats = [found[k].category for k in pk]
    plan = ReadPlan(dataset=dataset, columns=[(found[k].name, k) for k in pk], categories=cats)
    sql, params = select_sql(plan, system.quote, system.placeholder, system.select_expr)
    keys = [record_keys(list(b.columns)) for b in system.batches(sql, params, pk, cats)]
    present = pa.table({"k": pa.chunked_array(keys, type=pa.string()) if keys else pa.array([], pa.string())})
    gone: list[str] = []
    with warehouse.connect() as con:
        loads = ledger.landed_loads(con, connection, source_object)
        parts = []
        for i, ld in enumerate(loads):
            flag = f"coalesce({DELETED_COLUMN} = 'true', false)" if _has_flag(con, ld.raw_table) else "false"
            parts.append(f"SELECT _source_id AS k, {i} AS o, {flag} AS d FROM {ld.raw_table}")
        con.register("gsdp_present_keys", present)
        try:
            gone = [] if not parts else [r[0] for r in con.execute(
                "SELECT k FROM (SELECT k, arg_max(d, o) AS d FROM (" + " UNION ALL ".join(parts) + ") "
                "WHERE k IS NOT NULL GROUP BY k) WHERE NOT d AND k NOT IN (SELECT k FROM gsdp_present_keys) "
                "ORDER BY k").fetchall()]
        finally:
            con.unregister("gsdp_present_keys")
    # The check is landed even when nothing is gone: the ledger then knows when keys were last compared.
    cols = {c: pa.nulls(len(gone), pa.string()) for c in landed}
    if len(pk) == 1:
        cols[pk[0]] = pa.array(gone, pa.string())
    else:
        split = [g.split(":") for g in gone]
        for i, k in enumerate(pk):
            cols[k] = pa.array([s[i] if i < len(s) else None for s in split], pa.string())
        cols[RECORD_KEY] = pa.array(gone, pa.string())
    cols[DELETED_COLUMN] = pa.array(["true"] * len(gone), pa.string())
    batches.append(pa.RecordBatch.from_arrays(list(cols.values()), names=list(cols)))
    pending["deleted"] += len(gone)
    out.deleted += len(gone)
    commit("key_check")


def _has_flag(con, raw_table: str) -> bool:
    try:
        return DELETED_COLUMN in [d[0] for d in con.execute(f"SELECT * FROM {raw_table} LIMIT 0").description]
    except Exception:  # noqa: BLE001 - a raw table gone: nothing to compare
        return False
