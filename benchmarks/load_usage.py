"""Benchmark: a usage CSV through the real job path vs DuckDB loading the same file alone.

For each size: generate the file (account id, user email, date, feature from 40 values, count,
minutes) and 50k companies; seed Company and half of the Usage keys; upload the file to a local
S3 server (moto); then, each in a fresh process, measure
  floor: DuckDB `CREATE TABLE AS SELECT * FROM read_csv(...)` from local disk, and
  job:   the Dagster run of the usage job (S3 download -> land -> map -> lookup company by
         external id -> validate -> upsert into company_usage holding half the keys).
Prints wall time, rows/s, peak RSS and the ratio to the floor. Also times one sensor tick over
a bucket holding 20k already-loaded keys plus 10 new ones.

    ./dev bench                 # 1M and 5M rows
    ./dev bench --sizes 20M     # the 20M-row memory check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_COMPANIES = 50_000
N_FEATURES = 40

JOBS = """
connections:
  bench: {type: s3, bucket: bench}
jobs:
  companies:
    connection: bench
    source: {object: companies, prefix: in/, file_name: "companies.csv", match: equals, archive_prefix: ""}
    destination: company
    operation: upsert
    identifiers: [external_id]
    mappings:
      - {source: Account ID, target: external_id}
      - {source: Name, target: name}
  usage:
    connection: bench
    source: {object: usage, prefix: in/, file_name: "usage_", match: starts_with, archive_prefix: "", listing: start_after}
    destination: company_usage
    operation: upsert
    identifiers: [company_id, usage_date, feature]
    mappings:
      - {source: Date, target: usage_date}
      - {source: Feature, target: feature}
      - {source: Count, target: event_count}
      - {source: Minutes, target: minutes}
    lookups:
      - target: company_id
        object: company
        match: [{source: Account ID, field: external_id}]
"""


def parse_size(s: str) -> int:
    s = s.strip().upper()
    mult = {"K": 1_000, "M": 1_000_000}.get(s[-1], 1)
    return int(float(s[:-1] if s[-1] in "KM" else s) * mult)


def generate(work: Path, rows: int) -> Path:
    import duckdb
    path = work / f"usage_{rows}.csv"
    if path.exists():
        return path
    per_company = max(1, rows // N_COMPANIES)
    con = duckdb.connect()
    # Unique (account, date, feature): each company gets `per_company` (date, feature) slots.
    con.execute(f"""
        COPY (
          SELECT printf('A%06d', c) AS "Account ID",
                 printf('user%d@customer%06d.com', (s * 7 + c) % 25, c) AS "User Email",
                 strftime(DATE '2026-01-01' + CAST(s // {N_FEATURES} AS INTEGER), '%Y-%m-%d') AS "Date",
                 'feature_' || (s % {N_FEATURES}) AS "Feature",
                 (hash(c, s) % 500)::INTEGER AS "Count",
                 round((hash(s, c) % 100000) / 100.0, 2) AS "Minutes"
          FROM range({N_COMPANIES}) t(c), range({per_company}) u(s)
          LIMIT {rows}
        ) TO '{path}' (HEADER, DELIMITER ',')""")
    return path


def child(mode: str, args: dict) -> dict:
    """Run one measurement in a fresh process; returns its JSON line."""
    proc = subprocess.run([sys.executable, __file__, "--child", mode, json.dumps(args)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ})
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_child(mode: str, args: dict) -> None:
    t0 = time.perf_counter()
    out: dict = {}
    if mode == "floor":
        import duckdb
        con = duckdb.connect(args["db"])
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{args['csv']}')")
        out["rows"] = con.execute("SELECT count(*) FROM t").fetchone()[0]
    elif mode == "job":
        import dagster as dg
        from gs_assets.config.loader import load_platform_config
        from gs_assets.definitions import build_definitions
        cfg = load_platform_config(Path(args["config"]))
        defs = build_definitions(cfg, warehouse=args["db"])
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("files__bench__usage", [args["key"]])
        t0 = time.perf_counter()
        res = defs.resolve_job_def("usage_job").execute_in_process(
            partition_key=args["key"], instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        assert res.success
        import duckdb
        con = duckdb.connect(args["db"], read_only=True)
        out["result"] = con.execute("SELECT status, rows_read, inserted, updated, unchanged, rejected FROM gs_ops.job_runs "
                                    "WHERE job = 'usage' ORDER BY started_at DESC LIMIT 1").fetchone()
    elif mode == "tick":
        import dagster as dg
        from gs_assets.config.loader import load_platform_config
        from gs_assets.definitions import build_definitions
        cfg = load_platform_config(Path(args["config"]))
        defs = build_definitions(cfg, warehouse=args["db"])
        sensor = defs.resolve_sensor_def("s3_files_sensor")
        t0 = time.perf_counter()
        r = sensor(dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), cursor=args["cursor"],
                                           resources={"s3": defs.resources["s3"], "sqs": defs.resources["sqs"]}))
        out["runs"] = len(r.run_requests or [])
        out["cursor"] = r.cursor
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out, default=str))


def seed(db: str, cfg_dir: Path, rows: int, csv: Path) -> None:
    """Companies, and half of the file's usage keys already in company_usage."""
    from gs_assets.config.loader import load_platform_config
    from gs_assets.engine.warehouse_setup import sync_object_tables
    from resources.warehouse import Warehouse
    cfg = load_platform_config(cfg_dir)
    wh = Warehouse(database=db)
    with wh.connect() as con:
        sync_object_tables(con, cfg.model)
        con.execute(f"INSERT INTO gs.company (gsid, name, external_id, created_at, modified_at) "
                    f"SELECT uuid()::VARCHAR, 'Company ' || c, printf('A%06d', c), now(), now() FROM range({N_COMPANIES}) t(c)")
        con.execute(f"""INSERT INTO gs.company_usage (gsid, company_id, usage_date, feature, event_count, minutes, created_at, modified_at)
            SELECT uuid()::VARCHAR, c.gsid, u."Date"::DATE, u."Feature", 0, 0, now(), now()
            FROM read_csv('{csv}', all_varchar=true) u JOIN gs.company c ON c.external_id = u."Account ID"
            WHERE hash(u."Account ID", u."Date", u."Feature") % 2 = 0""")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1M,5M")
    ap.add_argument("--work", default=str(ROOT / "data" / "bench"))
    ap.add_argument("--no-tick", action="store_true")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        run_child(a.child[0], json.loads(a.child[1]))
        return 0

    from gs_assets.demo.local_s3 import local_s3
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    cfg_dir = work / "config"
    cfg_dir.mkdir(exist_ok=True)
    (cfg_dir / "jobs.yaml").write_text(textwrap.dedent(JOBS))
    os.environ["GSDP_CONFIG_DIR"] = str(cfg_dir)
    lines = []
    with local_s3() as s3:
        os.environ.update(s3.env())
        client = s3.client()
        client.create_bucket(Bucket="bench")
        for size in [parse_size(s) for s in a.sizes.split(",") if s and s != "none"]:
            csv = generate(work, size)
            mb = csv.stat().st_size / 1e6
            key = f"in/usage_{size}.csv"
            client.upload_file(str(csv), "bench", key)
            with tempfile.TemporaryDirectory(dir=work) as tmp:
                floor = child("floor", {"db": f"{tmp}/floor.duckdb", "csv": str(csv)})
                db = f"{tmp}/wh.duckdb"
                seed(db, cfg_dir, size, csv)
                job = child("job", {"db": db, "config": str(cfg_dir), "key": key})
            client.delete_object(Bucket="bench", Key=key)
            ratio = job["seconds"] / floor["seconds"]
            lines.append(f"| {size:>11,} | {mb:>7.0f} | {floor['seconds']:>7.2f} | {floor['peak_rss_mib']:>7.0f} | "
                         f"{job['seconds']:>7.2f} | {size / job['seconds']:>10,.0f} | {job['peak_rss_mib']:>7.0f} | {ratio:>5.2f}x | "
                         f"{job['result'][0]}: {job['result'][2]:,} ins, {job['result'][3]:,} upd |")
            print(lines[-1], flush=True)
        if not a.no_tick:
            tick = sensor_tick(client, cfg_dir, work)
    print()
    print("| rows | file MB | floor s | floor RSS MiB | job s | job rows/s | job RSS MiB | job/floor | result |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for line in lines:
        print(line)
    if not a.no_tick:
        print()
        print(f"sensor tick over 20,000 loaded keys + 10 new: {tick['seconds']:.2f} s, {tick['runs']} run requests, "
              f"{tick['list_requests']} list request(s)")
    return 0


def sensor_tick(client, cfg_dir: Path, work: Path) -> dict:
    """20k already-loaded usage files (sortable date keys) plus 10 new; one tick with the cursor."""
    from concurrent.futures import ThreadPoolExecutor
    from gs_assets.config.loader import load_platform_config
    from gs_assets.connectors.s3_files.assets import source_objects
    from gs_assets.connectors.s3_files.sensor import plan_file_runs
    keys = [f"in/usage_{i:06d}.csv" for i in range(20_010)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket="bench", Key=k, Body=b"x"), keys))
    cfg = load_platform_config(cfg_dir)
    sources = [s for s in source_objects(cfg) if s.name == "usage"]
    # The cursor after the first 20,000 were requested: built with the planner itself.
    calls = {"n": 0}
    real = client._make_api_call

    def counting(op, params):
        if op == "ListObjectsV2":
            calls["n"] += 1
        return real(op, params)

    old = plan_file_runs(cfg, sources, client, {}, limit_keys=set(keys[:20_000]), max_runs=10**9)[1]
    client._make_api_call = counting
    t0 = time.perf_counter()
    planned, _ = plan_file_runs(cfg, sources, client, old)
    secs = time.perf_counter() - t0
    client._make_api_call = real
    return {"seconds": secs, "runs": len(planned), "list_requests": calls["n"]}


if __name__ == "__main__":
    sys.exit(main())
