"""Progress lines for long loads: per downloaded chunk, and DuckDB's percent of a running statement."""

import threading

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
    """Slow by construction, not by size: each row passes a gate that opens only once a progress
    line was logged, so the statement outlasts a poll on any machine (fast or slow)."""
    con = duckdb.connect()
    logged = threading.Event()

    class GateLog(ListLog):
        def info(self, msg):
            super().info(msg)
            logged.set()

    log = GateLog()

    def gate(x: int) -> int:
        if not logged.wait(120):  # generous: a poll comes every 0.2 s; this only fails a broken reporter
            raise RuntimeError("no progress line was logged while the statement ran")
        return x

    con.create_function("gate", gate, ["BIGINT"], "BIGINT")
    with statement_progress(con, "landing big.csv", log, rows=100_000, every_seconds=0.2):
        assert con.execute("SELECT sum(gate(i)) FROM range(100000) r(i)").fetchone() == (sum(range(100000)),)
    assert log.lines and all(line.startswith("landing big.csv: ") for line in log.lines), log.lines
    assert any("% (~" in line and "of 100,000 rows)" in line for line in log.lines), log.lines


def test_a_statement_that_ends_before_the_first_poll_logs_nothing_and_leaves_no_thread():
    con = duckdb.connect()
    log = ListLog()
    with statement_progress(con, "tiny", log, every_seconds=60):
        con.execute("SELECT 1").fetchall()
    assert log.lines == []
    assert not [t for t in threading.enumerate() if t.name == "gsdp-progress"]
