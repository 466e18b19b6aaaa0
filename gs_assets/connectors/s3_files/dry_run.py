"""A job run that writes nothing: read, prepare, map, look up, validate, then roll back.

It goes through the same code as a real load (land_file + apply_load) inside one warehouse
transaction and reads what that transaction would have written (the records, the rejects, the
counts) before rolling it back, so what it shows is what a real run would do with the warehouse
as it is now. Nothing is committed: no raw table, no ledger row, no record, no reject.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

import pandas as pd

from gs_assets.config.jobs import Job
from gs_assets.config.loader import PlatformConfig
from gs_assets.engine import ledger
from gs_assets.engine.apply_load import JobRunResult, LoadRef, _now, apply_load
from gs_assets.connectors.s3_files.reader import prepared_copy
from gs_assets.connectors.s3_files.discovery import file_match
from gs_assets.connectors.s3_files.reader import decompress_limit
from gs_assets.engine.pipeline import source_columns
from gs_assets.engine.raw_landing import FileFormatError, land_file
from gs_assets.engine.sql_convert import ident
from gs_assets.engine.warehouse_setup import sync_object_tables
from resources.warehouse import Warehouse


@dataclass
class DryRunResult:
    job: str
    source_file: str
    result: Optional[JobRunResult] = None
    error: Optional[str] = None
    preview: pd.DataFrame = field(default_factory=pd.DataFrame)
    rejects: list[tuple[int, list[dict]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None and self.result.status != "Failed"

    def render(self) -> str:
        out = [f"test-run of job {self.job} on {self.source_file} (dry run: nothing was written)"]
        if self.result is None:
            out.append(f"Failed: {self.error}")
            return "\n".join(out)
        r = self.result
        out.append(f"status: {r.status}   read {r.rows_read:,}   would insert {r.inserted:,}   update {r.updated:,}   "
                   f"unchanged {r.unchanged:,}   reject {r.rejected:,}   filter {r.filtered:,}   supersede {r.superseded:,}"
                   + (f"   aggregate {r.aggregated:,}" if r.aggregated else "")
                   + (f"   defaulted values {r.defaulted:,}" if r.defaulted else ""))
        if r.error:
            out.append(f"error: {r.error}")
        out.append("")
        if len(self.preview):
            out.append(f"preview: the first {len(self.preview)} record(s) it would write")
            out.append(self.preview.to_string(index=False, max_colwidth=40))
        else:
            out.append("preview: no record would be written")
        if self.rejects:
            out.append("")
            out.append(f"would-be rejects (first {len(self.rejects)} of {r.rejected:,}):")
            for line, reasons in self.rejects:
                text = "; ".join(f"{x.get('field') or 'row'} {x['rule']}: {x['message']}"
                                 + (f" (value {x['value']!r})" if x.get("value") is not None else "") for x in reasons)
                out.append(f"  line {line}: {text}")
        return "\n".join(out)


def dry_run(warehouse: Warehouse, cfg: PlatformConfig, job: Job, *, chunks: Iterable[bytes], name: str,
            source_file: str, preview_rows: int = 10) -> DryRunResult:
    out = DryRunResult(job=job.name, source_file=source_file)
    obj = cfg.model.objects[job.destination]
    fm = file_match(job.source, name)
    needs = source_columns(cfg, job.connection, job.source.object)
    try:
        with prepared_copy(chunks, name=name, label=source_file, src=job.source,
                           limit=decompress_limit(cfg, job.connection, source_file)) as path, warehouse.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                sync_object_tables(con, cfg.model)
                landed = land_file(con, path=path, file_label=source_file, connection=job.connection,
                                   source_object=job.source.object, src=job.source,
                                   # what the real landing checks: every job reading the object
                                   required_columns=list(needs), jobs=sorted({j for js in needs.values() for j in js}))
                started = _now()
                load = LoadRef(load_id=landed.load_id, raw_table=landed.raw_table, source_file=source_file,
                               etag=None, header=landed.header, file_name=fm.file_name, file_date=fm.file_date)
                out.result = apply_load(con, model=cfg.model, job=job, load=load, dagster_run_id="dry-run")
                targets = [m.target for m in job.mappings] + [lk.target for lk in job.lookups]
                cols = ", ".join(ident(t) for t in ["gsid", *[t for t in targets if t != "gsid"]])
                out.preview = con.execute(
                    f"SELECT CASE WHEN created_at >= ? THEN 'insert' ELSE 'update' END AS action, {cols} "
                    f"FROM {obj.table} WHERE modified_at >= ? ORDER BY action, gsid LIMIT {int(preview_rows)}",
                    [started, started]).df()
                out.rejects = [(r.line_number, r.reasons)
                               for r in ledger.rejects_of(con, out.result.job_run_id, limit=preview_rows)]
            finally:
                con.execute("ROLLBACK")
    except FileFormatError as e:  # unreadable file or header: nothing to preview
        out.error = str(e)
    return out
