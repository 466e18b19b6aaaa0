"""Destination object assets `gs/<object>`: apply pending loads of every job into the object.

Each materialization applies what landed since the last one, job by job, in arrival order, and
reports row counts, what this run inserted/updated/rejected, a preview and the column schema.
Asset checks prove the invariants: schema (pandera) on the rows written, conservation of rows
per job run, and lookups that point only at existing records.
"""


from datetime import datetime, timezone

import dagster as dg
import pandas as pd

from gs_assets.connectors.kind import resources_of
from gs_assets.connectors.registry import kind_of_job
from gs_assets.engine import ledger
from gs_assets.engine.warehouse_setup import ensure_tables
from gs_assets.engine.lineage import lineage_metadata, merged_datasets
from gs_assets.config.loader import PlatformConfig
from gs_assets.engine.pipeline import apply_pending
from gs_assets.engine.schema_checks import schema_for, validation_failures
from gs_assets.engine.schema_sql import compile_schema, failures_select
from gs_assets.engine.sql_convert import ident
from gs_assets.model.field_types import DUCKDB_TYPES, FieldType
from gs_assets.model.objects import ObjectDef
from resources.warehouse import Warehouse

PREVIEW_ROWS = 10
SCHEMA_SAMPLE_ROWS = 10_000  # rows pandera itself re-checks in the asset check


def object_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["gs", name])


def table_schema(obj: ObjectDef) -> dg.TableSchema:
    cols = []
    for f in obj.fields.values():
        desc = f.type.value
        if f.values:
            desc += f" ({', '.join(f.values)})"
        if f.lookup:
            desc += f" -> {f.lookup}"
        constraints = dg.TableColumnConstraints(nullable=not f.required, unique=f.name == "gsid")
        cols.append(dg.TableColumn(f.name, DUCKDB_TYPES[f.type], description=f"{f.label}: {desc}",
                                   constraints=constraints))
    return dg.TableSchema(columns=cols)


def upstream_keys(cfg: PlatformConfig, obj: ObjectDef) -> list[dg.AssetKey]:
    """Source objects of jobs into this object, and objects its jobs look up (not itself)."""
    keys: list[dg.AssetKey] = []
    for job in cfg.jobs_into(obj.name):
        k = dg.AssetKey(job.source_asset_path)
        if k not in keys:
            keys.append(k)
        for lk in job.lookups:
            if lk.object != obj.name and object_key(lk.object) not in keys:
                keys.append(object_key(lk.object))
    return keys + [k for k in merged_datasets(cfg, obj.name) if k not in keys]


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_no rows_"
    df = df.astype(object).map(lambda v: "" if v is None or (not isinstance(v, (list, dict)) and pd.isna(v)) else str(v))
    head = "| " + " | ".join(df.columns) + " |\n| " + " | ".join("---" for _ in df.columns) + " |\n"
    return head + "\n".join("| " + " | ".join(v.replace("|", "\\|")[:60] for v in row) + " |" for row in df.values)


def build_object_asset(cfg: PlatformConfig, obj: ObjectDef) -> dg.AssetsDefinition:
    key = object_key(obj.name)
    jobs = cfg.jobs_into(obj.name)
    checks = [
        dg.AssetCheckSpec("schema", asset=key, description="Rows written by this materialization pass the object's pandera schema"),
        dg.AssetCheckSpec("conservation", asset=key, description="Every job run: read = inserted + updated + unchanged + rejected + filtered + superseded + aggregated + deleted"),
        dg.AssetCheckSpec("lookups_resolve", asset=key, description="Rows written by this materialization: every GSID lookup field points at an existing record; GSIDs are unique and 36 characters"),
    ]
    desc = (f"{obj.label}{' (custom object)' if obj.custom else ''}: table `{obj.table}`. "
            + (f"Loaded by job(s): {', '.join(j.name for j in jobs)}." if jobs else "No job loads it yet."))
    # the connector kinds of the jobs loading it (each finishes its units after the commit)
    feeding = list({k.type: k for k in (kind_of_job(cfg, j) for j in jobs)}.values())

    @dg.asset(
        key=key,
        deps=upstream_keys(cfg, obj),
        group_name="matrix",
        kinds={"duckdb", "table"},
        pool="warehouse",
        required_resource_keys={"warehouse", *set().union(*(k.resource_keys for k in feeding))},
        description=desc,
        check_specs=checks,
        metadata={"dagster/column_schema": table_schema(obj), "dagster/table_name": obj.table,
                  **lineage_metadata(cfg, obj.name)},
    )
    def _object(context: dg.AssetExecutionContext):
        warehouse: Warehouse = context.resources.warehouse
        started = datetime.now(timezone.utc).replace(tzinfo=None)
        changes = ensure_tables(warehouse, cfg.model)
        for c in changes:
            context.log.info(c)
        # Jobs that load on arrival apply in any run; a scheduled job or chain member only in a run
        # of that job (its schedule, `gsdp run`, the Bulk API, <job>_job from the UI) or its chain.
        named = context.run.tags.get("gsdp/job")
        only = {j.name for j in jobs if cfg.loads_on_arrival(j) or j.name == named}
        waiting = sorted({j.name for j in jobs} - only)
        if waiting:
            context.log.info(f"job(s) {', '.join(waiting)} apply their files at their schedule or chain, not in this run")
        try:
            results = apply_pending(warehouse, cfg, obj.name, run_id=context.run.run_id, log=context.log,
                                    only_jobs=only)
        finally:
            # Committed loads: each connector kind feeding the object finishes its units (writes error
            # files and moves the files, advances a cursor), only now, after the commit.
            for kind in feeding:
                kind.after_commit(warehouse, cfg, resources_of(kind, context), obj.name, context.log)
        data_cols = [f.name for f in obj.data_fields]
        with warehouse.connect() as con:
            total = con.execute(f"SELECT count(*) FROM {obj.table}").fetchone()[0]
            preview = con.execute(f"SELECT * FROM {obj.table} ORDER BY modified_at DESC NULLS LAST LIMIT {PREVIEW_ROWS}").df()
            # The pandera schema over every row this materialization wrote, run in DuckDB, plus
            # pandera itself over a sample of them (the two must agree).
            compiled, _fallback = compile_schema(schema_for(obj), data_cols)
            written_n = con.execute(f"SELECT count(*) FROM {obj.table} WHERE modified_at >= ?", [started]).fetchone()[0]
            sql_fails = con.execute(
                f"SELECT * FROM ({failures_select(compiled, obj.table, 'modified_at >= $1', rid='gsid')}) LIMIT 20",
                [started]).df() if compiled and written_n else pd.DataFrame()
            sample = con.execute(f"SELECT {', '.join(ident(c) for c in data_cols)} FROM {obj.table} "
                                 f"WHERE modified_at >= ? USING SAMPLE {SCHEMA_SAMPLE_ROWS} ROWS", [started]).df()
            broken_runs = [(b.job_run_id, b.job, b.rows_read, b.accounted) for b in ledger.unconserved_runs(con, obj.name)]
            # Lookups and GSIDs of the rows this materialization wrote (not the whole table: the
            # check's cost follows the load, not the object's size).
            dangling = []
            for f in obj.fields.values():
                if f.type == FieldType.GSID:
                    target = cfg.model.objects[f.lookup]
                    n = con.execute(f"SELECT count(*) FROM {obj.table} o WHERE o.modified_at >= ? AND o.{ident(f.name)} IS NOT NULL "
                                    f"AND NOT EXISTS (SELECT 1 FROM {target.table} t WHERE t.gsid = o.{ident(f.name)})",
                                    [started]).fetchone()[0]
                    if n:
                        dangling.append(f"{f.name}: {n} value(s) not in {f.lookup}")
            bad_gsid = con.execute(f"SELECT count(*) - count(DISTINCT gsid) + count(*) FILTER (WHERE length(gsid) <> 36 OR gsid IS NULL) "
                                   f"FROM {obj.table} WHERE modified_at >= ?", [started]).fetchone()[0]
        fails = validation_failures(obj, sample.set_index(pd.RangeIndex(len(sample))), data_cols) if len(sample) else pd.DataFrame()
        fails = pd.concat([sql_fails, fails]) if len(sql_fails) else fails
        # The activity log of this materialization; rejects download with `gsdp rejects <id>`.
        runs = pd.DataFrame([{**{k: r.as_dict()[k] for k in ("job", "source_file", "status", "started_at", "ended_at",
                                                             "rows_read", "inserted", "updated", "unchanged", "rejected",
                                                             "filtered", "superseded", "aggregated", "deleted",
                                                             "deletes_applied", "defaulted", "retry_of")},
                              "job_run_id": r.job_run_id,
                              "rejects": f"gsdp rejects {r.job_run_id}" if r.rejected else ""} for r in results])
        yield dg.MaterializeResult(metadata={
            "dagster/row_count": total,
            "inserted": sum(r.inserted for r in results),
            "updated": sum(r.updated for r in results),
            "unchanged": sum(r.unchanged for r in results),
            "rejected": sum(r.rejected for r in results),
            "superseded": sum(r.superseded for r in results),
            "filtered": sum(r.filtered for r in results),
            "aggregated": sum(r.aggregated for r in results),
            # rows the source reported deleted; deletes_applied: those that removed or marked a record
            "deleted": sum(r.deleted for r in results),
            "deletes_applied": sum(r.deletes_applied for r in results),
            # values a mapping's default replaced (in gs_ops.defaulted with line and value as sent)
            "defaulted": sum(r.defaulted for r in results),
            "job_runs": dg.MetadataValue.md(_md_table(runs)) if len(runs) else dg.MetadataValue.text("no pending loads"),
            "preview": dg.MetadataValue.md(_md_table(preview)),
            "dagster/column_schema": table_schema(obj),
            **lineage_metadata(cfg, obj.name),
            "schema_changes": dg.MetadataValue.text("; ".join(changes) or "none"),
        })
        yield dg.AssetCheckResult(check_name="schema", passed=len(fails) == 0,
                                  metadata={"rows_checked": written_n, "pandera_sample_rows": len(sample), "failures": len(fails),
                                            "first_failures": dg.MetadataValue.md(_md_table(fails.head(20))) if len(fails) else "none"})
        yield dg.AssetCheckResult(check_name="conservation", passed=not broken_runs,
                                  metadata={"job_runs_checked": len(results), "violations": str(broken_runs[:20]) or "none"})
        yield dg.AssetCheckResult(check_name="lookups_resolve", passed=not dangling and bad_gsid == 0,
                                  metadata={"dangling": "; ".join(dangling) or "none", "bad_or_duplicate_gsids": bad_gsid})

    return _object
