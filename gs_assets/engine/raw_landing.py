"""Land a delimited file as it came into its own raw table (`raw_<connection>."<object>__<id>"`).

DuckDB reads the file (all columns as text) straight from disk into a table of its own, one per
file version; `gs_ops.loads.raw_table` names it. Rows that do not parse (wrong number of fields,
bad quoting, invalid bytes) are not dropped: they land too, with the parse error and the raw text,
so the engine rejects them with their line numbers (invariant 5).

A record's line is the file line it starts on, counting the header as line 1 and a quoted
multi-line field as one line (DuckDB's record numbering). It is not written per row: the table is
created in file order and never changed afterwards, so a good record's line is its rowid + 2
(`raw_rows_sql` adds it). Numbering 5M rows with a window function cost more than reading the
file; rowids cost nothing. Only a file with malformed records stores explicit lines (`_line`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import uuid
from dataclasses import dataclass
from typing import Iterable, Optional, Protocol, Union

import duckdb
import pyarrow as pa


MAX_LINE_BYTES = 16 << 20  # one record (a line, or a quoted multi-line value) may be up to 16 MiB
# DuckDB's CSV buffer defaults to 16 x max_line_size (256 MiB here, 1 GiB at 64 MiB lines) and is
# allocated whole for files larger than that; a fixed 64 MiB buffer keeps landing inside the
# warehouse's memory limit whatever the file size.
CSV_BUFFER_BYTES = 64 << 20
# file_prep replaces a record over MAX_LINE_BYTES by a placeholder (DuckDB drops a record longer
# than its buffer without a trace) and notes it in <prepared file> + this suffix (JSON).
OVERSIZED_SUFFIX = ".oversized.json"


class CsvDialect(Protocol):
    """How a prepared CSV file is delimited (a file connector's source config supplies it)."""
    delimiter: str
    quote: str
    escape: Optional[str]


class FileFormatError(ValueError):
    """The file cannot be loaded at all (header problems, unreadable). Nothing is written."""


@dataclass
class LandedFile:
    load_id: str
    raw_table: str
    header: list[str]
    rows_read: int
    malformed_rows: int


@dataclass
class PreparedCsv:
    """What a file reader lands: a UTF-8 CSV file on local disk with a header row, and its dialect."""
    path: str
    dialect: CsvDialect


@dataclass
class RecordBatches:
    """What a record reader lands (an API page, a SQL chunk): Arrow record batches, and which column
    holds each row's id in the source (its location for rejects; None: the row's position).

    A batch may carry the reserved column `_deleted` (DELETED_COLUMN): 'true' (or boolean true) on a
    row the source reported deleted, which then holds only the source's key columns; NULL on a
    record. It lands as the raw table's own `_deleted` column, not as a column of the header, and
    the jobs apply such rows by their delete policy (apply_load)."""
    batches: Iterable[pa.RecordBatch]
    id_column: Optional[str] = None


Records = Union[PreparedCsv, RecordBatches]
DELETED_COLUMN = "_deleted"  # a record reader's flag of a source-reported delete (see RecordBatches)
RESERVED_RAW_COLUMNS = {"_line", "_parse_error", "_raw_text", "_source_id", "_pos", DELETED_COLUMN}


def raw_table_name(connection: str, source_object: str, load_id: str) -> str:
    """The raw table of one load: its own table, so rows keep file order and rowids."""
    return f'raw_{connection}."{source_object}__{load_id.replace("-", "")[:16]}"'


def raw_rows_sql(con: duckdb.DuckDBPyConnection, raw_table: str, load_id: str) -> str:
    """A subquery over one load's raw rows with `_line` filled in (see the module docstring).

    Loads landed before per-load tables share one table per source object with a stored `_line`
    and a `_load_id` column; they are read from it."""
    schema, _, name = raw_table.partition(".")
    cols = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [schema, name.strip('"').replace('""', '"')]).fetchall()}
    where = f" WHERE _load_id = {_sql_str(load_id)}" if "_load_id" in cols else ""
    # A committed load's rowids start at 0; inside the transaction that landed it (a dry run) they
    # start at a large offset, hence the minimum (rowids are generated, so this reads no data).
    return (f"(SELECT * REPLACE (coalesce(_line, rowid + 2 - (SELECT min(rowid) FROM {raw_table})) AS _line) "
            f"FROM {raw_table}{where})")


def _sql_str(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


def _csv_options(src: CsvDialect) -> str:
    opts = [f"delim={_sql_str(src.delimiter)}", f"quote={_sql_str(src.quote)}", "all_varchar=true"]
    opts.append(f"escape={_sql_str(src.escape if src.escape is not None else src.quote)}")
    opts.append(f"max_line_size={MAX_LINE_BYTES}")
    opts.append(f"buffer_size={CSV_BUFFER_BYTES}")
    return ", ".join(opts)


def read_header(path: str, src: CsvDialect, file_label: str) -> list[str]:
    """The header row exactly as written (Python's csv on the first 1 MiB; a BOM is dropped).

    The file is UTF-8 here (file_prep converted it). Blank or duplicate names are an error: a
    column nobody can name cannot be mapped.
    """
    enc = "utf-8-sig"
    try:
        with open(path, "r", encoding=enc, newline="") as fh:
            head = fh.read(1 << 20)
    except (UnicodeDecodeError, LookupError) as e:
        raise FileFormatError(f"{file_label}: cannot decode the header as UTF-8 ({e}). "
                              f"Set the job's encoding to the file's encoding.") from e
    if head.strip() == "":
        raise FileFormatError(f"{file_label}: the file is empty; a header row is required.")
    reader = csv.reader(io.StringIO(head), delimiter=src.delimiter, quotechar=src.quote,
                        escapechar=src.escape if src.escape not in (None, src.quote) else None,
                        doublequote=src.escape in (None, src.quote))
    header = next(reader)
    while len(header) > 1 and header[-1] == "":
        header.pop()  # trailing delimiter on the header line
    blanks = [i + 1 for i, h in enumerate(header) if h.strip() == ""]
    if blanks:
        raise FileFormatError(f"{file_label}: header has blank column name(s) at position(s) {blanks}; "
                              f"every column needs a name.")
    seen: dict[str, str] = {}
    for h in header:
        k = h.lower()
        if k in seen:
            raise FileFormatError(f"{file_label}: header has duplicate column {h!r}"
                                  + (f" (same as {seen[k]!r} ignoring case)" if seen[k] != h else "")
                                  + "; column names must be unique.")
        seen[k] = h
    return header


def check_mapped_columns(header: list[str], required: list[str], file_label: str, jobs: list[str]) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise FileFormatError(
            f"{file_label}: header lacks mapped column(s) {missing} used by job(s) {jobs}. "
            f"Header is {header}. Fix the file's header or the job's mappings (names are case-sensitive)."
        )


def _explain_bad_records(con: duckdb.DuckDBPyConnection, bad: str, path: str, src: CsvDialect, n_header: int) -> None:
    """Reasons a user can act on: the real field count of a ragged record (DuckDB's count is right
    for a short record but stops one past the header for a long one, so those are counted again on
    the raw line), the size of a record over the limit (and its start as its text)."""
    con.execute(
        f"UPDATE {bad} SET err = 'row has ' || n || CASE WHEN n = '1' THEN ' field' ELSE ' fields' END || "
        f"', the header has {int(n_header)}' FROM (SELECT line AS l, regexp_extract(err, 'Found: (\\d+)', 1) AS n "
        f"FROM {bad} WHERE etype = 'MISSING COLUMNS') x WHERE line = x.l AND n <> ''")
    fixes: list[tuple[int, str, Optional[str]]] = []
    limit_mib = MAX_LINE_BYTES >> 20
    oversized = {}
    if os.path.exists(path + OVERSIZED_SUFFIX):
        with open(path + OVERSIZED_SUFFIX, encoding="utf-8") as fh:
            oversized = {r["marker"]: r for r in json.load(fh)["records"]}
    rows = con.execute(f"SELECT line, etype, txt, pos, err FROM {bad} WHERE etype IN "
                       f"('TOO MANY COLUMNS', 'LINE SIZE OVER MAXIMUM')").fetchall()
    with open(path, "rb") as fh:
        for line, etype, txt, pos, err in rows:
            marker = (txt or "").split(src.delimiter, 1)[0]
            if marker in oversized:
                r = oversized[marker]
                fixes.append((line, f"record is {r['bytes'] / (1 << 20):,.0f} MiB, over the {limit_mib} MiB limit of one record",
                              r["head"]))
            elif etype == "LINE SIZE OVER MAXIMUM":
                m = re.search(r"Actual Size:\s*(\d+)", err or "")
                size = f"{int(m.group(1)) / (1 << 20):,.0f} MiB" if m else f"over {limit_mib} MiB"
                fixes.append((line, f"record is {size}, over the {limit_mib} MiB limit of one record", None))
            else:
                n = _count_fields(fh, txt, pos, src)
                if n is not None and n != n_header:
                    fixes.append((line, f"row has {n} field{'s' if n != 1 else ''}, the header has {n_header}", None))
    if fixes:
        lines, errs, txts = (list(c) for c in zip(*fixes))
        con.execute(f"UPDATE {bad} SET err = f.err, txt = coalesce(f.txt, {bad}.txt) FROM (SELECT unnest(?::BIGINT[]) AS line, "
                    f"unnest(?::VARCHAR[]) AS err, unnest(?::VARCHAR[]) AS txt) f WHERE {bad}.line = f.line",
                    [lines, errs, txts])


def _count_fields(fh, txt: Optional[str], pos: Optional[int], src: CsvDialect) -> Optional[int]:
    """Fields in one record under the source's delimiter, quote and escape (Python's csv), read
    from DuckDB's copy of the line or, when that copy is cut short, from the file."""
    if txt is not None and len(txt) < 10_000:  # DuckDB keeps up to 10,000 characters of a line
        text = io.StringIO(txt)
    elif pos is not None:
        fh.seek(pos)
        text = io.TextIOWrapper(io.BytesIO(fh.read(MAX_LINE_BYTES + 1).lstrip(b"\r\n")), encoding="utf-8",
                                errors="replace", newline="")
    else:
        return None
    reader = csv.reader(text, delimiter=src.delimiter, quotechar=src.quote,
                        escapechar=src.escape if src.escape not in (None, src.quote) else None,
                        doublequote=src.escape in (None, src.quote))
    try:
        return len(next(reader))
    except (StopIteration, csv.Error):
        return None


def land_file(
    con: duckdb.DuckDBPyConnection,
    *,
    path: str,
    file_label: str,
    connection: str,
    source_object: str,
    src: CsvDialect,
    required_columns: list[str],
    jobs: list[str],
    load_id: Optional[str] = None,
) -> LandedFile:
    """Read the file into the raw table under a new load id. Call inside a transaction."""
    load_id = load_id or str(uuid.uuid4())
    header = read_header(path, src, file_label)
    check_mapped_columns(header, required_columns, file_label, jobs)

    table = raw_table_name(connection, source_object, load_id)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS raw_{connection}")
    tag = uuid.uuid4().hex[:12]
    errs, scans = f"rej_err_{tag}", f"rej_scan_{tag}"
    cols = [f"column{i:0{len(str(len(header) - 1))}d}" for i in range(len(header))]
    col_types = "{" + ", ".join(f"{_sql_str(c)}: 'VARCHAR'" for c in cols) + "}"
    named = ", ".join(f'"{c}" AS "' + h.replace('"', '""') + '"' for c, h in zip(cols, header))
    try:
        good = con.execute(
            f"CREATE TABLE {table} AS SELECT {named}, CAST(NULL AS BIGINT) AS _line, CAST(NULL AS VARCHAR) AS _parse_error, "
            f"CAST(NULL AS VARCHAR) AS _raw_text FROM read_csv({_sql_str(path)}, header=true, auto_detect=false, "
            f"columns={col_types}, {_csv_options(src)}, store_rejects=true, rejects_table={_sql_str(errs)}, "
            f"rejects_scan={_sql_str(scans)})"
        ).fetchone()[0]
    except duckdb.OutOfMemoryException:
        raise  # not the file's fault: the run fails and can be retried; the file is not marked failed
    except duckdb.Error as e:
        raise FileFormatError(f"{file_label}: cannot read the file ({e}). Check the job's format settings.") from e
    # Malformed records with their lines (in a CRLF file DuckDB's copy of a line starts with the
    # previous line's LF: trimmed); good record k (0-based) sits after every bad record j
    # (1-based, in line order) with (line_j - 1) - j < k + 1.
    con.execute(
        f"CREATE TEMP TABLE bad_{tag} AS SELECT line, row_number() OVER (ORDER BY line) AS j, "
        f"arg_min(error_message, coalesce(column_idx, 0)) AS err, ltrim(first(csv_line), chr(13) || chr(10)) AS txt, "
        f"arg_min(error_type, coalesce(column_idx, 0)) AS etype, min(line_byte_position) AS pos "
        f"FROM {errs} GROUP BY line"
    )
    bad = con.execute(f"SELECT count(*) FROM bad_{tag}").fetchone()[0]
    if bad:
        _explain_bad_records(con, f"bad_{tag}", path, src, len(header))
    if bad:  # rare: store every line explicitly (rowids in this transaction are offsets from the first)
        con.execute(
            f"UPDATE {table} SET _line = k + 2 + (SELECT count(*) FROM bad_{tag} b WHERE (b.line - 1) - b.j < k + 1) "
            f"FROM (SELECT rowid - (SELECT min(rowid) FROM {table}) AS k, rowid AS rid FROM {table}) x "
            f"WHERE {table}.rowid = x.rid")
        con.execute(
            f"INSERT INTO {table} (_line, _parse_error, _raw_text) SELECT line, err, txt FROM bad_{tag}"
        )
    for t in (f"bad_{tag}", errs, scans):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return LandedFile(load_id=load_id, raw_table=table, header=header, rows_read=good + bad, malformed_rows=bad)


def land_into_raw(con: duckdb.DuckDBPyConnection, records: Records, *, file_label: str, connection: str,
                  source_object: str, required_columns: list[str], jobs: list[str],
                  load_id: Optional[str] = None) -> LandedFile:
    """Land what a reader produced (a prepared CSV file or Arrow record batches). Call inside a transaction."""
    if isinstance(records, PreparedCsv):
        return land_file(con, path=records.path, file_label=file_label, connection=connection,
                         source_object=source_object, src=records.dialect, required_columns=required_columns,
                         jobs=jobs, load_id=load_id)
    return land_batches(con, records, file_label=file_label, connection=connection, source_object=source_object,
                        required_columns=required_columns, jobs=jobs, load_id=load_id)


def land_batches(con: duckdb.DuckDBPyConnection, records: RecordBatches, *, file_label: str, connection: str,
                 source_object: str, required_columns: list[str], jobs: list[str],
                 load_id: Optional[str] = None) -> LandedFile:
    """Land Arrow record batches into the raw table, every value as text like a CSV's.

    A row's `_line` is its position in the unit (1 = the first record), and `_source_id` its id in
    the source (the `id_column`'s value), so a rejected row names where it came from."""
    load_id = load_id or str(uuid.uuid4())
    batches = iter(records.batches)
    first = next(batches, None)
    if first is None:
        raise FileFormatError(f"{file_label}: no records and no columns; a reader must give at least the schema.")
    names_in = list(first.schema.names)
    deletes = DELETED_COLUMN in names_in  # the reader's delete flag: its own raw column, not a header column
    header = [h for h in names_in if h != DELETED_COLUMN] if deletes and names_in.count(DELETED_COLUMN) == 1 else names_in
    blanks = [i + 1 for i, h in enumerate(header) if h.strip() == ""]
    if blanks:
        raise FileFormatError(f"{file_label}: blank column name(s) at position(s) {blanks}; every column needs a name.")
    if len({h.lower() for h in header}) != len(header) or RESERVED_RAW_COLUMNS & set(header):
        raise FileFormatError(f"{file_label}: duplicate or reserved column names in {header}; "
                              f"column names must be unique and none of {sorted(RESERVED_RAW_COLUMNS)}.")
    if records.id_column is not None and records.id_column not in header:
        raise FileFormatError(f"{file_label}: the id column {records.id_column!r} is not among the columns {header}.")
    check_mapped_columns(header, required_columns, file_label, jobs)
    table = raw_table_name(connection, source_object, load_id)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS raw_{connection}")
    cols = ", ".join('"' + h.replace('"', '""') + '" VARCHAR' for h in header)
    flag = f", {DELETED_COLUMN} VARCHAR" if deletes else ""
    con.execute(f"CREATE TABLE {table} ({cols}, _line BIGINT, _parse_error VARCHAR, _raw_text VARCHAR, _source_id VARCHAR{flag})")
    text = pa.schema([pa.field(h, pa.string()) for h in names_in] + [pa.field("_pos", pa.int64())])
    sid = '"' + records.id_column.replace('"', '""') + '"' if records.id_column else "NULL"
    names = ", ".join('"' + h.replace('"', '""') + '"' for h in header)
    # a delete flag as text: 'true' on a row the source reported deleted, NULL on a record
    flag = f", CASE WHEN lower({DELETED_COLUMN}) = 'true' THEN 'true' END" if deletes else ""
    rows, view = 0, f"arrow_{uuid.uuid4().hex[:12]}"
    for batch in ([first] if first.num_rows else []) + [b for b in batches if b.num_rows]:
        if list(batch.schema.names) != names_in:
            raise FileFormatError(f"{file_label}: a record batch has columns {batch.schema.names}, the first had "
                                  f"{names_in}; every batch of a unit needs the same columns.")
        as_text = pa.RecordBatch.from_arrays([c.cast(pa.string()) for c in batch.columns]
                                             + [pa.array(range(rows + 1, rows + 1 + batch.num_rows), pa.int64())],
                                             schema=text)
        con.register(view, pa.Table.from_batches([as_text]))
        try:
            con.execute(f"INSERT INTO {table} SELECT {names}, _pos, NULL, NULL, CAST({sid} AS VARCHAR){flag} "
                        f"FROM {view} ORDER BY _pos")
        finally:
            con.unregister(view)
        rows += batch.num_rows
    return LandedFile(load_id=load_id, raw_table=table, header=header, rows_read=rows, malformed_rows=0)
