"""Reading a stream: field discovery and pages of records under the incremental cursor rule.

The cursor rule (DESIGN.md): read with a closed lower bound `>= last_cursor - lookback` and an upper
bound `< now - visibility_lag`, ordered by (cursor, pk); the state a page lets the sync advance to
is the last cursor value *exactly as the source gave it* plus the keys seen at that value; records
at the boundary whose keys were already seen are still yielded (the upsert absorbs re-reads). The
caller advances its stored state only after the load holding the page (and all before it) commits.

- no state, no window: full refresh (bounded above by `now - visibility_lag` where the request can
  filter); an unordered full list (HubSpot's list endpoint) only offers a state on its last page;
- state: incremental from `state.cursor - lookback`;
- window (start, end): re-sync that window; every page carries the state it was given (unchanged).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator, Optional

import pyarrow as pa

from gs_assets.connectors.rest_api.client import RestClient
from gs_assets.connectors.rest_api.paginators import paginate, summary
from gs_assets.connectors.incremental import CursorState, Window  # noqa: F401  (re-exported for callers)
from gs_assets.connectors.rest_api.spec import BoundStream, IncrementalSpec, PaginatorSpec, dig, render

SOURCE_ID = "_source_id"
log = logging.getLogger("gs_assets.rest_api.sync")


@dataclass(frozen=True)
class FieldInfo:
    name: str
    type: Optional[str] = None


@dataclass
class Page:
    number: int
    records: pa.RecordBatch
    deleted_ids: list[str]
    request: str
    state: Optional[CursorState]
    lower: Optional[str] = None
    upper: Optional[str] = None
    mode: str = "full"

    @property
    def num_records(self) -> int:
        return self.records.num_rows


@dataclass
class _Tracker:
    """The (cursor, pks) the pages so far let the sync advance to."""
    inc: Optional[IncrementalSpec]
    state: Optional[CursorState]
    upper: Optional[datetime] = None
    best: Optional[datetime] = None
    raw: Optional[str] = None
    pks: set = field(default_factory=set)
    _dirty: bool = False

    @property
    def _fmt(self) -> str:
        return self.inc.cursor_format if self.inc is not None else "iso"

    def __post_init__(self):
        if self.state is not None and self.state.cursor:
            self.best = parse_cursor(self.state.cursor, self._fmt)
            self.raw = self.state.cursor
            self.pks = set(self.state.pks)

    def see(self, raw: Any, pk: str) -> None:
        if raw in (None, "") or self.inc is None:
            return
        value = parse_cursor(raw, self._fmt)
        if self.upper is not None and value >= self.upper:
            return  # above the window (an unordered list): next run reads it again
        if self.best is None or value > self.best:
            self.best, self.raw, self.pks = value, str(raw), {pk}
        elif value == self.best:
            self.pks.add(pk)
        else:
            return
        self._dirty = True

    def current(self, token: Optional[str] = None) -> Optional[CursorState]:
        if self._dirty:
            self.state = CursorState(self.raw, tuple(sorted(self.pks)), token)  # type: ignore[arg-type]
            self._dirty = False
        elif token is not None and self.state is not None and self.state.token != token:
            self.state = CursorState(self.state.cursor, self.state.pks, token)
        elif token is not None and self.state is None:
            self.state = CursorState("", (), token)  # nothing read yet: only where to resume
        return self.state


def parse_cursor(raw: Any, fmt: str = "iso") -> datetime:
    if isinstance(raw, (int, float)) or (isinstance(raw, str) and raw.isdigit()):
        return datetime.fromtimestamp(int(raw) / (1 if fmt == "epoch_s" else 1000), tz=timezone.utc)
    d = datetime.fromisoformat(str(raw))
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def literal(when: datetime, fmt: str) -> str:
    """A bound as the request writes it, rounded *down* (never past the true bound)."""
    when = when.astimezone(timezone.utc)
    if fmt == "epoch_ms":
        return str(int(when.timestamp() * 1000))
    if fmt == "utc_seconds":
        return when.strftime("%Y-%m-%d %H:%M:%S")
    if fmt == "epoch_s":
        return str(int(when.timestamp()))
    if fmt == "iso_ms_z":
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    return when.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------- fields

def discover_fields(client: RestClient, stream: BoundStream) -> list[FieldInfo]:
    """The stream's fields as the source describes them now (each run, for schema drift)."""
    s = stream.spec
    if s.field_discovery is None:
        return [FieldInfo(f) for f in [*s.fields, *s.response_fields]]
    fd = s.field_discovery
    data = client.get_json(fd.request, {"object": stream.object})
    out = []
    for item in dig(data, fd.selector, default=[]) or []:
        if any(item.get(k) != v for k, v in fd.include.items()):
            continue
        typ = item.get(fd.type) if fd.type else None
        if typ in fd.exclude_types:
            continue
        out.append(FieldInfo(str(item[fd.name]), typ))
    return out


# ---------------------------------------------------------------------------- records

def _text(v: Any) -> Optional[str]:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True, separators=(",", ":"))
    return str(v)


def flatten(stream: BoundStream, record: dict) -> list[dict]:
    f = stream.spec.flatten
    items = [record]
    if f.explode:
        rest = {k: v for k, v in record.items() if k != f.explode}
        items = [{**rest, **(x if isinstance(x, dict) else {f.explode: x})} for x in record.get(f.explode) or []]
    out = []
    for rec in items:
        flat: dict[str, Any] = {}
        if f.root:
            for k in f.keep:
                if k in rec:
                    flat[k] = rec[k]
            flat.update(rec.get(f.root) or {})
        else:
            _flat_into(flat, "", rec, f.separator, set(f.drop))
        out.append(flat)
    return out


def _flat_into(out: dict, prefix: str, rec: dict, sep: str, drop: set) -> None:
    for k, v in rec.items():
        if k in drop:
            continue
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            _flat_into(out, key + sep, v, sep, drop)
        else:
            out[key] = v


def pk_of(stream: BoundStream, flat: dict) -> str:
    keys = [k.strip() for k in stream.spec.primary_key.split(",")]
    return ":".join(_text(flat.get(k)) or "" for k in keys)


def to_batch(columns: list[str], rows: list[dict], pks: list[str]) -> pa.RecordBatch:
    cols = list(columns)
    seen = set(cols)
    for r in rows:
        for k in r:
            if k not in seen:
                seen.add(k)
                cols.append(k)
    arrays = [pa.array([_text(r.get(c)) for r in rows], type=pa.string()) for c in cols]
    arrays.append(pa.array(pks, type=pa.string()))
    return pa.RecordBatch.from_arrays(arrays, names=[*cols, SOURCE_ID])


# ---------------------------------------------------------------------------- reading

def read_stream(client: RestClient, stream: BoundStream, *, fields: list[FieldInfo],
                window: Optional[Window] = None, state: Optional[CursorState] = None,
                now: Optional[datetime] = None, parent_ids: Optional[Iterable[str]] = None,
                use_export: Optional[bool] = None, export_threshold: Optional[int] = None) -> Iterator[Page]:
    s = stream.spec
    inc = s.incremental
    now = now or datetime.fromtimestamp(client._now(), tz=timezone.utc)
    names = [f.name for f in fields]
    upper_dt = (now - timedelta(seconds=inc.visibility_lag_seconds)) if inc else None
    lower_dt: Optional[datetime] = None
    mode = "full"
    if window is not None:
        if inc is None:
            raise ValueError(f"stream {stream.name!r} has no incremental cursor, so a window cannot be re-synced; "
                             f"sync it in full (no window).")
        mode = "window"
        lower_dt = window.start
        upper_dt = min(window.end, upper_dt) if upper_dt else window.end
    elif state is not None and inc is not None:
        mode = "incremental"
        if state.cursor:
            lower_dt = parse_cursor(state.cursor, inc.cursor_format) - timedelta(seconds=inc.lookback_seconds)
    fmt = inc.literal_format if inc else "iso_z"
    lower = literal(lower_dt, fmt) if lower_dt is not None else None
    # a server-side cursor kept from the last sync (Zendesk after_cursor) replaces the lower bound
    resume = inc.resume if inc is not None else None
    token = state.token if (resume is not None and state is not None and mode == "incremental") else None
    request = s.request
    if token is not None:
        assert resume is not None
        request = s.request.model_copy(update={"params": {
            **{k: v for k, v in s.request.params.items() if k not in resume.replaces}, resume.param: token}})
    upper = literal(upper_dt, fmt) if upper_dt is not None else None

    tracker = _Tracker(inc, state if mode != "window" else None)
    base_state = state  # window mode: every page carries the state it was given
    shifted, frozen = False, None  # the result shifted under offset paging: pages keep the state before
    asked = [n for n in names if n not in s.response_fields]
    values: dict[str, Any] = {"object": stream.object, "fields": s.fields_param_separator.join(asked),
                              "field_list": asked}
    n = 0
    read_at: set[tuple[str, str]] = set()  # (pk, cursor) read by this sync, for dedupe_pages

    def page(raw: list[dict], req: str, ordered: bool, final: bool = False, data: Any = None) -> Page:
        nonlocal n
        n += 1
        rows, pks, deleted = [], [], []
        d = s.deletes
        for rec in raw:
            for flat in flatten(stream, rec):
                pk = pk_of(stream, flat)
                if inc is not None and inc.dedupe_pages:
                    key = (pk, _text(flat.get(inc.cursor_field)) or "")
                    if key in read_at:
                        continue  # the same record version again (a time-based export's boundary second)
                    read_at.add(key)
                if inc is not None:
                    tracker.see(flat.get(inc.cursor_field), pk)
                if d is not None and d.flag_field and _text(flat.get(d.flag_field)) == _text(d.flag_value):  # JSON or CSV
                    deleted.append(pk)
                    continue
                rows.append(flat)
                pks.append(pk)
        tok = dig(data, resume.token_path) if (resume is not None and data is not None) else None
        if mode == "window":
            st = base_state
        elif ordered or final:
            st = tracker.current(str(tok) if tok not in (None, "") else None)
        else:
            st = state  # an unordered list offers a state only on its last page
        return Page(n, to_batch(names, rows, pks), deleted, req, st, lower, upper, mode)

    if s.parent is not None:
        yield from _child_pages(client, stream, values, page, parent_ids)
        return

    if inc is not None and lower is not None and inc.request is not None:
        pager = inc.paginator or s.paginator
        yield from _search(client, stream, inc, values, pager, lower, upper, page)
    else:
        where = []
        if inc is not None and lower is not None and inc.lower_filter:
            where.append(render(inc.lower_filter, {"lower": lower}))
        elif inc is not None and lower is None and inc.full_lower is not None and inc.lower_filter:
            where.append(render(inc.lower_filter, {"lower": inc.full_lower}))
        if inc is not None and upper is not None and inc.upper_filter:
            where.append(render(inc.upper_filter, {"upper": upper}))
        values["where"] = (inc.where_prefix + inc.where_join.join(where)) if (inc and where) else ""
        ordered = bool(inc and inc.lower_filter)  # a filterable request is sorted by (cursor, pk) in its spec
        tracker.upper = upper_dt if not ordered else None
        if s.export is not None and mode == "full" and use_export is not False and \
                (use_export or _count(client, s.export, values) >
                 (s.export.row_threshold if export_threshold is None else export_threshold)):
            tracker.upper = upper_dt
            yield from _export(client, stream, values, page, tracker)
        else:
            total, kept = None, state
            for raw, data, req, is_last in paginate(client, request, values, s.paginator, s.record_selector):
                pg = page(raw, req, ordered, is_last, data)
                now_total = _header(client, s.paginator.total_header)
                if not shifted and total is not None and now_total != total:
                    # the result changed while paging: offsets may have shifted past a record, so no
                    # state beyond the last page before the change (the next run reads from there)
                    shifted, frozen = True, kept
                    log.warning("stream %s: the result count changed from %s to %s while paging; the cursor stays "
                                "at %s and the next run reads from there", stream.name, total, now_total,
                                frozen.cursor if frozen else "(none: a full read again)")
                total = now_total if total is None else total
                if shifted and mode != "window":
                    pg.state = frozen
                kept = pg.state
                yield pg
    if s.deletes is not None and s.deletes.archived_request is not None:
        d = s.deletes
        final_state = (frozen if shifted else tracker.current()) if mode != "window" else base_state
        for raw, _data, req, _last in paginate(client, d.archived_request, values, s.paginator, d.deleted_selector or s.record_selector):
            n += 1
            ids = [str(r.get(d.deleted_id_field)) for r in raw]
            yield Page(n, to_batch(names, [], []), ids, req, final_state, lower, upper, mode)
    if s.deletes is not None and s.deletes.deleted_request is not None and lower is not None:
        # a deleted-records feed over the same window (Salesforce getDeleted: ?start=&end=)
        d = s.deletes
        final_state = (frozen if shifted else tracker.current()) if mode != "window" else base_state
        dfmt = d.literal_format or "iso_z"
        dvals = {**values, "start": literal(lower_dt, dfmt), "end": literal(upper_dt, dfmt) if upper_dt else ""}  # type: ignore[arg-type]
        data = client.get_json(d.deleted_request, dvals)
        n += 1
        ids = [str(r.get(d.deleted_id_field)) for r in dig(data, d.deleted_selector, default=[]) or []]
        path = render(d.deleted_request.path, {**client.variables, **dvals})
        yield Page(n, to_batch(names, [], []), ids, summary(d.deleted_request.method, path), final_state, lower, upper, mode)


def _header(client: RestClient, name: Optional[str]) -> Optional[str]:
    resp = client.last_response
    return resp.headers.get(name) if name and resp is not None else None


def _search(client: RestClient, stream: BoundStream, inc: IncrementalSpec, values: dict, pager: PaginatorSpec,
            lower: str, upper: Optional[str], page) -> Iterator[Page]:
    """A search sorted by the cursor (one sort rule) under a total result cap: past the cap the
    query is re-issued from the last cursor value, the records tied at it read in primary-key order
    (keyset on `tie_break_field`, re-issued again past the cap), then the range continues above it.
    Nothing is skipped however many records share one value."""
    req = inc.request
    assert req is not None
    cur = inc.cursor_field
    tie = pager.tie_break_field
    cap = pager.result_cap
    base_body = render(req.body or {}, {**client.variables, **values})
    limit = int(base_body.get("limit") or pager.page_size or 100)
    path = render(req.path, {**client.variables, **values})
    lo_op, lo = "GTE", lower
    tie_value: Optional[str] = None  # the cursor literal being read tie by tie
    tie_after: Optional[str] = None
    after: Any = None
    fetched = 0
    # the keys read (range pass) at the newest cursor value: the tie pass that re-issues the query at
    # that value skips them, so a record is read once however many share its timestamp
    at_value: Optional[str] = None
    seen_at_value: set[str] = set()
    while True:
        if tie_value is None:
            filters = [{"propertyName": cur, "operator": lo_op, "value": lo}]
            if upper is not None:
                filters.append({"propertyName": cur, "operator": "LT", "value": upper})
            sorts = [{"propertyName": cur, "direction": "ASCENDING"}]
        else:
            filters = [{"propertyName": cur, "operator": "EQ", "value": tie_value}]
            if tie_after is not None:
                filters.append({"propertyName": tie, "operator": "GT", "value": tie_after})
            sorts = [{"propertyName": tie, "direction": "ASCENDING"}]
        body = {**base_body, "filterGroups": [{"filters": filters}], "sorts": sorts, "limit": limit}
        if after is not None:
            body[pager.param or "after"] = after
        data = client.send(req, values, body=body).json()
        raw = list(dig(data, inc.record_selector or stream.spec.record_selector, default=[]) or [])
        fetched += len(raw)
        if tie_value is None:
            for rec in raw:
                for flat in flatten(stream, rec):
                    value = str(flat.get(cur))
                    if value != at_value:
                        at_value, seen_at_value = value, set()
                    seen_at_value.add(pk_of(stream, flat))
        shown = raw if tie_value is None or not seen_at_value else [
            rec for rec in raw if any(pk_of(stream, f) not in seen_at_value for f in flatten(stream, rec))]
        desc = summary(req.method, path, after, "after") + (
            f" ({cur}={tie_value}, {tie}>{tie_after})" if tie_value is not None else f" ({cur} {lo_op} {lo})")
        yield page(shown, desc, True)
        nxt = dig(data, pager.next_path)
        if not nxt:
            if tie_value is None:
                break
            lo_op, lo, tie_value, tie_after, after, fetched = "GT", tie_value, None, None, None, 0
            continue
        if cap is not None and fetched + limit > cap and raw:
            last = flatten(stream, raw[-1])[-1] if flatten(stream, raw[-1]) else {}
            if tie_value is None:
                if tie is None:
                    raise RuntimeError(f"stream {stream.name}: the search passes its {cap} result cap and the spec names no tie_break_field")
                raw_cursor = last.get(cur)
                tie_value = (literal(parse_cursor(raw_cursor), "epoch_ms") if inc.literal_format == "epoch_ms"
                             else str(raw_cursor))
                tie_after = None
            else:
                tie_after = str(last.get(tie) or raw[-1].get("id"))
            after, fetched = None, 0
            continue
        after = nxt


def _child_pages(client: RestClient, stream: BoundStream, values: dict, page, parent_ids) -> Iterator[Page]:
    s = stream.spec
    p = s.parent
    assert p is not None
    if parent_ids is None:
        parent = client.spec.stream(p.stream)
        ids: list[str] = []
        for pg in read_stream(client, parent, fields=[FieldInfo(parent.spec.primary_key)], use_export=False):
            ids.extend(pg.records.column(SOURCE_ID).to_pylist())
        parent_ids = ids
    ids = list(parent_ids)
    if not ids:
        yield page([], summary(s.request.method, render(s.request.path, {**client.variables, **values})), False, True)
        return
    for i in range(0, len(ids), p.batch_size):
        batch = ids[i:i + p.batch_size]
        vals = {**values, "parent.inputs": [{"id": x} for x in batch], "parent.ids": batch,
                f"parent.{p.key}": batch[0]}
        for raw, _data, req, _last in paginate(client, s.request, vals, s.paginator, s.record_selector):
            yield page(raw, req, False, True)


def _count(client: RestClient, export, values: dict) -> int:
    if export.count_request is None:
        return 0
    return int(dig(client.get_json(export.count_request, values), export.count_path, default=0) or 0)


def _export(client: RestClient, stream: BoundStream, values: dict, page, tracker: _Tracker) -> Iterator[Page]:
    """An asynchronous export job (Salesforce Bulk API 2.0 query): create, poll, download CSV pages
    by locator. The rows are unordered, so only the last page offers a state."""
    e = stream.spec.export
    assert e is not None
    job = client.get_json(e.create, values)
    job_id = dig(job, e.id_path)
    vals = {**values, "job_id": job_id}
    waited = 0.0
    while True:
        st = dig(client.get_json(e.poll, vals), e.state_path)
        if st in e.done_states:
            break
        if st in e.failed_states or waited > e.max_poll_seconds:
            from gs_assets.connectors.rest_api.client import ApiError
            raise ApiError(f"connection {client.connection!r}: export job {job_id} of {stream.object} ended {st} "
                           f"(after {waited:.0f} s of polling); the next run starts it again.")
        client._sleep(e.poll_interval_seconds)
        waited += e.poll_interval_seconds
    locator: Optional[str] = None
    while True:
        params = {e.locator_param: locator} if locator else None
        resp = client.send(e.results, vals, params=params)
        rows = [dict(r) for r in csv.DictReader(io.StringIO(resp.text))]
        for r in rows:
            for k, v in r.items():
                if v == "":
                    r[k] = None
        asked = locator
        locator = resp.headers.get(e.locator_header)
        done = not locator or locator == e.locator_done
        yield page(rows, summary(e.results.method, str(resp.request.url), asked, e.locator_param), False, done)
        if done:
            break
