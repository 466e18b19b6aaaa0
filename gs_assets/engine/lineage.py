"""Field lineage for the UI: which source column fills which object field, through which job.

Built from the job config alone (mappings, merges, derived fields, aggregation, lookups), so the
same lineage is on the object asset's definition and on each of its materializations:

- `dagster/column_lineage` (dg.TableColumnLineage): per field, the columns it comes from, as
  `source/<connection>/<object>` + column (a merged column: the merged dataset's source asset; a
  lookup: the matched columns and the looked-up fields on `gs/<object>`; `$file_date` /
  `$file_name`: the source's virtual column of that name). Constants and defaults come from no
  column and have no entry. Several jobs into one object: the union. (Dagster's own UI draws
  column lineage in Dagster+ only; open-source Dagster keeps it in the event log and the API.)
- `field_lineage` (markdown): one row per field and job with how the job fills it, which the
  open-source UI shows in the asset's metadata.
- a source's `dagster/column_schema`: the columns of the file it landed last, each with the jobs
  that read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from gs_assets.config.jobs import VIRTUAL_COLUMNS, Job
from gs_assets.config.loader import PlatformConfig
from gs_assets.engine import ledger
from gs_assets.validators.expressions import check_expression

Dep = tuple[tuple[str, ...], str]  # (asset key path, column name)


@dataclass
class FieldLineage:
    """Per field of one object: its column deps (union over jobs), and per job how it is filled."""
    deps: dict[str, set[Dep]] = field(default_factory=dict)
    rows: list[tuple[str, str, str, list[Dep]]] = field(default_factory=list)  # field, job, how, deps


def _resolver(job: Job):
    """A function from a column name as the mapping sees it (after merges, derived fields and the
    aggregation) to (the columns it comes from, how it is made)."""
    src = tuple(job.source_asset_path)
    env: dict[str, tuple[set[Dep], str]] = {}

    def before_agg(name: str) -> tuple[set[Dep], str]:
        if name in VIRTUAL_COLUMNS:
            return {(src, name)}, name
        return env.get(name.lower(), ({(src, name)}, name))

    for mg in job.prepare.merge:
        ds = ("source", job.connection, mg.dataset)
        if mg.how == "full":  # rows only in the dataset take its key values in the left key columns
            for k in mg.keys:
                left = before_agg(k.left)[0]
                env[k.left.lower()] = (left | {(ds, k.right)}, f"{k.left} (or {mg.dataset}.{k.right}: full merge)")
        for c in mg.columns:
            env[(mg.prefix + c).lower()] = ({(ds, c)}, f"{mg.prefix + c}: merged from {mg.dataset}.{c}")
    for d in job.prepare.derived:
        cols = check_expression(d.expression).columns
        env[d.name.lower()] = (set().union(*(before_agg(c)[0] for c in cols)), f"{d.name}: derived = {d.expression}")
    agg = job.prepare.aggregate
    if agg is None:
        return before_agg
    out: dict[str, tuple[set[Dep], str]] = {g.lower(): (before_agg(g)[0], f"{g} (group by)") for g in agg.group_by}
    for m in agg.measures:
        out[m.name.lower()] = (before_agg(m.column)[0] if m.column else set(),
                               f"{m.name}: {m.function}({m.column or '*'})")

    def after_agg(name: str) -> tuple[set[Dep], str]:
        if name in VIRTUAL_COLUMNS:
            return {(src, name)}, name
        return out.get(name.lower(), before_agg(name))
    return after_agg


def field_lineage(cfg: PlatformConfig, obj_name: str) -> FieldLineage:
    """The lineage of every field of `obj_name` that a job fills, over every job into it."""
    fl = FieldLineage()
    for job in cfg.jobs_into(obj_name):
        resolve = _resolver(job)
        for m in job.mappings:
            if m.source is not None:
                deps, how = resolve(m.source)
            else:
                deps, how = set(), (f"constant {m.constant!r}" if m.constant is not None else f"default {m.default!r}")
            fl.deps.setdefault(m.target, set()).update(deps)
            fl.rows.append((m.target, job.name, how, sorted(deps)))
        for lk in job.lookups:
            deps: set[Dep] = set()
            for mf in lk.match:
                deps |= resolve(mf.source)[0] | {(("gs", lk.object), mf.field)}
            how = f"lookup {lk.object} by {', '.join(mf.field for mf in lk.match)}"
            fl.deps.setdefault(lk.target, set()).update(deps)
            fl.rows.append((lk.target, job.name, how, sorted(deps)))
    return fl


def _dep_text(dep: Dep) -> str:
    return f"{'/'.join(dep[0])}: {dep[1]}"


def lineage_metadata(cfg: PlatformConfig, obj_name: str) -> dict:
    """Metadata of an object asset (definition and materializations): `dagster/column_lineage`
    and the `field_lineage` table. Empty when no job loads the object."""
    fl = field_lineage(cfg, obj_name)
    if not fl.rows:
        return {}
    lineage = dg.TableColumnLineage(deps_by_column={
        f: [dg.TableColumnDep(asset_key=dg.AssetKey(list(k)), column_name=c) for k, c in sorted(deps)]
        for f, deps in fl.deps.items() if deps})
    lines = ["| field | job | how | from |", "| --- | --- | --- | --- |"]
    for f, job, how, deps in sorted(fl.rows, key=lambda r: (r[0], r[1])):
        cells = [f, job, how, "; ".join(_dep_text(d) for d in deps) or "(no column)"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return {"dagster/column_lineage": lineage, "field_lineage": dg.MetadataValue.md("\n".join(lines))}


def merged_datasets(cfg: PlatformConfig, obj_name: str) -> list[dg.AssetKey]:
    """Source assets whose columns jobs into the object merge in (upstream of it, like its sources)."""
    keys: list[dg.AssetKey] = []
    for job in cfg.jobs_into(obj_name):
        for mg in job.prepare.merge:
            k = dg.AssetKey(["source", job.connection, mg.dataset])
            if k not in keys:
                keys.append(k)
    return keys


def column_readers(cfg: PlatformConfig, connection: str, source_object: str) -> dict[str, list[str]]:
    """Per column of a source object (its virtual `$file_*` columns too), the jobs that read it:
    `job`, or `job (merge)` / `job (merge key)` for a job merging the object into its own rows."""
    readers: dict[str, list[str]] = {}

    def add(col: str, who: str) -> None:
        if who not in readers.setdefault(col, []):
            readers[col].append(who)
    for job in sorted(cfg.jobs.values(), key=lambda j: j.name):
        if job.connection != connection:
            continue
        if job.source.object == source_object:
            for c in job.mapped_source_columns:
                add(c, job.name)
            for c in [m.source for m in job.mappings] + [mf.source for lk in job.lookups for mf in lk.match]:
                if c in VIRTUAL_COLUMNS:
                    add(c, job.name)
        for mg in job.prepare.merge:
            if mg.dataset == source_object:
                for k in mg.keys:
                    add(k.right, f"{job.name} (merge key)")
                for c in mg.columns:
                    add(c, f"{job.name} (merge)")
    return readers


def source_column_schema(cfg: PlatformConfig, connection: str, source_object: str,
                         header: list[str]) -> dg.TableSchema:
    """The `dagster/column_schema` of a source after a load: the file's columns as they came (text),
    then the virtual columns jobs read, each described with the jobs that read it."""
    readers = column_readers(cfg, connection, source_object)

    def read_by(col: str) -> str:
        return f"read by: {', '.join(readers[col])}" if readers.get(col) else "read by no job"
    cols = [dg.TableColumn(h, "VARCHAR", description=read_by(h)) for h in header]
    cols += [dg.TableColumn(v, "VARCHAR", description=f"from the file's name (not a column of the file); {read_by(v)}")
             for v in VIRTUAL_COLUMNS if v in readers]
    return dg.TableSchema(columns=cols)


def source_schema_metadata(cfg: PlatformConfig, connection: str, source_object: str, warehouse, landed) -> dict:
    """`dagster/column_schema` for a source materialization that landed (or found already landed) a
    file: the header of that load (`landed`: the engine's LandResult). Empty for a failed load."""
    header = landed.header
    if not header and landed.status == "already_landed" and landed.load_id:
        with warehouse.connect() as con:
            row = ledger.load(con, landed.load_id)
        header = row.header if row and row.header else None
    return {"dagster/column_schema": source_column_schema(cfg, connection, source_object, header)} if header else {}
