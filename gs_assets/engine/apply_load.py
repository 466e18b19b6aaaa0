"""The load engine: one landed load -> map -> lookup -> identify -> validate -> write.

Every channel (S3 files today; bulk upload and APIs later) lands rows in a raw table and then
comes through `apply_load`. The caller runs it inside one warehouse transaction, so a job run's
object writes, rejects and run-log row commit together or not at all (invariant 2).

All row work is SQL in DuckDB over temp tables; Python only builds the statements. The object's
pandera schema is compiled to SQL (schema_sql); only checks with no SQL form run in pandera.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Optional

import duckdb

from gs_assets.config.jobs import VIRTUAL_COLUMNS, DeletePolicy, Job, OnMultiple, OnNone, Operation
from gs_assets.validators.expressions import check_expression, prepared_select
from gs_assets.engine import ledger
from gs_assets.engine.lookup_retry import Retry
from gs_assets.engine.raw_landing import DELETED_COLUMN, raw_rows_sql
from gs_assets.engine.schema_checks import schema_for, validation_failures
from gs_assets.engine.schema_sql import compile_schema, failures_select
from gs_assets.engine.sql_convert import clean_expr, defaulted_expr, ident, literal_expr, mapped_value, q, type_error_message
from gs_assets.model.field_types import FieldType
from gs_assets.model.objects import DataModel, ObjectDef

SUCCESS, PARTIAL, FAILED = "Success", "Partial Success", "Failed"
PANDERA_CHUNK = 200_000  # rows per pandera call for checks that cannot run as SQL


@dataclass
class LoadRef:
    """A landed load waiting for the jobs that read its source object."""

    load_id: str
    raw_table: str
    source_file: str
    etag: Optional[str]
    header: list[str]
    file_name: Optional[str] = None
    file_date: Optional[datetime] = None

    def virtual(self, name: str) -> str:
        """SQL literal for a `$file_...` mapping source."""
        if name == "$file_date":
            return q(self.file_date.isoformat(sep=" ")) if self.file_date else "NULL"
        if name == "$file_name":
            return q(self.file_name) if self.file_name else "NULL"
        raise KeyError(name)


@dataclass
class JobRunResult:
    job_run_id: str
    job: str
    destination: str
    load_id: str
    source_file: str
    status: str
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    filtered: int = 0
    superseded: int = 0
    aggregated: int = 0
    deleted: int = 0  # rows the source reported deleted (applied by the job's delete policy, or not)
    deletes_applied: int = 0  # of those: the ones that removed or marked a stored record (not a bucket)
    defaulted: int = 0  # values a mapping's default replaced in the rows written (not a bucket of its own)
    retry_of: Optional[str] = None  # the job run whose lookup rejects this run retried
    error: Optional[str] = None
    started_at: Optional[datetime] = None
    ended_at: Optional[datetime] = None
    reasons_by_rule: dict[str, int] = field(default_factory=dict)

    @property
    def conserved(self) -> bool:
        return self.rows_read == (self.inserted + self.updated + self.unchanged + self.rejected
                                  + self.filtered + self.superseded + self.aggregated + self.deleted)

    def as_dict(self) -> dict:
        d = asdict(self)
        for k in ("started_at", "ended_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class _Batch:
    """Temp tables of one job run, named uniquely so parallel jobs in one process never clash."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self.tag = uuid.uuid4().hex[:10]
        self.tables: list[str] = []
        self.current: dict[str, str] = {}
        self.may_repeat = False  # two rows may stand for one record (set by identify)
        self.filtered = 0  # rows the job's filter removed (counted, never staged)
        self.aggregated = 0  # rows folded into another row of their group by an aggregation
        self.flags_deletes = False  # the load's raw table has the readers' delete flag (DELETED_COLUMN)
        self.deleted = 0  # rows the source reported deleted (split off before preparation, never validated)
        self.deletes: Optional[str] = None  # temp table of the delete rows (_rid, identifiers) a policy applies
        self.full_merge = None  # (load id, raw table, header, file) of a full merge's dataset
        self.lookup_default: dict[int, str] = {}  # lookup index -> SQL of its usable default GSID
        self.defaults: list[tuple[str, object]] = []  # (batch column, mapping) of mappings with a default
        self.retry: Optional[Retry] = None  # only the waiting lines it selects are applied

    def t(self, name: str) -> str:
        full = self.current.get(name, f"{name}_{self.tag}")
        if full not in self.tables:
            self.tables.append(full)
        return full

    def rebuild(self, name: str, select_sql: str, params=None) -> str:
        """Replace table `name` by `select_sql` (which reads the old one as {old}): one vectorised
        pass instead of row-wise UPDATEs over the whole batch."""
        old = self.t(name)
        new = f"{name}{len(self.tables)}_{self.tag}"
        self.sql(f"CREATE TEMP TABLE {new} AS " + select_sql.format(old=old), params)
        self.sql(f"DROP TABLE {old}")
        self.current[name] = new
        return self.t(name)

    def sql(self, stmt: str, params=None):
        return self.con.execute(stmt, params or [])

    def drop(self) -> None:
        for t in self.tables:
            try:
                self.con.execute(f"DROP TABLE IF EXISTS {t}")
            except duckdb.TransactionException:
                return  # the statement that failed aborted the transaction; its rollback drops them


def apply_load(
    con: duckdb.DuckDBPyConnection,
    *,
    model: DataModel,
    job: Job,
    load: LoadRef,
    dagster_run_id: str = "",
    actor: str = "gsdp",
    retry: Optional[Retry] = None,
) -> JobRunResult:
    """Apply one landed load through one job. Call inside a transaction; writes run log + rejects.

    With `retry`, only the load's lines waiting for a lookup (lookup_retry) that it selects are
    applied, as a run of their own."""
    obj = model.objects[job.destination]
    started = _now()
    res = JobRunResult(job_run_id=str(uuid.uuid4()), job=job.name, destination=obj.name,
                       load_id=load.load_id, source_file=load.source_file, status=SUCCESS,
                       started_at=started, retry_of=retry.retry_of if retry else None)
    b = _Batch(con)
    b.retry = retry
    try:
        _split_deletes(b, obj, job, load)
        _stage(b, model, obj, job, load)
        _self_lookups(b, model, obj, job)
        _validate(b, obj, job)
        _reject_dangling_self_lookups(b, job)
        _dedupe(b, job)
        if retry is not None and job.operation != Operation.INSERT and job.identifiers:
            _superseded_by_later_loads(b, obj)
        _superseded_by_deletes(b, obj, job)
        _count_and_write(b, obj, job, res, load, dagster_run_id, actor)
    finally:
        b.drop()
    return res


# --- stage: map, convert, direct lookups and identify in one pass ------------------------------

def _targets(job: Job) -> list[str]:
    return [m.target for m in job.mappings] + [lk.target for lk in job.lookups]


def _split_deletes(b: _Batch, obj: ObjectDef, job: Job, load: LoadRef) -> None:
    """Rows a record reader flagged as deleted in the source (raw column DELETED_COLUMN = 'true')
    leave the batch before preparation: they carry only the source's key columns, so they are
    never validated or rejected as records. All of them are counted (`deleted`); for policy delete
    or mark their identifiers, mapped and converted like a record's, go to a table of their own.
    A retry only applies lines that wait for a lookup: never a delete."""
    b.flags_deletes = DELETED_COLUMN not in load.header and _has_column(b.con, load.raw_table, DELETED_COLUMN)
    if not b.flags_deletes or b.retry is not None:
        return
    raw = f"(SELECT * FROM {raw_rows_sql(b.con, load.raw_table, load.load_id)} WHERE {DELETED_COLUMN} = 'true')"
    if job.deletes.policy == DeletePolicy.IGNORE or not job.identifiers:
        b.deleted = b.sql(f"SELECT count(*) FROM {raw}").fetchone()[0]
        return
    mappings = {m.target: m for m in job.mappings}
    values = []
    for t in job.identifiers:
        m = mappings[t]  # the loader allows delete and mark only with identifiers mapped from the source
        clean = load.virtual(m.source) if m.source in VIRTUAL_COLUMNS else None
        value, _failed = mapped_value(obj.fields[t], job.source.value_formats, m.source, m.constant, m.default,
                                      clean=clean)
        values.append(f"{value} AS {ident(t)}")
    b.deletes = b.t("deletes")
    b.sql(f"CREATE TEMP TABLE {b.deletes} AS SELECT _line AS _rid, {', '.join(values)} FROM {raw}")
    b.deleted = b.sql(f"SELECT count(*) FROM {b.deletes}").fetchone()[0]


def _has_column(con, raw_table: str, column: str) -> bool:
    schema, _, name = raw_table.partition(".")
    return con.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
                       "AND column_name = ?", [schema, name.strip('"').replace('""', '"'), column]).fetchone()[0] > 0


def _stage(b: _Batch, model: DataModel, obj: ObjectDef, job: Job, load: LoadRef) -> None:
    """Build the batch in one statement: raw rows -> mapped and converted values -> GSIDs from
    direct lookups -> the stored record each row identifies (or a new GSID).

    Each of these steps used to materialise the whole batch again; fused, DuckDB streams the raw
    rows through the joins once. The small tables they join (lookup candidates, stored keys) are
    built first. Reasons are derived from the batch afterwards, in the order the steps apply."""
    st, reasons = b.t("st"), b.t("reasons")
    raw = raw_rows_sql(b.con, load.raw_table, load.load_id)
    if b.flags_deletes:  # rows the source reported deleted are no records (see _split_deletes)
        raw = f"(SELECT * EXCLUDE ({DELETED_COLUMN}) FROM {raw} WHERE {DELETED_COLUMN} IS DISTINCT FROM 'true')"
    # Dataset preparation: merges, derived fields (as text, converted like file columns), the filter.
    raw, passes, columns = _merged(b, job, raw, load.header)
    derived = [(d.name, d.expression) for d in job.prepare.derived]
    if derived:
        raw = f"({prepared_select(raw, derived, columns)})"
    if job.prepare.filter:
        passes.append(f"coalesce(CAST({check_expression(job.prepare.filter).sql} AS BOOLEAN), false)")
    passes = " AND ".join(passes) or "true"
    if b.retry is not None:
        # A retry reads the prepared rows of the lines that wait (a group's line, after an aggregation).
        lines = b.t("retry")
        ledger.copy_waiting_lines(b.con, lines, load.load_id, b.retry.where, b.retry.params)
        if job.prepare.aggregate is None:
            raw = f"(SELECT * FROM {raw} WHERE _line IN (SELECT line_number FROM {lines}))"
    if passes != "true" and not (b.retry is not None and job.prepare.aggregate is not None):
        b.filtered = b.sql(f"SELECT count(*) FROM {raw} WHERE _parse_error IS NULL AND NOT ({passes})").fetchone()[0]
    if job.prepare.aggregate is not None:
        raw = _aggregated(job.prepare.aggregate, raw, passes)
        passes = "true"
        if b.retry is not None:
            raw = f"(SELECT * FROM {raw} WHERE _line IN (SELECT line_number FROM {b.t('retry')}))"
        b.aggregated = b.sql(f"SELECT coalesce(sum(_group_rows) - count(*), 0) FROM {raw} "
                             f"WHERE _parse_error IS NULL").fetchone()[0]
    mapped = ["_line AS _rid", "_parse_error", "_raw_text"]  # a row's id is its file line
    checked: list[str] = []  # targets whose non-empty source value must convert (no default)
    for m in job.mappings:
        f = obj.fields[m.target]
        clean = load.virtual(m.source) if m.source in VIRTUAL_COLUMNS else None
        value, _failed = mapped_value(f, job.source.value_formats, m.source, m.constant, m.default, clean=clean)
        mapped.append(f"{value} AS {ident(m.target)}")
        dv = defaulted_expr(f, job.source.value_formats, m.source, m.constant, m.default, clean=clean)
        if dv is not None:  # which rows the default replaced, and their value as sent
            b.defaults.append((f"_dv{len(b.defaults)}", m))
            mapped.append(f"{dv} AS {b.defaults[-1][0]}")
        if m.source is not None and m.default is None:
            mapped.append(f"{clean or clean_expr(m.source)} AS {ident('_sv_' + m.target)}")
            checked.append(m.target)
    for i, lk in enumerate(job.lookups):
        mapped.append(f"CAST(NULL AS VARCHAR) AS {ident(lk.target)}")
        for j, mf in enumerate(lk.match):
            mapped.append(f"{clean_expr(mf.source)} AS _lk{i}_{j}")

    # Direct lookups: the GSID of the matching record, and the match count for the reasons.
    replace, extra, joins = [], [], []
    for i, lk in enumerate(job.lookups):
        if lk.object == obj.name:
            extra.append(f"CAST(NULL AS BIGINT) AS _lkn{i}")  # self lookups run after identify
            continue
        cand, on, value = _lookup_join(b, model, obj, lk, i, alias=f"c{i}", row="m")
        joins.append(f"LEFT JOIN {cand} c{i} ON {on}")
        replace.append(f"{value} AS {ident(lk.target)}")
        extra.append(f"c{i}.n AS _lkn{i}")
    bad = [f"CASE WHEN m._parse_error IS NULL AND m.{ident('_sv_' + t)} IS NOT NULL AND m.{ident(t)} IS NULL "
           f"THEN {q(t)} END" for t in checked]
    extra.append(f"NULLIF(concat_ws(',', {', '.join(bad)}), '') AS _type_bad" if bad else "CAST(NULL AS VARCHAR) AS _type_bad")
    looked_up = (f"SELECT m.* EXCLUDE ({', '.join(ident('_sv_' + t) for t in checked)})"
                 if checked else "SELECT m.*")
    if replace:
        looked_up += f" REPLACE ({', '.join(replace)})"
    looked_up += f", {', '.join(extra)} FROM m {' '.join(joins)}"

    ok = "l._parse_error IS NULL"
    if job.operation == Operation.INSERT or not job.identifiers:
        # Every row is a new record.
        final = (f"SELECT l.*, CASE WHEN {ok} THEN uuid()::VARCHAR END AS _gsid, false AS _exists, "
                 f"CAST(NULL AS BIGINT) AS _n_existing FROM l")
    else:
        ids = job.identifiers
        ex = b.t("existing")
        # Stored records by identifier; more than one is ambiguous (rejected below).
        b.sql(f"CREATE TEMP TABLE {ex} AS SELECT {', '.join(ident(i) for i in ids)}, any_value(gsid) AS gsid, "
              f"count(*) AS n FROM {obj.table} WHERE {' AND '.join(f'{ident(i)} IS NOT NULL' for i in ids)} GROUP BY ALL")
        on = " AND ".join(f"l.{ident(i)} = e.{ident(i)}" for i in ids)
        have = " AND ".join(f"l.{ident(i)} IS NOT NULL" for i in ids)
        # Required fields need the stored value before validation (an empty cell must not fail them);
        # other fields keep their stored value in the write itself (see _count_and_write).
        keep = [t for t in _targets(job) if t not in ids and t != "gsid" and obj.fields[t].required] \
            if not job.null_overwrites else []
        kept = f" REPLACE ({', '.join(f'coalesce(l.{ident(t)}, o.{ident(t)}) AS {ident(t)}' for t in keep)})" if keep else ""
        new_gsid = "uuid()::VARCHAR" if job.operation == Operation.UPSERT else "NULL"
        final = (f"SELECT l.*{kept}, coalesce(e.gsid, CASE WHEN {ok} AND {have} THEN {new_gsid} END) AS _gsid, "
                 f"e.gsid IS NOT NULL AS _exists, e.n AS _n_existing FROM l LEFT JOIN {ex} e ON {on} AND {ok}"
                 + (f" LEFT JOIN {obj.table} o ON o.gsid = e.gsid" if keep else ""))
    # Match keys of direct lookups are only needed by the joins above; reasons read them back.
    direct_keys = [f"_lk{i}_{j}" for i, lk in enumerate(job.lookups) if lk.object != obj.name for j in range(len(lk.match))]
    if direct_keys:
        final = final.replace("SELECT l.*", f"SELECT l.* EXCLUDE ({', '.join(direct_keys)})", 1)
    b.sql(f"CREATE TEMP TABLE {st} AS WITH m AS (SELECT {', '.join(mapped)} FROM {raw} "
          f"WHERE _parse_error IS NOT NULL OR ({passes})), "
          f"l AS ({looked_up}) {final}")

    # Reasons, in the order the steps apply.
    b.sql(f"CREATE TEMP TABLE {reasons} (rid BIGINT, field VARCHAR, rule VARCHAR, value VARCHAR, message VARCHAR)")
    b.sql(f"INSERT INTO {reasons} SELECT _rid, NULL, 'malformed_row', left(_raw_text, 1000), "
          f"'row could not be parsed: ' || _parse_error FROM {st} WHERE _parse_error IS NOT NULL")
    _type_reasons(b, obj, job, load, raw)
    for i, lk in enumerate(job.lookups):
        if lk.object != obj.name:
            keys = ", ".join(f"{clean_expr(mf.source)} AS _lk{i}_{j}" for j, mf in enumerate(lk.match))
            _lookup_reasons(b, lk, i, is_self=False, keys=f"(SELECT _line, {keys} FROM {raw})")
    _identify_reasons(b, obj, job)


def _aggregated(agg, raw: str, passes: str) -> str:
    """One row per group (its line: the group's first), measures as text like file columns;
    malformed rows pass through unchanged so they are still rejected with their lines."""
    groups = ", ".join(ident(g) for g in agg.group_by)

    def measure(m) -> str:
        c = ident(m.column) if m.column else None
        num = f"TRY_CAST({clean_expr(m.column)} AS DOUBLE)" if m.column else None
        if m.function == "count":
            e = f"count({c})" if c else "count(*)"
        elif m.function == "count_distinct":
            e = f"count(DISTINCT {clean_expr(m.column)})"
        elif m.function in ("sum", "avg"):
            e = f"{m.function}({num})"
        else:  # min / max: numeric when every value is a number, else as text (ISO dates sort right)
            e = (f"CASE WHEN count({num}) = count({clean_expr(m.column)}) THEN CAST({m.function}({num}) AS VARCHAR) "
                 f"ELSE {m.function}({clean_expr(m.column)}) END")
        return f"CAST({e} AS VARCHAR) AS {ident(m.name)}"

    measures = "".join(", " + measure(m) for m in agg.measures)
    return (f"(SELECT min(_line) AS _line, CAST(NULL AS VARCHAR) AS _parse_error, CAST(NULL AS VARCHAR) AS _raw_text, "
            f"{groups}{measures}, count(*) AS _group_rows FROM {raw} WHERE _parse_error IS NULL AND ({passes}) "
            f"GROUP BY {groups} "
            f"UNION ALL BY NAME SELECT _line, _parse_error, _raw_text, 1 AS _group_rows FROM {raw} "
            f"WHERE _parse_error IS NOT NULL)")


def _merged(b: _Batch, job: Job, raw: str, header: list[str]) -> tuple[str, list[str], list[str]]:
    """Join each merged dataset (its latest loaded file, last row per key) onto the raw rows.
    Returns the new row source, the conditions a row must meet (inner merges), and its columns."""
    columns, passes = list(header), []
    for i, mg in enumerate(job.prepare.merge):
        row = ledger.latest_load(b.con, job.connection, mg.dataset)
        if row is None:
            raise RuntimeError(f"job {job.name!r} merges dataset {mg.dataset!r}, but no file of it has been loaded yet; "
                               f"load one (the job's load stays pending and is applied after)")
        load_id, table, other_header, other_file = row.load_id, row.raw_table, row.header, row.source_file
        missing = [c for c in [k.right for k in mg.keys] + mg.columns if c not in other_header]
        if missing:
            raise RuntimeError(f"job {job.name!r} merges dataset {mg.dataset!r}, whose latest file {other_file} lacks "
                               f"column(s) {missing}; its header is {other_header}")
        keys = ", ".join(f"{clean_expr(k.right)} AS _mk{j}" for j, k in enumerate(mg.keys))
        added = [mg.prefix + c for c in mg.columns]
        cols = ", ".join(f"{ident(c)} AS {ident(a)}" for c, a in zip(mg.columns, added))
        part = ", ".join(f"_mk{j}" for j in range(len(mg.keys)))
        right = (f"(SELECT {keys}, {cols}, true AS _matched FROM {raw_rows_sql(b.con, table, load_id)} "
                 f"WHERE _parse_error IS NULL QUALIFY row_number() OVER (PARTITION BY {part} ORDER BY _line DESC) = 1)")
        on = " AND ".join(f"{clean_expr(k.left).replace(ident(k.left), 'l.' + ident(k.left))} = r._mk{j}"
                          for j, k in enumerate(mg.keys))
        clash = [c for c in columns if c.lower() in {a.lower() for a in added}]
        flag = f"_merge{i}"
        if mg.how == "full":
            # Rows only in the dataset join too: their id is minus their line in its file, and the
            # left key columns take the dataset's key values (so identifiers and lookups see them).
            lefts = [k.left for k in mg.keys]
            drop = ["_line", *dict.fromkeys(lefts), *[c for c in clash if c not in lefts]]
            keep = f"l.* EXCLUDE ({', '.join(ident(c) for c in drop)})"
            keys_back = ", ".join(f"coalesce(l.{ident(k.left)}, r._mk{j}) AS {ident(k.left)}"
                                  for j, k in enumerate(mg.keys) if k.left not in lefts[:j])
            right = right.replace("true AS _matched", "true AS _matched, _line AS _rline")
            raw = (f"(SELECT coalesce(l._line, -r._rline) AS _line, {keep}, {keys_back}, "
                   f"{', '.join(f'r.{ident(a)}' for a in added)}, coalesce(r._matched, false) AS {flag} "
                   f"FROM {raw} l FULL JOIN {right} r ON {on})")
            b.full_merge = (load_id, table, other_header, other_file)
        else:
            keep = f"l.* EXCLUDE ({', '.join(ident(c) for c in clash)})" if clash else "l.*"
            raw = (f"(SELECT {keep}, {', '.join(f'r.{ident(a)}' for a in added)}, coalesce(r._matched, false) AS {flag} "
                   f"FROM {raw} l LEFT JOIN {right} r ON {on})")
        columns = [c for c in columns if c not in clash] + added
        if mg.how == "inner":
            passes.append(flag)
    return raw, passes, columns


def _type_reasons(b: _Batch, obj: ObjectDef, job: Job, load: LoadRef, raw: str) -> None:
    """Values that did not convert, with the value as sent (read back from the raw rows, which
    only happens for the fields that had any)."""
    st, reasons = b.t("st"), b.t("reasons")
    failing = {r[0] for r in b.sql(f"SELECT DISTINCT unnest(string_split(_type_bad, ',')) FROM {st} "
                                   f"WHERE _type_bad IS NOT NULL").fetchall()}
    for m in job.mappings:
        if m.target not in failing:
            continue
        f = obj.fields[m.target]
        value = load.virtual(m.source) if m.source in VIRTUAL_COLUMNS else clean_expr(m.source)
        msg = f"{m.source!r}: {type_error_message(f, job.source.value_formats)}"
        b.sql(f"INSERT INTO {reasons} SELECT s._rid, {q(m.target)}, 'type', r.v, {q(msg)} FROM {st} s "
              f"JOIN (SELECT _line, {value} AS v FROM {raw}) r ON r._line = s._rid "
              f"WHERE s._type_bad IS NOT NULL AND list_contains(string_split(s._type_bad, ','), {q(m.target)})")


# --- lookups ------------------------------------------------------------------------------------

def _lookup_join(b: _Batch, model: DataModel, obj: ObjectDef, lk, i: int, *, alias: str, row: str):
    """Candidate table for lookup `i` (match keys -> GSID, count), its join condition against the
    batch row alias `row`, and the expression for the GSID it writes."""
    st, reasons = b.t("st"), b.t("reasons")
    is_self = lk.object == obj.name
    target = model.objects[lk.object]
    n = len(lk.match)

    def key(expr: str, fname: str) -> str:
        e = f"CAST({expr} AS VARCHAR)"
        if target.fields[fname].type == FieldType.EMAIL or lk.case_insensitive:
            e = f"lower({e})"
        return e

    # Match keys as stored; for a self lookup the batch rows carry the same (mapped) fields.
    stored = ", ".join(f"{key(ident(mf.field), mf.field)} AS m{j}" for j, mf in enumerate(lk.match))
    if is_self:
        cand_src = (f"SELECT {stored}, gsid FROM {target.table} WHERE gsid NOT IN "
                    f"(SELECT _gsid FROM {st} WHERE _gsid IS NOT NULL) "
                    f"UNION ALL SELECT {stored}, _gsid AS gsid FROM {st} "
                    f"WHERE _gsid IS NOT NULL AND _rid NOT IN (SELECT rid FROM {reasons})")
    else:
        cand_src = f"SELECT {stored}, gsid FROM {target.table}"
    cand = b.t(f"lkc{i}")
    not_null = " AND ".join(f"m{j} IS NOT NULL" for j in range(n))
    b.sql(f"CREATE TEMP TABLE {cand} AS SELECT {', '.join(f'm{j}' for j in range(n))}, "
          f"min(gsid) AS gsid, count(DISTINCT gsid) AS n FROM ({cand_src}) WHERE {not_null} GROUP BY ALL")
    on = " AND ".join(f"{key(f'{row}._lk{i}_{j}', mf.field)} = {alias}.m{j}" for j, mf in enumerate(lk.match))
    default = "NULL"
    if lk.on_none == OnNone.DEFAULT:
        exists = b.sql(f"SELECT count(*) FROM {target.table} WHERE gsid = ?", [lk.default]).fetchone()[0]
        default = q(lk.default) if exists else "NULL"
    b.lookup_default[i] = default
    multi_ok = "true" if lk.on_multiple == OnMultiple.ANY else f"{alias}.n = 1"
    return cand, on, f"CASE WHEN {alias}.n IS NULL THEN {default} WHEN {multi_ok} THEN {alias}.gsid END"


def _self_lookups(b: _Batch, model: DataModel, obj: ObjectDef, job: Job) -> None:
    """Self lookups match stored records and rows of this batch, so they run once GSIDs exist."""
    for i, lk in enumerate(job.lookups):
        if lk.object != obj.name:
            continue
        cand, on, value = _lookup_join(b, model, obj, lk, i, alias="c", row="s")
        b.rebuild("st", f"SELECT s.* REPLACE ({value} AS {ident(lk.target)}, c.n AS _lkn{i}) "
                        f"FROM {{old}} s LEFT JOIN {cand} c ON {on}")
        _lookup_reasons(b, lk, i, is_self=True, keys=None)


def _lookup_reasons(b: _Batch, lk, i: int, *, is_self: bool, keys: Optional[str]) -> None:
    """Rows whose lookup failed, with the values they tried to match. `keys` is a subquery giving
    those values by line when the batch does not carry them (direct lookups); it is only read
    when some row failed."""
    st, reasons = b.t("st"), b.t("reasons")
    n = len(lk.match)
    shown = " || ', ' || ".join(
        f"{q(mf.field + '=')} || coalesce(k._lk{i}_{j}, '(empty)')" for j, mf in enumerate(lk.match))
    all_null = " AND ".join(f"k._lk{i}_{j} IS NULL" for j in range(n))
    desc = f"{lk.object}" + (" (same batch included)" if is_self else "")
    no_match = lk.on_none in (OnNone.ERROR, OnNone.DEFAULT)
    multi = lk.on_multiple == OnMultiple.ERROR
    failed = " OR ".join(c for c, on in ((f"s._lkn{i} IS NULL", no_match), (f"s._lkn{i} > 1", multi)) if on)
    if not failed:
        return
    if keys is not None:
        if not b.sql(f"SELECT count(*) FROM {st} s WHERE s._parse_error IS NULL AND ({failed})").fetchone()[0]:
            return
        rows = f"FROM {st} s JOIN {keys} k ON k._line = s._rid WHERE s._parse_error IS NULL"
    else:
        rows = f"FROM {st} s WHERE s._parse_error IS NULL"  # self lookups keep their keys in the batch
        shown, all_null = shown.replace("k._lk", "s._lk"), all_null.replace("k._lk", "s._lk")
    if lk.on_none == OnNone.ERROR:
        b.sql(f"INSERT INTO {reasons} SELECT s._rid, {q(lk.target)}, 'lookup_no_match', {shown}, "
              f"'no ' || {q(desc)} || ' record matches ' || {shown} {rows} AND s._lkn{i} IS NULL AND NOT ({all_null})")
    if multi:
        b.sql(f"INSERT INTO {reasons} SELECT s._rid, {q(lk.target)}, 'lookup_multiple_matches', {shown}, "
              f"s._lkn{i} || ' ' || {q(desc)} || ' records match ' || {shown} || '; the job marks this as an error' "
              f"{rows} AND s._lkn{i} > 1")
    if lk.on_none == OnNone.DEFAULT and b.lookup_default.get(i) == "NULL":
        b.sql(f"INSERT INTO {reasons} SELECT s._rid, {q(lk.target)}, 'lookup_default_missing', {q(lk.default)}, "
              f"'no match, and the default GSID ' || {q(lk.default)} || ' does not exist in {lk.object}' "
              f"{rows} AND s._lkn{i} IS NULL")


# --- identify: reasons and GSIDs shared by the rows of one new record ---------------------------

def _identify_reasons(b: _Batch, obj: ObjectDef, job: Job) -> None:
    """Rows whose identifiers are empty, ambiguous or (for update) match nothing are rejected.
    Several rows for one new record share one GSID. Sets `b.may_repeat` when any two rows have
    the same identifiers (only then can a row be superseded)."""
    st, reasons = b.t("st"), b.t("reasons")
    b.may_repeat = False
    if job.operation == Operation.INSERT or not job.identifiers:
        return  # every row is a new record with its own GSID
    ok = "_parse_error IS NULL"
    ids = job.identifiers
    for i in ids:
        # (a lookup that found nothing already said why the identifier is empty)
        b.sql(f"INSERT INTO {reasons} SELECT _rid, {q(i)}, 'identifier_missing', NULL, "
              f"{q(f'identifier field {i!r} is empty; a row needs every identifier to be matched')} "
              f"FROM {st} WHERE {ok} AND {ident(i)} IS NULL "
              f"AND _rid NOT IN (SELECT rid FROM {reasons} WHERE field = {q(i)})")
    ids_sql = ", ".join(ident(i) for i in ids)
    have = " AND ".join(f"s.{ident(i)} IS NOT NULL" for i in ids)
    on = " AND ".join(f"s.{ident(i)} = e.{ident(i)}" for i in ids)
    shown = " || ', ' || ".join(f"{q(i + '=')} || CAST(s.{ident(i)} AS VARCHAR)" for i in ids)
    b.sql(f"INSERT INTO {reasons} SELECT s._rid, NULL, 'identifier_ambiguous', {shown}, "
          f"s._n_existing || ' existing {obj.name} records share ' || {shown} || '; fix the duplicates or choose other identifiers' "
          f"FROM {st} s WHERE s._n_existing > 1")
    if job.operation == Operation.UPDATE:
        b.sql(f"INSERT INTO {reasons} SELECT s._rid, NULL, 'no_match_for_update', {shown}, "
              f"'no existing {obj.name} record has ' || {shown} || '; update only changes existing records' "
              f"FROM {st} s WHERE s.{ok} AND NOT s._exists AND {have}")
    # One distinct count of a hash tells whether any identifiers may repeat (equal identifiers
    # have equal hashes; a collision only costs the exact path below). Usually none do.
    repeats = b.sql(f"SELECT count(*) - count(DISTINCT hash({ids_sql})) FROM {st} s WHERE _gsid IS NOT NULL").fetchone()[0]
    b.may_repeat = bool(repeats)
    if repeats and job.operation == Operation.UPSERT:  # rows of one new record share its smallest new GSID
        b.sql(f"UPDATE {st} AS s SET _gsid = e.gsid FROM (SELECT {ids_sql}, min(_gsid) AS gsid FROM {st} "
              f"WHERE NOT _exists AND _gsid IS NOT NULL GROUP BY ALL) e WHERE {on} AND NOT s._exists AND s._gsid IS NOT NULL")


# --- validate -----------------------------------------------------------------------------------

def _validate(b: _Batch, obj: ObjectDef, job: Job) -> None:
    """The object's pandera schema over the mapped batch: compiled to one SQL scan, with checks
    that have no SQL form run by pandera itself on bounded chunks (lazy: every failure is kept)."""
    st, reasons = b.t("st"), b.t("reasons")
    targets = [t for t in _targets(job) if t != "gsid"]
    compiled, fallback = compile_schema(schema_for(obj), targets)
    found = b.t("found")
    b.sql(f"CREATE TEMP TABLE {found} (rid BIGINT, field VARCHAR, rule VARCHAR, value VARCHAR, message VARCHAR)")
    if compiled:
        b.sql(f"INSERT INTO {found} {failures_select(compiled, st, '_parse_error IS NULL')}")
    lo_id, n = (b.sql(f"SELECT coalesce(min(_rid), 0) - 1, coalesce(max(_rid), 0) FROM {st}").fetchone()
                if fallback else (0, 0))
    for col in fallback:
        for lo in range(lo_id, n, PANDERA_CHUNK):
            frame = b.sql(f"SELECT _rid, {ident(col)} FROM {st} WHERE _parse_error IS NULL AND {ident(col)} IS NOT NULL "
                          f"AND _rid > ? AND _rid <= ?", [lo, lo + PANDERA_CHUNK]).df().set_index("_rid")
            fails = validation_failures(obj, frame, [col])
            if len(fails):
                b.con.register(f"pf_{b.tag}", fails)
                b.sql(f"INSERT INTO {found} SELECT row_id, field, rule, value, message FROM pf_{b.tag}")
                b.con.unregister(f"pf_{b.tag}")
    # A value that failed conversion or lookup is also empty; say so once, not twice.
    b.sql(f"INSERT INTO {reasons} SELECT p.rid, p.field, p.rule, p.value, p.message FROM {found} p "
          f"WHERE NOT (p.rule = 'required' AND EXISTS (SELECT 1 FROM {reasons} r WHERE r.rid = p.rid "
          f"AND r.field = p.field))")


def _reject_dangling_self_lookups(b: _Batch, job: Job) -> None:
    """A self lookup may only point at a stored record or a batch row that is itself loaded."""
    st, reasons = b.t("st"), b.t("reasons")
    selfs = [lk for lk in job.lookups if lk.object == job.destination]
    for _ in range(100):
        added = 0
        for lk in selfs:
            t = ident(lk.target)
            n = b.sql(
                f"INSERT INTO {reasons} SELECT s._rid, {q(lk.target)}, 'lookup_target_rejected', s.{t}, "
                f"'the matching record in this file (line ' || p._rid || ') was rejected' "
                f"FROM {st} s JOIN {st} p ON p._gsid = s.{t} "
                f"WHERE s._rid NOT IN (SELECT rid FROM {reasons}) AND NOT p._exists "
                f"AND p._gsid NOT IN (SELECT _gsid FROM {st} WHERE _gsid IS NOT NULL AND _rid NOT IN (SELECT rid FROM {reasons}))"
            ).fetchone()
            added += n[0] if n else 0
        if not added:
            return


# --- dedupe, count, write -------------------------------------------------------------------------

def _dedupe(b: _Batch, job: Job) -> None:
    """Mark rejected rows, then keep the last row per record (GSID); earlier ones are superseded."""
    st, reasons = b.t("st"), b.t("reasons")
    b.sql(f"ALTER TABLE {st} ADD COLUMN _ok BOOLEAN DEFAULT true")
    b.sql(f"UPDATE {st} SET _ok = false WHERE _rid IN (SELECT DISTINCT rid FROM {reasons})")
    b.sql(f"ALTER TABLE {st} ADD COLUMN _winner BOOLEAN DEFAULT true")
    if b.may_repeat:
        b.sql(f"UPDATE {st} SET _winner = false WHERE _rid IN (SELECT _rid FROM {st} WHERE _ok "
              f"QUALIFY row_number() OVER (PARTITION BY _gsid ORDER BY _rid DESC) > 1)")


def _superseded_by_later_loads(b: _Batch, obj: ObjectDef) -> None:
    """A retried row whose record was written after the row was first rejected (by a newer load)
    is older than what is stored: it is superseded, not applied over the newer values."""
    st, lines = b.t("st"), b.t("retry")
    b.sql(f"UPDATE {st} SET _winner = false WHERE _ok AND _winner AND _exists AND _rid IN (SELECT s._rid FROM {st} s "
          f"JOIN {lines} t ON t.line_number = s._rid JOIN {obj.table} o ON o.gsid = s._gsid "
          f"WHERE o.modified_at > t.first_rejected_at)")


def _superseded_by_deletes(b: _Batch, obj: ObjectDef, job: Job) -> None:
    """Rows and deletes of one record apply in row order (the last wins, like superseded rows): a
    record row before a later delete row of its identifiers is superseded by it; a delete row
    before a later record row is overridden by that row (the record stays, or is created again).
    Leaves b.deletes holding the last delete row per identifiers that no later row overrides."""
    if b.deletes is None:
        return
    st, dl, ids = b.t("st"), b.deletes, job.identifiers
    on = " AND ".join(f"s.{ident(i)} = d.{ident(i)}" for i in ids)
    last = b.t("deletes_last")
    b.sql(f"CREATE TEMP TABLE {last} AS SELECT {', '.join(ident(i) for i in ids)}, max(_rid) AS _rid FROM {dl} "
          f"WHERE {' AND '.join(f'{ident(i)} IS NOT NULL' for i in ids)} GROUP BY ALL")
    b.sql(f"ALTER TABLE {st} ADD COLUMN _deleted_by BIGINT")
    b.sql(f"UPDATE {st} AS s SET _winner = false, _deleted_by = d._rid FROM {last} d WHERE s._ok AND {on} AND d._rid > s._rid")
    b.deletes = b.t("deletes_applied")
    b.sql(f"CREATE TEMP TABLE {b.deletes} AS SELECT * FROM {last} d "
          f"WHERE NOT EXISTS (SELECT 1 FROM {st} s WHERE s._ok AND {on} AND s._rid > d._rid)")
    if job.deletes.policy == DeletePolicy.DELETE:
        _reject_lookups_to_deleted(b, obj, job)


def _reject_lookups_to_deleted(b: _Batch, obj: ObjectDef, job: Job) -> None:
    """A self lookup must not write the GSID of a record this run deletes (a stored record a delete
    row matches, or a record of the batch whose rows a delete superseded): such rows are rejected,
    and so, in turn, are rows pointing at new records rejected that way (invariant 4)."""
    selfs = [lk for lk in job.lookups if lk.object == obj.name]
    if not selfs:
        return
    st, reasons, dl = b.t("st"), b.t("reasons"), b.deletes
    on = " AND ".join(f"o.{ident(i)} = d.{ident(i)}" for i in job.identifiers)
    gone = (f"(SELECT o.gsid FROM {obj.table} o JOIN {dl} d ON {on} UNION ALL SELECT _gsid FROM {st} "
            f"WHERE NOT _exists AND _gsid IS NOT NULL AND _gsid NOT IN "
            f"(SELECT _gsid FROM {st} WHERE _ok AND _winner AND _gsid IS NOT NULL))")
    for _ in range(100):
        added = 0
        for lk in selfs:
            t = ident(lk.target)
            n = b.sql(f"INSERT INTO {reasons} SELECT _rid, {q(lk.target)}, 'lookup_target_deleted', {t}, "
                      f"'the matching record is deleted by this run (a delete the source reported)' FROM {st} "
                      f"WHERE _ok AND _winner AND {t} IN {gone}").fetchone()
            added += n[0] if n else 0
            b.sql(f"UPDATE {st} SET _ok = false WHERE _ok AND _rid IN (SELECT rid FROM {reasons})")
        if not added:
            return


def _apply_deletes(b: _Batch, obj: ObjectDef, job: Job, now: datetime, actor: str) -> int:
    """Remove or mark the stored records the delete rows match; returns how many delete rows matched."""
    if b.deletes is None:
        return 0
    on = " AND ".join(f"o.{ident(i)} = d.{ident(i)}" for i in job.identifiers)
    matched = b.sql(f"SELECT count(*) FROM {b.deletes} d WHERE EXISTS (SELECT 1 FROM {obj.table} o WHERE {on})").fetchone()[0]
    if job.deletes.policy == DeletePolicy.DELETE:
        b.sql(f"DELETE FROM {obj.table} AS o USING {b.deletes} d WHERE {on}")
    elif job.deletes.policy == DeletePolicy.MARK:
        f = obj.fields[job.deletes.field]
        value = literal_expr(job.deletes.value, f, job.source.value_formats)
        b.sql(f"UPDATE {obj.table} AS o SET {ident(f.name)} = {value}, modified_at = ?, modified_by = ? "
              f"FROM {b.deletes} d WHERE {on} AND o.{ident(f.name)} IS DISTINCT FROM {value}", [now, actor])
    return matched


def _count_and_write(b: _Batch, obj: ObjectDef, job: Job, res: JobRunResult, load: LoadRef,
                     run_id: str, actor: str) -> None:
    st, reasons = b.t("st"), b.t("reasons")
    data = [t for t in _targets(job) if t != "gsid"]
    dflt = "".join(f", count({c}) FILTER (WHERE _ok AND _winner)" for c, _m in b.defaults)
    counts = b.sql(f"SELECT count(*), count(*) FILTER (WHERE NOT _ok), count(*) FILTER (WHERE _ok AND NOT _winner), "
                   f"count(*) FILTER (WHERE _ok AND _winner AND NOT _exists){dflt} FROM {st}").fetchone()
    res.rows_read, res.rejected, res.superseded, res.inserted = counts[:4]
    defaulted = dict(zip((c for c, _m in b.defaults), counts[4:]))
    res.filtered, res.aggregated, res.deleted = b.filtered, b.aggregated, b.deleted
    res.rows_read += res.filtered + res.aggregated + res.deleted
    for rule, n in b.sql(f"SELECT rule, count(*) FROM {reasons} GROUP BY rule ORDER BY rule").fetchall():
        res.reasons_by_rule[rule] = n

    considered = res.rows_read - res.filtered - res.aggregated - res.deleted  # a share of the rows the job maps
    over = (job.reject_threshold_percent is not None and considered > 0
            and b.retry is None  # a retry's rows are part of a file that passed the threshold
            and 100.0 * res.rejected / considered > job.reject_threshold_percent)
    now = _now()
    if over:
        res.status = FAILED
        res.error = (f"{res.rejected} of {res.rows_read} rows rejected, above the job's threshold of "
                     f"{job.reject_threshold_percent:g}%; no records were written")
        res.inserted = res.updated = res.unchanged = res.superseded = 0  # and nothing was defaulted
        res.rejected = considered  # every staged row is not loaded (and no delete is applied)
    else:
        cols = ", ".join(ident(t) for t in data)
        if job.null_overwrites:
            changed = " OR ".join(f"o.{ident(t)} IS DISTINCT FROM w.{ident(t)}" for t in data) or "false"
            sets = ", ".join(f"{ident(t)} = w.{ident(t)}" for t in data)
        else:  # an empty source value keeps the stored one
            changed = " OR ".join(f"(w.{ident(t)} IS NOT NULL AND o.{ident(t)} IS DISTINCT FROM w.{ident(t)})"
                                  for t in data) or "false"
            sets = ", ".join(f"{ident(t)} = coalesce(w.{ident(t)}, o.{ident(t)})" for t in data)
        res.deletes_applied = _apply_deletes(b, obj, job, now, actor)
        # Update the records whose values changed (unchanged ones keep their modified_at), then
        # insert the new ones. (Measured: UPDATE FROM + INSERT beats MERGE several times over when
        # DuckDB has to spill under its memory limit.)
        res.updated = b.sql(
            f"UPDATE {obj.table} AS o SET {sets}, modified_at = ?, modified_by = ? "
            f"FROM (SELECT * FROM {st} WHERE _ok AND _winner AND _exists) AS w WHERE o.gsid = w._gsid AND ({changed})",
            [now, actor]).fetchone()[0]
        inserted = b.sql(
            f"INSERT INTO {obj.table} (gsid, created_at, created_by, modified_at, modified_by, {cols}) "
            f"SELECT _gsid, ?, ?, ?, ?, {cols} FROM {st} WHERE _ok AND _winner AND NOT _exists",
            [now, actor, now, actor]).fetchone()[0]
        if inserted != res.inserted:
            raise RuntimeError(f"inserted {inserted} records, expected {res.inserted}")
        res.unchanged = (res.rows_read - res.filtered - res.aggregated - res.deleted - res.rejected
                         - res.superseded - res.inserted - res.updated)
        if res.superseded:
            by = "coalesce(w._rid, s._deleted_by)" if b.deletes is not None else "w._rid"  # a later row, or a delete
            ledger.insert_superseded(b.con, f"SELECT ?, ?, s._rid, {by} FROM {st} s LEFT JOIN {st} w "
                                     f"ON w._gsid = s._gsid AND w._ok AND w._winner WHERE s._ok AND NOT s._winner",
                                     [res.job_run_id, job.name])
        res.defaulted = sum(defaulted.values())
        _record_defaulted(b, job, res, load, defaulted)
        res.status = PARTIAL if res.rejected else SUCCESS

    # Rejected rows with their original values, read back from the raw table (only those rows).
    orig = ", ".join(f"{q(h)}, r.{ident(h)}" for h in load.header)
    orig_json = (f"CASE WHEN r._parse_error IS NULL THEN json_object({orig}) ELSE json_object('raw_text', r._raw_text) END"
                 if orig else "json_object('raw_text', r._raw_text)")
    reason_rows = (f"SELECT rid, to_json(list({{'field': field, 'rule': rule, 'value': value, 'message': message}})) "
                   f"AS reasons FROM {reasons} GROUP BY rid")
    if over:
        reason_rows = (f"SELECT s._rid AS rid, coalesce(x.reasons, to_json([{{'field': NULL, 'rule': 'job_failed', "
                       f"'value': NULL, 'message': {q(res.error)}}}])) AS reasons FROM {st} s "
                       f"LEFT JOIN ({reason_rows}) x ON x.rid = s._rid")
    if res.rejected:
        ledger.insert_rejects(b.con, f"SELECT ?, ?, ?, ?, s._rid, {orig_json}, x.reasons, ? "
                              f"FROM ({reason_rows}) x JOIN {st} s ON s._rid = x.rid "
                              f"JOIN {raw_rows_sql(b.con, load.raw_table, load.load_id)} r ON r._line = s._rid",
                              [res.job_run_id, job.name, run_id, load.source_file, now])
        if _has_source_ids(b.con, load.raw_table):  # records landed with their id in the source
            ledger.set_reject_source_ids(b.con, res.job_run_id, raw_rows_sql(b.con, load.raw_table, load.load_id))
        if b.full_merge is not None:  # rows only in the merged dataset: its file, its line, its values
            other_load, other_table, other_header, other_file = b.full_merge
            other = ", ".join(f"{q(h)}, r.{ident(h)}" for h in other_header)
            ledger.insert_rejects(b.con, f"SELECT ?, ?, ?, ?, -s._rid, json_object({other}), x.reasons, ? "
                                  f"FROM ({reason_rows}) x JOIN {st} s ON s._rid = x.rid AND s._rid < 0 "
                                  f"JOIN {raw_rows_sql(b.con, other_table, other_load)} r ON r._line = -s._rid",
                                  [res.job_run_id, job.name, run_id, other_file, now])
    if job.retry_unmatched_lookups is not None and (res.rejected or b.retry is not None):
        _lookup_waits(b, job, res, load, over)
    res.ended_at = _now()
    write_run_log(b.con, res, job, load, run_id, final=True)


def _has_source_ids(con, raw_table: str) -> bool:
    schema, _, name = raw_table.partition(".")
    return con.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
                       "AND column_name = '_source_id'", [schema, name.strip('"').replace('""', '"')]).fetchone()[0] > 0


def _record_defaulted(b: _Batch, job: Job, res: JobRunResult, load: LoadRef, counts: dict[str, int]) -> None:
    """Each value a default replaced in a written row: its line, field, the value as sent and why
    (missing or invalid). Only for mappings that replaced any: one INSERT ... SELECT each over
    the batch, which carries the values (the raw rows are not read again)."""
    st = b.t("st")
    other_file = b.full_merge[3] if b.full_merge is not None else None
    for col, m in b.defaults:
        if not counts.get(col):
            continue
        ledger.insert_defaulted(
            b.con, f"SELECT ?, ?, CASE WHEN _rid < 0 THEN ? ELSE ? END, abs(_rid), ?, ?, "
                   f"NULLIF({col}, ''), CASE WHEN {col} = '' THEN 'missing' ELSE 'invalid' END, ? "
                   f"FROM {st} WHERE _ok AND _winner AND {col} IS NOT NULL",
            [res.job_run_id, job.name, other_file, load.source_file, m.target, m.source,
               str(m.default).lower() if isinstance(m.default, bool) else str(m.default)])


def _lookup_waits(b: _Batch, job: Job, res: JobRunResult, load: LoadRef, failed: bool) -> None:
    """Rows rejected only because a lookup to another object found nothing wait for its records
    (gs_ops.lookup_waiting). A retry updates the rows it tried: loaded or rejected for another
    reason, they stop waiting; still unmatched, they wait with one attempt more, until the bound.
    The rejects it retried point at it (retried_in); a retried row rejected again is a reject of
    the retry's run."""
    st, reasons, opt = b.t("st"), b.t("reasons"), job.retry_unmatched_lookups
    targets = {lk.target: lk.object for lk in job.retried_lookups}
    objects = "CASE field " + " ".join(f"WHEN {q(t)} THEN {q(o)}" for t, o in targets.items()) + " END"
    unmatched = (f"SELECT rid, list(DISTINCT {objects} ORDER BY {objects}) AS objects FROM {reasons} WHERE rid > 0 "
                 f"GROUP BY rid HAVING bool_and(rule = 'lookup_no_match' AND field IN ({', '.join(q(t) for t in targets)}))")
    if b.retry is None:
        if not failed:  # a run over the reject threshold wrote nothing: its rows are re-applied by hand
            ledger.add_waiting(b.con, unmatched, job=job.name, load_id=load.load_id, job_run_id=res.job_run_id,
                               at=res.started_at)
        return
    lines = b.t("retry")
    ledger.mark_retried(b.con, res.job_run_id, lines)
    ledger.update_waiting(b.con, unmatched, lines, job=job.name, load_id=load.load_id, job_run_id=res.job_run_id,
                          at=res.started_at, attempts=opt.attempts)


def write_run_log(con: duckdb.DuckDBPyConnection, res: JobRunResult, job: Job, load: Optional[LoadRef],
                  run_id: str, *, final: bool) -> None:
    ledger.insert_job_run(con, ledger.JobRunRecord(
        job_run_id=res.job_run_id, job=job.name, connection=job.connection, destination=job.destination,
        load_id=res.load_id, source_file=res.source_file, etag=load.etag if load else None, dagster_run_id=run_id,
        operation=job.operation.value, started_at=res.started_at, ended_at=res.ended_at or _now(),
        status=res.status, rows_read=res.rows_read, inserted=res.inserted, updated=res.updated,
        unchanged=res.unchanged, rejected=res.rejected, filtered=res.filtered, superseded=res.superseded,
        error=res.error, final=final, aggregated=res.aggregated, defaulted=res.defaulted, retry_of=res.retry_of,
        deleted=res.deleted, deletes_applied=res.deletes_applied))

