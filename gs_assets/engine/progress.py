"""Progress of long loads, written to the run's log (the Dagster run view shows it as it comes).

Two sources: the bytes of a file as they are downloaded (chunks, rows so far, percent of the
file), and DuckDB's own progress of the statement that is running (landing or applying a load),
polled from a helper thread. Lines are spaced out in time so a small file logs one line, not many.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterable, Iterator, Optional

from gs_assets.settings import Settings



def default_every_seconds() -> float:
    """Seconds between progress lines: GSDP_PROGRESS_SECONDS, default 5."""
    return Settings.from_env().progress_seconds

_COMPRESSED = (".gz", ".gzip", ".bz2")


def logged_progress(chunks: Iterable[bytes], *, total_bytes: Optional[int], label: str, log,
                    every_seconds: Optional[float] = None) -> Iterator[bytes]:
    """Pass `chunks` through, logging bytes, percent and rows (line breaks; not for compressed
    files) at most every `every_seconds`, and once at the end when the file was big enough to log."""
    every_seconds = default_every_seconds() if every_seconds is None else every_seconds
    count_rows = not label.lower().endswith(_COMPRESSED)
    done = rows = n = 0
    last = start = time.monotonic()
    logged = False
    for chunk in chunks:
        n += 1
        done += len(chunk)
        if count_rows:
            rows += chunk.count(b"\n")
        now = time.monotonic()
        if now - last >= every_seconds:
            log.info(_line(label, n, done, total_bytes, rows if count_rows else None, now - start))
            last, logged = now, True
        yield chunk
    if logged:
        log.info(_line(label, n, done, total_bytes, rows if count_rows else None, time.monotonic() - start) + ", done")


def _line(label: str, n: int, done: int, total: Optional[int], rows: Optional[int], secs: float) -> str:
    pct = f" ({100 * done / total:.0f}%)" if total else ""
    of = f" of {total / 2**20:,.1f}" if total else ""
    rows_txt = f", {max(rows - 1, 0):,} rows so far" if rows is not None else ""
    return f"downloading {label}: chunk {n}, {done / 2**20:,.1f}{of} MiB{pct}{rows_txt}, {secs:.0f} s"


@contextmanager
def statement_progress(con, label: str, log, *, rows: Optional[int] = None,
                       every_seconds: Optional[float] = None) -> Iterator[None]:
    """Log DuckDB's percent-done of the statements run on `con` inside the block (with the row
    estimate when `rows` is known). No-op without a log."""
    if log is None:
        yield
        return
    every_seconds = max(default_every_seconds() if every_seconds is None else every_seconds, 0.2)
    con.execute("SET enable_progress_bar = true")
    con.execute("SET enable_progress_bar_print = false")
    stop = threading.Event()
    start = time.monotonic()

    def poll() -> None:
        while not stop.wait(every_seconds):
            try:
                pct = con.query_progress()
            except Exception:  # noqa: BLE001 - progress is best effort; the load itself reports errors
                return
            if pct is not None and pct >= 0:
                est = f" (~{int(rows * pct / 100):,} of {rows:,} rows)" if rows else ""
                log.info(f"{label}: {pct:.0f}%{est}, {time.monotonic() - start:.0f} s")

    t = threading.Thread(target=poll, name="gsdp-progress", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(timeout=every_seconds + 1)
