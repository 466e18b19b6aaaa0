"""Benchmark: a PostgreSQL table synced into Subscription through the whole SQL path vs PostgreSQL's
own `COPY (SELECT ...) TO STDOUT` of the same rows, measured side by side.

A local PostgreSQL 15 (gs_assets/demo/local_databases.py; its root under the benchmark's temp dir)
holds `billing.subscriptions` (the demo's table, gs_assets/demo/billing_db.py) with `--rows` rows
(default 5,000,000; 10,000 companies' subscriptions, `updated_at` growing with the key, an index on
(updated_at, subscription_id)), read by a read-only login. Then, N times (default 1, the median is
reported), each in a fresh process, back to back:
  floor:  psycopg `cursor.copy` of `COPY (SELECT <the sync's columns> FROM billing.subscriptions
          WHERE updated_at < now() - 5 s ORDER BY updated_at, subscription_id) TO STDOUT` in a
          REPEATABLE READ, READ ONLY transaction, the bytes read and discarded: what PostgreSQL
          serves at best;
  duckdb: the same COPY as CSV into a file, then DuckDB loading it (`CREATE TABLE AS SELECT * FROM
          read_csv(...)`): a second floor, rows from PostgreSQL into a DuckDB table with no engine;
  sync:   the Dagster run of the `billing_subscriptions` job (latest partition, empty ledger: a full
          sync): describe, the snapshot, a server-side cursor fetched 10,000 rows at a time into
          Arrow batches, landed in loads of 200,000 (`records_per_load`), map, lookup of the company
          by its external id (10,000 companies in a template warehouse copied before every run),
          validation, inserts into Subscription, ledger and run log.
Prints rows/s of each, the ratios of the sync to both floors and the sync process's peak RSS.

    ./dev bench sql                        # 5,000,000 rows, 1 run
    ./dev bench sql --rows 200000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONNECTION = "billing_db"
JOB = "billing_subscriptions"
N_COMPANIES = 10_000
READER = "bench_reader"
CONNECTIONS = """
connections:
  {connection}:
    type: sql
    system: postgresql
    host: 127.0.0.1
    port: {port}
    database: {database}
    user: {user}
    tls: {{mode: disable}}
    records_per_load: {records_per_load}
"""
JOBS = f"""
jobs:
  {JOB}:
    connection: {CONNECTION}
    source:
      object: subscriptions
      table: billing.subscriptions
      primary_key: [subscription_id]
      cursor: {{column: updated_at}}
      soft_delete: {{column: is_deleted}}
    destination: subscription
    operation: upsert
    identifiers: [external_id]
    deletes: {{policy: delete}}
    mappings:
      - {{source: subscription_id, target: external_id}}
      - {{source: product, target: product}}
      - {{source: quantity, target: quantity}}
      - {{source: unit_price, target: unit_price}}
      - {{source: mrr, target: mrr}}
      - {{source: arr, target: arr}}
      - {{source: start_date, target: start_date}}
      - {{source: end_date, target: end_date}}
      - {{source: status, target: status}}
      - {{source: billing_period, target: billing_period}}
    lookups:
      - {{target: company_id, object: company, match: [{{source: company_external_id, field: external_id}}]}}
"""
# The columns the sync reads (the mapped ones, the lookup's, the key, cursor and soft-delete column), in its order.
SELECT = ("SELECT d.subscription_id, d.company_external_id, d.product, d.quantity, d.unit_price, d.mrr, d.arr, "
          "d.start_date, d.end_date, d.status, d.billing_period, d.updated_at, d.is_deleted "
          "FROM billing.subscriptions AS d WHERE d.updated_at < now() - interval '5 seconds' "
          "AND d.updated_at IS NOT NULL ORDER BY d.updated_at, d.subscription_id")


# ---------------------------------------------------------------------------- the table

def fill(db, rows: int) -> None:
    """The demo's table with `rows` generated rows, updated_at growing with the key (one a millisecond,
    ending an hour ago), analysed and vacuumed."""
    from gs_assets.demo.billing_db import SUBSCRIPTIONS_DDL
    with db.connect() as con:
        for stmt in SUBSCRIPTIONS_DDL[:2]:
            con.execute(stmt)
        con.execute(f"""
            INSERT INTO billing.subscriptions
            SELECT 'SUB-' || lpad(g::text, 9, '0'), 'A' || lpad((g % {N_COMPANIES})::text, 6, '0'),
                   (ARRAY['Platform', 'Analytics Add-on', 'Premium Support'])[1 + g % 3],
                   1 + g % 50, 10 + (g % 90), (1 + g % 50) * (10 + (g % 90)), 12 * (1 + g % 50) * (10 + (g % 90)),
                   date '2024-01-01' + (g % 700), CASE WHEN g % 5 = 0 THEN date '2027-01-01' + (g % 365) END,
                   (ARRAY['Active', 'Active', 'Active', 'Cancelled', 'Expired', 'Pending'])[1 + g % 6],
                   (ARRAY['Monthly', 'Quarterly', 'Annual'])[1 + g % 3],
                   now() - interval '1 hour' - ({rows} - g) * interval '1 millisecond', false
            FROM generate_series(1, {rows}) g""")
        for stmt in SUBSCRIPTIONS_DDL[2:]:
            con.execute(stmt)
        con.execute("VACUUM ANALYZE billing.subscriptions")


def template_warehouse(path: str, cfg_dir: Path) -> None:
    """Subscription's table and 10,000 companies (A000000..A009999) for the lookup."""
    import gs_assets.connectors.registry  # noqa: F401  (registers the connector kinds, sql among them)
    from gs_assets.config.loader import load_platform_config
    from gs_assets.engine.warehouse_setup import sync_object_tables
    from resources.warehouse import Warehouse
    cfg = load_platform_config(cfg_dir)
    with Warehouse(database=path).connect() as con:
        sync_object_tables(con, cfg.model)
        con.execute(f"INSERT INTO gs.company (gsid, name, external_id, created_at, modified_at) "
                    f"SELECT uuid()::VARCHAR, 'Company ' || c, printf('A%06d', c), now(), now() "
                    f"FROM range({N_COMPANIES}) t(c)")


# ---------------------------------------------------------------------------- measurements (fresh processes)

def child(mode: str, args: dict, env: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", mode, json.dumps(args)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, **env})
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _reader_connection():
    import psycopg

    import gs_assets.connectors.registry  # noqa: F401
    from gs_assets.config.loader import load_platform_config
    conn = load_platform_config(Path(os.environ["GSDP_CONFIG_DIR"])).connections[CONNECTION]
    db = psycopg.connect(host=conn.host, port=conn.server_port, dbname=conn.database, user=conn.user,
                         password=os.environ[f"GSDP_{CONNECTION.upper()}_PASSWORD"], sslmode="disable",
                         options="-c TimeZone=UTC")
    db.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    db.read_only = True
    return db


def run_child(mode: str, args: dict) -> None:
    out: dict = {}
    t0 = time.perf_counter()
    if mode == "floor":
        with _reader_connection() as db, db.cursor() as cur:
            t0 = time.perf_counter()  # logged in: from here on what PostgreSQL serves
            size = rows = 0
            with cur.copy(f"COPY ({SELECT}) TO STDOUT") as copy:
                for data in copy:  # discarded
                    size += len(data)
                    rows += bytes(data).count(b"\n")
        out.update(rows=rows, mb=size / 1e6)
    elif mode == "duckdb":
        import duckdb
        csv = Path(args["tmp"]) / "copy.csv"
        with _reader_connection() as db, db.cursor() as cur, open(csv, "wb") as fh:
            t0 = time.perf_counter()
            with cur.copy(f"COPY ({SELECT}) TO STDOUT (FORMAT csv)") as copy:
                for data in copy:
                    fh.write(data)
        out["copy_seconds"] = time.perf_counter() - t0
        con = duckdb.connect(str(Path(args["tmp"]) / "floor.duckdb"))
        con.execute(f"CREATE TABLE subscriptions AS SELECT * FROM read_csv('{csv}', header = false, columns = {{"
                    "'subscription_id': 'VARCHAR', 'company_external_id': 'VARCHAR', 'product': 'VARCHAR', "
                    "'quantity': 'INTEGER', 'unit_price': 'DECIMAL(12,2)', 'mrr': 'DECIMAL(12,2)', "
                    "'arr': 'DECIMAL(12,2)', 'start_date': 'DATE', 'end_date': 'DATE', 'status': 'VARCHAR', "
                    "'billing_period': 'VARCHAR', 'updated_at': 'TIMESTAMPTZ', 'is_deleted': 'BOOLEAN'})")
        out["rows"] = con.execute("SELECT count(*) FROM subscriptions").fetchone()[0]
        con.close()
        os.unlink(csv)
        os.unlink(Path(args["tmp"]) / "floor.duckdb")
    elif mode == "sync":
        import dagster as dg
        import duckdb

        import gs_assets.connectors.registry  # noqa: F401  (registers the connector kinds)
        from gs_assets.config.loader import load_platform_config
        from gs_assets.connectors.incremental import current_key
        from gs_assets.dagster_jobs import job_asset_job_name
        from gs_assets.definitions import build_definitions
        cfg = load_platform_config(Path(os.environ["GSDP_CONFIG_DIR"]))
        defs = build_definitions(cfg)
        instance = dg.DagsterInstance.ephemeral()
        spent = {"fetch": 0.0, "land": 0.0}
        _time_fetches_and_landing(spent)
        t0 = time.perf_counter()
        res = defs.resolve_job_def(job_asset_job_name(JOB)).execute_in_process(
            partition_key=current_key(cfg.connections[CONNECTION]), instance=instance, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        out["seconds"] = time.perf_counter() - t0
        if not res.success:
            from gs_assets.run_report import report_run
            raise SystemExit(f"{JOB} failed: {report_run(instance, res)}")
        out["steps"] = _step_seconds(instance, res.run_id)
        out.update(spent)
        con = duckdb.connect(os.environ["GSDP_WAREHOUSE"], read_only=True)
        out["result"] = con.execute(
            "SELECT count(*), sum(rows_read), sum(inserted), sum(updated), sum(rejected), "
            "string_agg(DISTINCT status, ',') FROM gs_ops.job_runs WHERE job = ?", [JOB]).fetchone()
        out["subscription"] = con.execute("SELECT count(*), count(company_id) FROM gs.subscription").fetchone()
        con.close()
    out.setdefault("seconds", time.perf_counter() - t0)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out, default=str))


def _time_fetches_and_landing(spent: dict) -> None:
    """Where the source step's time goes: add the time spent in the driver (psycopg fetching rows from
    the server-side cursor) and landing loads to `spent`; the rest of the step is turning the rows into
    Arrow text columns and tracking the cursor (reader._sync)."""
    from gs_assets.connectors.sql import reader
    from gs_assets.connectors.sql.systems.postgresql import PostgreSQL
    rows, land_records = PostgreSQL.rows, reader.land_records

    def timed_rows(self, *a, **kw):
        chunks = rows(self, *a, **kw)
        while True:
            t = time.perf_counter()
            try:
                item = next(chunks)
            except StopIteration:
                return
            finally:
                spent["fetch"] += time.perf_counter() - t
            yield item

    def timed_land(*a, **kw):
        t = time.perf_counter()
        try:
            return land_records(*a, **kw)
        finally:
            spent["land"] += time.perf_counter() - t

    PostgreSQL.rows, reader.land_records = timed_rows, timed_land


def _step_seconds(instance, run_id: str) -> dict:
    steps: dict[str, float] = {}
    for e in instance.all_logs(run_id):
        de = e.dagster_event
        if de is None or not de.step_key:
            continue
        if de.event_type_value == "STEP_START":
            steps[de.step_key] = -e.timestamp
        elif de.event_type_value == "STEP_SUCCESS":
            steps[de.step_key] += e.timestamp
    return steps


# ---------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_000_000, help="rows in the PostgreSQL table (default 5000000)")
    ap.add_argument("--records-per-load", type=int, default=200_000,
                    help="the connection's records_per_load (default 200000, the default of every connection)")
    ap.add_argument("--runs", type=int, default=1, help="measurements of each; the median is reported (default 1)")
    ap.add_argument("--work", default=str(ROOT / "data" / "bench_sql"),
                    help="work folder (the PostgreSQL server's user must be able to traverse it when run as root)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        run_child(a.child[0], json.loads(a.child[1]))
        return 0

    from gs_assets.demo.local_databases import LocalPostgres
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    tmp.chmod(0o755)  # the server runs as the postgres user when we are root: it must reach its root below
    server = LocalPostgres(tmp / "postgres")
    floors, duck, syncs = [], [], []
    try:
        t0 = time.perf_counter()
        superuser = server.start()
        db = server.create_database("bench")
        print(f"PostgreSQL on {db.host}:{db.port} (root {server.root}); filling billing.subscriptions with "
              f"{a.rows:,} rows...", flush=True)
        fill(db, a.rows)
        reader = server.create_role(READER, database="bench", read_only=True)
        with db.connect() as con:
            mb = con.execute("SELECT pg_total_relation_size('billing.subscriptions')").fetchone()[0] / 1e6
        print(f"  ready in {time.perf_counter() - t0:.1f} s (table and index {mb:,.0f} MB)", flush=True)
        cfg_dir = tmp / "config"
        cfg_dir.mkdir()
        (cfg_dir / "connections.yaml").write_text(textwrap.dedent(CONNECTIONS.format(
            connection=CONNECTION, port=reader.port, database=reader.database, user=reader.user,
            records_per_load=a.records_per_load)))
        (cfg_dir / "jobs").mkdir()
        (cfg_dir / "jobs" / "billing.yaml").write_text(textwrap.dedent(JOBS))
        template = str(tmp / "template.duckdb")
        template_warehouse(template, cfg_dir)
        base = {"GSDP_CONFIG_DIR": str(cfg_dir), f"GSDP_{CONNECTION.upper()}_PASSWORD": reader.password}
        for i in range(a.runs):
            floor = child("floor", {}, base)
            assert floor["rows"] == a.rows, floor
            dk = child("duckdb", {"tmp": str(tmp)}, base)
            assert dk["rows"] == a.rows, dk
            wh = str(tmp / f"run{i}.duckdb")
            shutil.copy(template, wh)
            sync = child("sync", {}, {**base, "GSDP_WAREHOUSE": wh})
            os.unlink(wh)
            floors.append(floor)
            duck.append(dk)
            syncs.append(sync)
            print(f"  run {i + 1}: COPY {floor['seconds']:.2f} s ({a.rows / floor['seconds']:,.0f} rows/s, "
                  f"{floor['mb']:,.0f} MB); COPY -> DuckDB {dk['seconds']:.2f} s (COPY to CSV {dk['copy_seconds']:.2f} s); "
                  f"sync {sync['seconds']:.2f} s ({a.rows / sync['seconds']:,.0f} rows/s, peak RSS "
                  f"{sync['peak_rss_mib']:.0f} MiB); job runs {sync['result']}; subscription (rows, company) "
                  f"{sync['subscription']}", flush=True)
            print("         sync steps (s): " + ", ".join(f"{k} {v:.2f}" for k, v in sync["steps"].items())
                  + f"; in the source step: fetching rows (psycopg) {sync['fetch']:.2f}, landing {sync['land']:.2f}",
                  flush=True)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    f_s = statistics.median(f["seconds"] for f in floors)
    d_s = statistics.median(d["seconds"] for d in duck)
    s_s = statistics.median(s["seconds"] for s in syncs)
    rss = statistics.median(s["peak_rss_mib"] for s in syncs)
    r_copy = statistics.median(s["seconds"] / f["seconds"] for f, s in zip(floors, syncs))
    r_duck = statistics.median(s["seconds"] / d["seconds"] for d, s in zip(duck, syncs))
    runs, read, ins, upd, rej, status = syncs[-1]["result"]
    print()
    print(f"median of {a.runs} run(s), {a.rows:,} PostgreSQL rows -> Subscription, records_per_load "
          f"{a.records_per_load:,} (ratios: the median of each run's, floors and sync back to back):")
    print("| rows | COPY s | COPY rows/s | COPY->DuckDB s | COPY->DuckDB rows/s | sync s | sync rows/s | "
          "sync/COPY | sync/(COPY->DuckDB) | sync peak RSS MiB | result |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print(f"| {a.rows:,} | {f_s:.2f} | {a.rows / f_s:,.0f} | {d_s:.2f} | {a.rows / d_s:,.0f} | {s_s:.2f} | "
          f"{a.rows / s_s:,.0f} | {r_copy:.2f}x | {r_duck:.2f}x | {rss:.0f} | "
          f"{status}: {runs} loads, {ins:,} ins, {upd:,} upd, {rej:,} rej |")
    med = {k: statistics.median(s["steps"].get(k, 0.0) for s in syncs) for k in syncs[0]["steps"]}
    print("median sync step seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in med.items())
          + f"; in the source step: fetching rows (psycopg) {statistics.median(s['fetch'] for s in syncs):.2f}, "
          f"landing {statistics.median(s['land'] for s in syncs):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
