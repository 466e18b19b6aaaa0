"""Error files: a job run's rejects as CSV (line number, the original columns, the reasons).

The warehouse keeps the rejects (gs_ops.rejects); this writes the same rows in the shape of the
file the user sent, so they can fix the rows and upload them again.
"""

from __future__ import annotations

import duckdb

from gs_assets.engine.sql_convert import ident, q

REASONS_TEXT = ("array_to_string(list_transform(CAST(reasons AS JSON[]), lambda x: coalesce(x->>'field', 'row') || ': ' || "
                "(x->>'message') || coalesce(' (value ' || (x->>'value') || ')', '')), '; ')")


def write_error_file(con: duckdb.DuckDBPyConnection, job_run_id: str, header: list[str], path: str) -> int:
    """Write the rejects of one job run to `path`; returns the number of rows written."""
    cols = ", ".join(f"original_values->>{q(h)} AS {ident(h)}" for h in header)
    n = con.execute("SELECT count(*) FROM gs_ops.rejects WHERE job_run_id = ?", [job_run_id]).fetchone()[0]
    con.execute(
        f"COPY (SELECT line_number, {cols + ', ' if cols else ''}"
        f"CASE WHEN json_exists(original_values, '$.raw_text') AND NOT list_contains({_list(header)}, 'raw_text') "
        f"THEN original_values->>'raw_text' END AS unparsed_row, {REASONS_TEXT} AS reasons "
        f"FROM gs_ops.rejects WHERE job_run_id = {q(job_run_id)} ORDER BY line_number) "
        f"TO {q(path)} (HEADER, DELIMITER ',')")
    return n


def write_failure_file(path: str, message: str) -> None:
    """For a file that could not be loaded at all: one row saying why."""
    import csv
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["line_number", "reasons"])
        w.writerow(["", message])


def _list(values: list[str]) -> str:
    return "[" + ", ".join(q(v) for v in values) + "]::VARCHAR[]"

