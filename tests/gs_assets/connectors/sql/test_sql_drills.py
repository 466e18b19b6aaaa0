"""Fault drills of the SQL kind against a real PostgreSQL 15 (tests/sql_servers.py):

- rows committed at the cursor's maximum while a sync reads (airbytehq/airbyte#85918): none lost;
- a transaction in flight while a sync runs, committing a row stamped before rows the sync did
  read: picked up by the next sync, by the oldest open transaction (a login that sees other
  sessions), or by the lookback or the visibility lag (a login that does not);
- kill -9 of `gsdp run JOB` mid-sync, then the job again: every row once (marked `drill`);
- a 2,000,000-row table in bounded memory (marked `slow`);
- and two reader bugs they found: chunks of one load typed differently by Arrow, and the keys
  remembered at one cursor value growing with the rows that share it.

Time is controlled by the timestamps the tests write and by the cursor settings, never by sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from gs_assets.definitions import build_definitions
from gs_assets.instance_config import write_instance_config
from resources.warehouse import DEFAULT_MEMORY_LIMIT
from tests.conftest import REPO
from tests.gs_assets.connectors.sql.sql_harness import SqlHarness, sql_job
from tests.memory import run_and_measure

# Fault drills: the full suite (CI) runs them (the kill -9 one with the drills), the fast lane does not.
pytestmark = pytest.mark.slow

T0 = datetime(2025, 3, 1, 9, 0, 0)
N = 300
MAX = T0 + timedelta(seconds=N)  # the cursor's maximum when the sync starts

OBJECTS = """
custom_objects:
  item__gc:
    fields:
      external_id: {type: string, max_length: 100}
      name: {type: string, max_length: 255}
      quantity: {type: number, decimals: 0}
"""
MAPPINGS = {"id": "external_id", "name": "name", "quantity": "quantity"}


def _job(lookback: int, lag: int):
    return sql_job("items", "item__gc", ["external_id"], MAPPINGS, table="shop.items",
                   cursor={"column": "updated_at", "lookback_seconds": lookback, "visibility_lag_seconds": lag})


class Hooked:
    """A SqlSystem as the reader sees it, with a hook the test runs once the sync has consumed the
    first chunk of rows (its snapshot is open, its first load has committed), and a clock the test
    can move forward (`later`: seconds added to the server's now)."""

    def __init__(self, inner, after_first_chunk=None, later: float = 0):
        self.inner, self.hook, self.later = inner, after_first_chunk, later
        self.chunks = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *exc):
        return self.inner.__exit__(*exc)

    def server_now(self):
        return self.inner.server_now() + timedelta(seconds=self.later)

    def batches(self, sql, params, names, categories):
        for chunk in self.inner.batches(sql, params, names, categories):
            yield chunk
            self.chunks += 1
            if self.chunks == 1 and self.hook is not None:
                self.hook()


class RowsOnly(Hooked):
    """The generic path of a DB-API system (rows from a cursor, converted per chunk), for a PostgreSQL
    that would otherwise read through COPY."""

    def batches(self, sql, params, names, categories):
        from gs_assets.connectors.sql.systems.base import SqlSystem
        return SqlSystem.batches(self, sql, params, names, categories)

    def rows(self, sql, params):
        yield from self.inner.rows(sql, params)


def _items(db, column_type: str = "timestamp") -> None:
    with db.connect() as c:
        c.execute("CREATE SCHEMA shop")
        c.execute(f"CREATE TABLE shop.items (id int PRIMARY KEY, name text, quantity int, updated_at {column_type} NOT NULL)")
        c.execute("INSERT INTO shop.items SELECT g, 'item ' || g, g, %s + g * interval '1 second' "
                  "FROM generate_series(1, %s) g", [T0, N])


# ---------------------------------------------------------------------------- concurrent commit at the maximum

@pytest.mark.parametrize("column_type", ["timestamp", "timestamptz"])
def test_rows_committed_at_the_cursor_max_during_a_sync_are_all_picked_up_next(tmp_path, monkeypatch, pg_database,
                                                                                 column_type):
    """airbytehq/airbyte#85918: rows committed at MAX(updated_at) (and just below it) while a sync
    reads. This sync's snapshot does not see them; its stored cursor is the maximum it read, exactly;
    the next sync reads from that cursor minus the lookback (closed), so it sees every one of them."""
    _items(pg_database, column_type)
    stamp = (lambda d: d.replace(tzinfo=timezone.utc)) if column_type == "timestamptz" else (lambda d: d)
    h = SqlHarness(tmp_path, monkeypatch, pg_database, {"items": _job(lookback=1, lag=0)}, objects_yaml=OBJECTS,
                   connection_options={"fetch_rows": 100, "records_per_load": 100})
    at_max = [0, 1001, 1002, 1003, 1004, 1005]  # key 0 sorts before the key the sync read at the maximum
    just_below = {1011: MAX - timedelta(microseconds=1), 1012: MAX - timedelta(microseconds=1),
                  1013: MAX - timedelta(milliseconds=500), 1014: MAX - timedelta(seconds=1)}

    def commit_concurrently():
        with pg_database.connect() as c, c.transaction():
            for k in at_max:
                c.execute("INSERT INTO shop.items VALUES (%s, %s, 7, %s)", [k, f"late {k}", stamp(MAX)])
            for k, t in just_below.items():
                c.execute("INSERT INTO shop.items VALUES (%s, %s, 7, %s)", [k, f"late {k}", stamp(t)])
            # an existing row updated into the maximum, one below it
            c.execute("UPDATE shop.items SET name = 'moved', updated_at = %s WHERE id IN (5, 6)", [stamp(MAX)])
            c.execute("UPDATE shop.items SET name = 'moved', updated_at = %s WHERE id = 7",
                      [stamp(MAX - timedelta(microseconds=1))])

    from gs_assets.connectors.sql.systems import postgresql
    monkeypatch.setattr(postgresql, "COPY_BLOCK_BYTES", 4096)  # several COPY blocks: the hook runs mid-read
    system = Hooked(h.system(), after_first_chunk=commit_concurrently)
    out = h.sync("items", system=system)
    assert out.error is None, out.error
    assert system.chunks >= 2 and [ld.rows_read for ld in out.loads] == [100, 100, 100]
    assert out.records == N  # its snapshot: none of the concurrent rows
    assert out.cursor_to == stamp(MAX).isoformat()  # exactly as read, never rounded
    runs = h.apply("item__gc")
    assert sum(r.inserted for r in runs) == N and h.count("gs.item__gc") == N

    out, runs = h.run("items")
    # read again from MAX - 1 s (closed): rows 299 and 300, the 10 new rows and rows 5, 6 and 7
    assert (out.mode, out.window_from) == ("incremental", stamp(MAX - timedelta(seconds=1)).isoformat())
    assert out.records == 2 + len(at_max) + len(just_below) + 3
    assert (runs[0].inserted, runs[0].updated, runs[0].unchanged) == (len(at_max) + len(just_below), 3, 2)
    assert h.count("gs.item__gc") == N + len(at_max) + len(just_below)
    assert h.rows("SELECT count(DISTINCT external_id) FROM gs.item__gc")[0][0] == N + len(at_max) + len(just_below)
    late = {str(k) for k in at_max} | {str(k) for k in just_below}
    assert {r[0] for r in h.rows("SELECT external_id FROM gs.item__gc WHERE name LIKE 'late %'")} == late
    assert h.rows("SELECT external_id FROM gs.item__gc WHERE name = 'moved' ORDER BY 1") == [("5",), ("6",), ("7",)]
    out, runs = h.run("items")  # nothing new: the boundary rows only, absorbed by the upsert
    assert runs[0].inserted == runs[0].updated == 0 and h.count("gs.item__gc") == N + len(at_max) + len(just_below)


# ---------------------------------------------------------------------------- a transaction in flight

def _inflight_scenario(db):
    """Rows 1..N long committed; then a writer opens a transaction and inserts row A stamped with its
    now() (the transaction's start, X), and, while A is open, another session commits row B stamped
    with its own now() (Y > X). Returns (writer connection, X, Y)."""
    _items(db, "timestamptz")
    writer = db.connect()
    writer.execute("BEGIN")
    x = writer.execute("INSERT INTO shop.items VALUES (9001, 'in flight', 1, now()) RETURNING updated_at").fetchone()[0]
    with db.connect() as c:
        y = c.execute("INSERT INTO shop.items VALUES (9002, 'committed', 1, now()) RETURNING updated_at").fetchone()[0]
    assert y > x, (x, y)  # premise: B's transaction started after A's
    return writer, x, y


def _ids(h) -> set[str]:
    return {r[0] for r in h.rows("SELECT external_id FROM gs.item__gc")}


def test_superuser_sync_stops_below_an_open_transaction_and_the_next_picks_its_row_up(tmp_path, monkeypatch,
                                                                                         pg_database):
    """The login sees other sessions (a superuser): the upper bound is lowered to the start of the
    oldest open transaction, so B (committed, stamped after A's start) waits with A; with lookback
    and visibility lag both 0 nothing is lost."""
    writer, x, y = _inflight_scenario(pg_database)
    h = SqlHarness(tmp_path, monkeypatch, pg_database, {"items": _job(lookback=0, lag=0)}, objects_yaml=OBJECTS)
    try:
        out, _ = h.run("items")
        assert out.window_to == x.astimezone(timezone.utc).isoformat()  # upper bound: A's transaction start
        assert out.records == N and "9002" not in _ids(h)
        writer.execute("COMMIT")
    finally:
        writer.close()
    out, runs = h.run("items")
    assert (out.mode, out.window_from) == ("incremental", MAX.replace(tzinfo=timezone.utc).isoformat())
    assert out.records == 3 and runs[0].inserted == 2  # row N again, A and B
    assert {"9001", "9002"} <= _ids(h) and h.count("gs.item__gc") == N + 2


def _read_only(db, stats: bool):
    ro = db.read_only_role()
    if stats:
        with db.connect() as c:
            c.execute(f'GRANT pg_read_all_stats TO "{ro.user}"')
    with ro.connect() as c:
        assert c.execute("SELECT pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER')").fetchone()[0] is stats
    return ro


@pytest.mark.parametrize("case", ["pg_read_all_stats", "lookback", "visibility_lag", "neither"])
def test_read_only_login_and_an_open_transaction(tmp_path, monkeypatch, pg_database, case):
    """A read-only login. With pg_read_all_stats it sees other sessions' transaction starts and
    behaves like the superuser. Without it, `inflight_since` sees nothing and the cursor settings must
    cover a transaction in flight: a lookback at least as long as transactions take (the next sync
    reads again below the cursor), or a visibility lag as long (the sync leaves the newest rows for
    later; the test moves the server's clock on by lag + 1 s for the next sync). With neither, the
    row is lost: what the settings are for."""
    writer, x, y = _inflight_scenario(pg_database)
    ro = _read_only(pg_database, stats=case == "pg_read_all_stats")
    lookback, lag = {"pg_read_all_stats": (0, 0), "lookback": (300, 0), "visibility_lag": (0, 300),
                     "neither": (0, 0)}[case]
    h = SqlHarness(tmp_path, monkeypatch, ro, {"items": _job(lookback=lookback, lag=lag)}, objects_yaml=OBJECTS)
    try:
        out, _ = h.run("items")
        if case == "pg_read_all_stats":
            assert out.window_to == x.astimezone(timezone.utc).isoformat()
        seen_b = "9002" in _ids(h)
        assert seen_b is (case in ("lookback", "neither"))  # the upper bound is now: B is read, the cursor passes A
        writer.execute("COMMIT")
    finally:
        writer.close()
    if case == "lookback":
        assert y - x < timedelta(seconds=lookback)  # premise: the lookback covers A's transaction
    sync2 = Hooked(h.system(), later=lag + 1 if case == "visibility_lag" else 0)
    out = h.sync("items", system=sync2)
    assert out.error is None, out.error
    h.apply("item__gc")
    if case == "neither":
        assert "9001" not in _ids(h) and h.count("gs.item__gc") == N + 1
    else:
        assert {"9001", "9002"} <= _ids(h) and h.count("gs.item__gc") == N + 2


# ---------------------------------------------------------------------------- chunks of one load typed differently

def test_chunks_of_one_load_whose_values_arrow_types_differently_land_together(tmp_path, monkeypatch, pg_database):
    """Each fetched chunk becomes an Arrow batch typed from its values: a numeric column's decimal
    precision follows the widest value of the chunk (decimal128(3, 2), then (6, 2)), and a column
    that is NULL throughout a chunk has no type there (text). Several such chunks make one load; it
    must land them all (it failed with ArrowInvalid "Schema at index 1 was different")."""
    with pg_database.connect() as c:
        c.execute("CREATE SCHEMA shop")
        c.execute("CREATE TABLE shop.items (id int PRIMARY KEY, name text, quantity int, price numeric(12,2), "
                  "updated_at timestamp NOT NULL)")
        c.execute("INSERT INTO shop.items SELECT g, 'item ' || g, CASE WHEN g > 100 THEN g END, "
                  "CASE WHEN g <= 100 THEN 1.25 ELSE 1234.5 END, %s + g * interval '1 second' "
                  "FROM generate_series(1, 300) g", [T0])
    job = sql_job("items", "item__gc", ["external_id"], {**MAPPINGS, "price": "price"}, table="shop.items",
                  cursor={"column": "updated_at", "lookback_seconds": 0, "visibility_lag_seconds": 0})
    objects = OBJECTS + "      price: {type: currency}\n"
    h = SqlHarness(tmp_path, monkeypatch, pg_database, {"items": job}, objects_yaml=objects,
                   connection_options={"fetch_rows": 100, "records_per_load": 1000})
    out = h.sync("items", system=RowsOnly(h.system()))
    runs = [r for r in h.apply("item__gc") if r.job == "items"]
    assert (out.pages, out.records, len(out.loads)) == (3, 300, 1)
    assert (runs[0].inserted, runs[0].rejected) == (300, 0)
    assert h.rows("SELECT count(quantity), min(price), max(price) FROM gs.item__gc") == [(200, 1.25, 1234.5)]


# ---------------------------------------------------------------------------- many rows at one cursor value

def test_keys_remembered_at_one_cursor_value_are_bounded(tmp_path, monkeypatch, pg_database):
    """A bulk update stamps 12,000 rows with one updated_at. The sync remembers keys seen at its last
    cursor value (the cursor rule), but at most 10,000 of them: the set and the state written with
    every load (gs_ops.syncs.cursor_to) must not grow with the rows that share a value (2,000,000
    such rows held 2,000,000 keys in memory and wrote 20 MB of JSON per load). Nothing is lost: the
    next sync reads the whole boundary value again (closed lower bound) and the upsert absorbs it."""
    with pg_database.connect() as c:
        c.execute("CREATE SCHEMA shop")
        c.execute("CREATE TABLE shop.items (id int PRIMARY KEY, name text, quantity int, updated_at timestamp NOT NULL)")
        c.execute("INSERT INTO shop.items SELECT g, 'item ' || g, g, %s FROM generate_series(1, 12000) g", [MAX])
    h = SqlHarness(tmp_path, monkeypatch, pg_database, {"items": _job(lookback=0, lag=0)}, objects_yaml=OBJECTS,
                   connection_options={"fetch_rows": 2000, "records_per_load": 4000})
    out, runs = h.run("items")
    assert (out.records, len(out.loads), sum(r.inserted for r in runs)) == (12000, 3, 12000)
    states = h.rows("SELECT cursor_to->>'cursor', json_array_length(cursor_to->'pks') FROM gs_ops.syncs "
                    "ORDER BY synced_at")
    assert states == [(MAX.isoformat(), 4000), (MAX.isoformat(), 8000), (MAX.isoformat(), 10000)]
    out, runs = h.run("items")
    assert (out.window_from, out.records, sum(r.unchanged for r in runs)) == (MAX.isoformat(), 12000, 12000)
    assert h.count("gs.item__gc") == 12000


# ---------------------------------------------------------------------------- kill -9 mid-sync, then resume

KILL_ROWS, KILL_PER_LOAD = 20_000, 1_000


def _syncs(warehouse) -> list[tuple]:
    """gs_ops.syncs as another process sees it: (records, cursor) per committed load, in order."""
    import duckdb
    if not Path(warehouse.database).exists():
        return []
    with warehouse.read() as con:
        try:
            return con.execute("SELECT records, cursor_to->>'cursor' FROM gs_ops.syncs ORDER BY synced_at").fetchall()
        except duckdb.CatalogException:  # the run has not made the ledger yet
            return []


@pytest.mark.drill
@pytest.mark.timeout(900)
def test_gsdp_run_killed_mid_sync_resumes_with_every_row_exactly_once(tmp_path, monkeypatch, pg_database):
    """`gsdp run items` (a subprocess) over 20,000 rows in loads of 1,000 is SIGKILLed once at least
    one load has committed. The test holds a read-only connection to the warehouse from the moment
    it sees a committed load until the kill: the run cannot commit another load meanwhile (DuckDB's
    file lock; writers wait for it), so the kill lands mid-sync with exactly the loads the test saw.
    The recovery sensor fails the dead run (freeing its pool slot, as in production); the job run
    again resumes from the stored cursor and the object holds every row exactly once."""
    with pg_database.connect() as c:
        c.execute("CREATE SCHEMA shop")
        c.execute("CREATE TABLE shop.items (id int PRIMARY KEY, name text, quantity int, updated_at timestamp NOT NULL)")
        c.execute("INSERT INTO shop.items SELECT g, 'item ' || g, g %% 1000, %s + g * interval '1 second' "
                  "FROM generate_series(1, %s) g", [T0, KILL_ROWS])
    h = SqlHarness(tmp_path, monkeypatch, pg_database, {"items": _job(lookback=0, lag=0)}, objects_yaml=OBJECTS,
                   connection_options={"fetch_rows": KILL_PER_LOAD, "records_per_load": KILL_PER_LOAD})
    home = tmp_path / "dagster_home"
    write_instance_config(home)
    env = {**os.environ, "DAGSTER_HOME": str(home), "GSDP_CONFIG_DIR": str(tmp_path / "config"),
           "GSDP_WAREHOUSE": h.warehouse.database, "GSDP_DB_PASSWORD": pg_database.password}
    gsdp = [str(Path(sys.executable).parent / "gsdp"), "run", "items"]

    proc = subprocess.Popen(gsdp, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    seen: list[tuple] = []
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:  # one quick attempt at a time (no backoff): the run commits a load every few hundred ms
                con = duckdb.connect(h.warehouse.database, read_only=True)
            except duckdb.IOException:  # the run holds the file (or has not made it yet)
                time.sleep(0.005)
                continue
            try:
                try:
                    seen = con.execute("SELECT records, cursor_to->>'cursor' FROM gs_ops.syncs "
                                       "ORDER BY synced_at").fetchall()
                except duckdb.CatalogException:  # the ledger not made yet
                    seen = []
                if seen:  # hold the lock: no further load can commit; kill the run now
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=60)
                    break
            finally:
                con.close()
            time.sleep(0.005)
        else:
            output = proc.stdout.read().decode(errors="replace") if proc.poll() is not None else ""
            pytest.fail(f"no load of the sync committed within 300 s (exit {proc.returncode}):\n{output[-3000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed_loads = len(seen)
    assert 1 <= killed_loads < KILL_ROWS // KILL_PER_LOAD, seen  # killed mid-sync
    assert _syncs(h.warehouse) == seen  # nothing committed after the test saw it
    assert all(r[0] == KILL_PER_LOAD for r in seen)
    assert h.count("gs.item__gc") == 0  # the object step never ran

    # The platform's recovery sensor fails the dead run and frees its pool slot.
    instance = dg.DagsterInstance.from_config(str(home))
    recovery = build_definitions(h.cfg, warehouse=h.warehouse.database).resolve_sensor_def("run_recovery_sensor")
    recovery(dg.build_sensor_context(instance=instance))
    assert instance.get_runs(limit=1)[0].status == dg.DagsterRunStatus.FAILURE
    assert not instance.event_log_storage.get_concurrency_run_ids()

    t0 = time.monotonic()
    p = subprocess.run(gsdp, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    rerun_s = time.monotonic() - t0
    assert p.returncode == 0, p.stdout + p.stderr
    syncs = _syncs(h.warehouse)
    resumed = syncs[killed_loads:]
    # resumed from the stored cursor (closed lower bound: its row once more), every later row once
    assert sum(r[0] for r in resumed) == KILL_ROWS - killed_loads * KILL_PER_LOAD + 1
    assert syncs[-1][1] == (T0 + timedelta(seconds=KILL_ROWS)).isoformat()
    assert h.rows("SELECT count(*), count(DISTINCT external_id), min(external_id::INT), max(external_id::INT) "
                  "FROM gs.item__gc") == [(KILL_ROWS, KILL_ROWS, 1, KILL_ROWS)]
    runs = h.rows("SELECT sum(rows_read), sum(inserted), sum(updated), sum(unchanged), sum(rejected) "
                  "FROM gs_ops.job_runs WHERE job = 'items'")
    assert runs == [(KILL_ROWS + 1, KILL_ROWS, 0, 1, 0)], runs
    print(f"killed after {killed_loads} of {KILL_ROWS // KILL_PER_LOAD} loads; the rerun took {rerun_s:.1f} s "
          f"and read {sum(r[0] for r in resumed)} rows")


# ---------------------------------------------------------------------------- 2,000,000 rows, bounded memory

BIG_OBJECTS = """
custom_objects:
  ledger__gc:
    fields:
      external_id: {type: string, max_length: 100}
      name: {type: string, max_length: 255}
      quantity: {type: number, decimals: 0}
      amount: {type: currency}
      active: {type: boolean}
      start_date: {type: date}
      changed_at: {type: datetime}
"""
BIG_MAPPINGS = {"id": "external_id", "name": "name", "quantity": "quantity", "amount": "amount", "active": "active",
                "starts_on": "start_date", "updated_at": "changed_at"}

# The child: one sync of the table through the reader (every records_per_load rows a load) and the
# upsert of every load into the object, as a Dagster run's two steps do; prints what it did.
_SYNC = """
import json, sys, time
import gs_assets.connectors.registry  # noqa: F401 - the connector kinds
from gs_assets.config.loader import load_platform_config
from gs_assets.connectors.sql.reader import sync_dataset
from gs_assets.connectors.sql.resource import open_system
from gs_assets.engine.pipeline import apply_pending
from gs_assets.engine.warehouse_setup import sync_object_tables
from resources.warehouse import Warehouse

cfg = load_platform_config(sys.argv[1])
wh = Warehouse(database=sys.argv[2])
with wh.connect() as con:
    sync_object_tables(con, cfg.model)
base_peak = _peak_kib()
t0 = time.monotonic()
out = sync_dataset(wh, cfg, open_system("db", cfg.connections["db"]), connection="db", source_object="ledger")
assert out.error is None, out.error
t1 = time.monotonic()
sync_peak = _peak_kib()
runs = apply_pending(wh, cfg, "ledger__gc")
t2 = time.monotonic()
with wh.read() as con:
    count, keys = con.execute("SELECT count(*), count(DISTINCT external_id) FROM gs.ledger__gc").fetchone()
print(json.dumps({"records": out.records, "loads": len(out.loads), "inserted": sum(r.inserted for r in runs),
                  "rejected": sum(r.rejected for r in runs), "count": count, "keys": keys,
                  "sync_s": round(t1 - t0, 1), "apply_s": round(t2 - t1, 1), "base_peak_mib": round(base_peak / 1024),
                  "sync_peak_mib": round(sync_peak / 1024)}))
"""


def _big_table(db, name: str, rows: int, one_stamp: bool = False) -> None:
    with db.connect() as c:
        c.execute(f"CREATE TABLE {name} (id bigint PRIMARY KEY, name text, quantity int, amount numeric(12,2), "
                  "active boolean, starts_on date, note text, updated_at timestamptz NOT NULL)")
        c.execute(f"INSERT INTO {name} SELECT g, 'Customer ' || g, g %% 5000, (g %% 100000) * 1.25, g %% 3 = 0, "
                  "date '2020-01-01' + (g %% 2000), md5(g::text), %s + g * %s "
                  "FROM generate_series(1, %s) g", [T0, timedelta(milliseconds=0 if one_stamp else 1), rows])
        c.execute(f"ANALYZE {name}")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_two_million_rows_sync_into_an_object_in_bounded_memory(tmp_path, monkeypatch, pg_database):
    """A 2,000,000-row table (8 columns: bigint, text, int, numeric, boolean, date, text, timestamptz)
    synced through the reader (server-side cursor, loads of `records_per_load` rows) and upserted into
    an object, in a fresh process whose peak RSS is measured; the same for 200,000 rows, and for
    2,000,000 rows that all share one updated_at (a bulk update). The peak does not follow the table's
    size: the reader holds one load at a time and DuckDB works under its memory_limit (600 MB),
    spilling past it. The figures are printed (run with -s)."""
    figures = {}
    for case, rows in (("distinct", 200_000), ("distinct", 2_000_000), ("one value", 2_000_000)):
        table = f"ledger_{rows}_{case[0]}"
        _big_table(pg_database, table, rows, one_stamp=case == "one value")
        job = sql_job("ledger", "ledger__gc", ["external_id"], BIG_MAPPINGS, table=table,
                      cursor={"column": "updated_at", "lookback_seconds": 0, "visibility_lag_seconds": 0})
        run_dir = tmp_path / table
        h = SqlHarness(run_dir, monkeypatch, pg_database, {"ledger": job}, objects_yaml=BIG_OBJECTS)
        monkeypatch.setenv("GSDP_DB_PASSWORD", pg_database.password)
        t0 = time.monotonic()
        printed, peak = run_and_measure(_SYNC, str(run_dir / "config"), h.warehouse.database)
        elapsed = time.monotonic() - t0
        res = json.loads(printed.splitlines()[-1])
        assert res["records"] == res["inserted"] == res["count"] == res["keys"] == rows and res["rejected"] == 0, res
        figures[(case, rows)] = {**res, "peak_mib": round(peak), "process_s": round(elapsed, 1)}
        print(f"{rows:,} rows ({'one updated_at for all' if case == 'one value' else 'distinct updated_at'}): peak RSS {peak:.0f} MiB (imports and setup: "
              f"{res['base_peak_mib']} MiB; after the sync, before the upsert: {res['sync_peak_mib']} MiB); "
              f"{res['loads']} loads; sync {res['sync_s']} s, upsert {res['apply_s']} s, process {elapsed:.1f} s "
              f"({rows / res['sync_s']:,.0f} rows/s through the reader)")
    small, big = figures[("distinct", 200_000)], figures[("distinct", 2_000_000)]
    tied = figures[("one value", 2_000_000)]
    # The reader holds one load (records_per_load rows, 200,000 by default) at a time: the peak after the
    # sync does not grow with the table (2,000,000 rows as Python tuples alone would add about 1 GiB).
    assert big["sync_peak_mib"] < small["sync_peak_mib"] * 1.2, figures
    # Nor with the rows that share the last cursor value (keys remembered there: at most BOUNDARY_KEYS).
    assert tied["sync_peak_mib"] < small["sync_peak_mib"] * 1.2, figures
    # The upsert runs in DuckDB under its memory_limit (its buffer pool fills up to it, then spills): the
    # bound is the process after the sync plus that limit, whatever the table's size.
    limit_mib = int(DEFAULT_MEMORY_LIMIT.removesuffix("MB")) * 1000**2 / 1024**2
    assert max(big["peak_mib"], tied["peak_mib"]) < small["sync_peak_mib"] + limit_mib, figures
    # 10x the rows, nowhere near 10x the memory
    assert max(big["peak_mib"], tied["peak_mib"]) < 3 * small["peak_mib"], figures
