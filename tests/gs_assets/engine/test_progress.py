"""Progress lines for long loads: per downloaded chunk, and DuckDB's percent of a running statement."""

import duckdb

from gs_assets.engine.progress import logged_progress, statement_progress


class ListLog:
    def __init__(self):
        self.lines = []

    def info(self, msg):
        self.lines.append(msg)


def test_every_chunk_is_passed_through_and_logged_with_bytes_percent_and_rows():
    chunks = [b"a,b\n" + b"1,2\n" * 99, b"3,4\n" * 100]
    log = ListLog()
    out = list(logged_progress(iter(chunks), total_bytes=sum(map(len, chunks)), label="in/x.csv", log=log,
                               every_seconds=0))
    assert out == chunks
    assert log.lines[0].startswith("downloading in/x.csv: chunk 1, 0.0 of 0.0 MiB (50%), 99 rows so far")
    assert log.lines[1].startswith("downloading in/x.csv: chunk 2, 0.0 of 0.0 MiB (100%), 199 rows so far")
    assert log.lines[-1].endswith(", done")


def test_compressed_files_log_bytes_without_guessing_rows_and_small_files_stay_quiet():
    log = ListLog()
    list(logged_progress(iter([b"\x1f\x8b..."]), total_bytes=None, label="in/x.csv.gz", log=log, every_seconds=0))
    assert "rows" not in log.lines[0] and "%" not in log.lines[0]
    quiet = ListLog()
    list(logged_progress(iter([b"a\n"]), total_bytes=2, label="in/y.csv", log=quiet, every_seconds=60))
    assert quiet.lines == []


def test_a_long_statement_logs_its_percent_done():
    con = duckdb.connect()
    log = ListLog()
    with statement_progress(con, "landing big.csv", log, rows=40_000_000, every_seconds=0.2):
        con.execute("CREATE TABLE t AS SELECT i, md5(i::VARCHAR) FROM range(40000000) r(i)")
    assert log.lines and all(line.startswith("landing big.csv: ") for line in log.lines), log.lines
    assert any("% (~" in line and "of 40,000,000 rows)" in line for line in log.lines), log.lines
