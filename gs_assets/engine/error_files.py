"""Error files: a job run's rejects as CSV (line number, the original columns, the reasons).

The warehouse keeps the rejects (gs_ops.rejects); this writes the same rows in the shape of the
file the user sent, so they can fix the rows and upload them again.

Every file written here is safe to open in a spreadsheet (OWASP, CSV Injection): a cell (value,
column header, unparsed row or reasons) that starts with `=`, `+`, `-`, `@`, tab or carriage return
gets a leading single quote, so a spreadsheet shows it as text instead of running it as a formula;
and every field is quoted (quotes doubled), so a spreadsheet that splits on another separator (`;`,
tab) cannot start a cell in the middle of a value. A plain number (`-5`, `+4.5e3`) is left as it
is: it cannot run as a formula, and a user who fixes the rows re-uploads it unchanged. The warehouse
keeps the original values.
"""

from __future__ import annotations

import re

import duckdb

from gs_assets.engine import ledger
from gs_assets.engine.sql_convert import ident, q

REASONS_TEXT = ("array_to_string(list_transform(CAST(reasons AS JSON[]), lambda x: coalesce(x->>'field', 'row') || ': ' || "
                "(x->>'message') || coalesce(' (value ' || (x->>'value') || ')', '')), '; ')")

RAW_TEXT = "(original_values->>'raw_text')"

# OWASP's list of first characters that make a spreadsheet read a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = r"^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$"


def safe_cell(value: str) -> str:
    """`value` as a spreadsheet shows it as text: a leading quote before a formula start (not before a number)."""
    if value.startswith(FORMULA_START) and not re.match(NUMBER, value):
        return "'" + value
    return value


def safe_cell_sql(expr: str) -> str:
    """safe_cell over the text SQL expression `expr`, vectorised (for the COPY below)."""
    starts = ", ".join(q(c) if c.isprintable() else f"chr({ord(c)})" for c in FORMULA_START)
    return (f"CASE WHEN left({expr}, 1) IN ({starts}) AND NOT regexp_matches({expr}, {q(NUMBER)}) "
            f"THEN '''' || {expr} ELSE {expr} END")


def write_error_file(con: duckdb.DuckDBPyConnection, job_run_id: str, header: list[str], path: str) -> int:
    """Write the rejects of one job run to `path`; returns the number of rows written."""
    cols = ", ".join(f"{safe_cell_sql(f'(original_values->>{q(h)})')} AS {ident(safe_cell(h))}" for h in header)
    n = ledger.count_rejects(con, job_run_id)
    con.execute(
        f"COPY (SELECT line_number, {cols + ', ' if cols else ''}"
        f"CASE WHEN json_exists(original_values, '$.raw_text') AND NOT list_contains({_list(header)}, 'raw_text') "
        f"THEN {safe_cell_sql(RAW_TEXT)} END AS unparsed_row, "
        f"{safe_cell_sql('(' + REASONS_TEXT + ')')} AS reasons "
        f"FROM {ledger.rejects_relation(job_run_id)} ORDER BY line_number) "
        f"TO {q(path)} (HEADER, DELIMITER ',', FORCE_QUOTE *)")
    return n


def write_resend_file(con: duckdb.DuckDBPyConnection, job_run_id: str, header: list[str], path: str) -> tuple[int, int]:
    """The rejected rows of one job run in the shape of the file that was sent, to fix and send
    again: its columns only, values exactly as sent (not neutralised: a file for sending, not for a
    spreadsheet, where a neutralised `'=...` would come back with its quote). Rows that could not be
    parsed have no columns to write: they are left out and counted. Returns (written, left out)."""
    unparsed = f"json_exists(original_values, '$.raw_text') AND NOT list_contains({_list(header)}, 'raw_text')"
    n, skipped = con.execute(f"SELECT count(*) FILTER (WHERE NOT ({unparsed})), count(*) FILTER (WHERE {unparsed}) "
                             f"FROM {ledger.rejects_relation(job_run_id)}").fetchone()
    cols = ", ".join(f"original_values->>{q(h)} AS {ident(h)}" for h in header) or "NULL AS no_columns"
    con.execute(f"COPY (SELECT {cols} FROM {ledger.rejects_relation(job_run_id)} WHERE NOT ({unparsed}) "
                f"ORDER BY line_number) TO {q(path)} (HEADER, DELIMITER ',')")
    return n, skipped


def write_failure_file(path: str, message: str) -> None:
    """For a file that could not be loaded at all: one row saying why."""
    import csv
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL)
        w.writerow(["line_number", "reasons"])
        w.writerow(["", safe_cell(message)])


def _list(values: list[str]) -> str:
    return "[" + ", ".join(q(v) for v in values) + "]::VARCHAR[]"
