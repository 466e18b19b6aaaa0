"""The main demo: sample files -> local S3 -> sensor -> Dagster runs -> objects; prints what landed.
Then the API connections: the Salesforce and HubSpot fakes on 127.0.0.1 (seeded with records that
overlap the CSV companies and users) synced through Dagster; prints what landed per connection.
Then the SQL connection: a local PostgreSQL with a billing database (subscriptions of the CSV
companies) synced through Dagster into Subscription; prints what landed.

Everything is local and embedded: a DuckDB file under data/, moto on 127.0.0.1 as the S3
endpoint, the API fakes on 127.0.0.1, PostgreSQL on 127.0.0.1 with its data under data/demo_postgres/
(kept between runs), and a Dagster instance under .dagster_home/ (so `./dev ui` shows these very runs).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUCKET_PREFIX = "inbound/"
PG_ROOT = ROOT / "data" / "demo_postgres"  # the demo's PostgreSQL (billing database): kept, reused by the next run


def prepare_env(root: Path = ROOT) -> None:
    os.environ.setdefault("DAGSTER_HOME", str(root / ".dagster_home"))
    os.environ.setdefault("GSDP_WAREHOUSE", str(root / "data" / "warehouse.duckdb"))
    # The demo's API connections talk to fakes started anew each time: their refresh tokens are kept
    # apart from a real deployment's (data/tokens).
    os.environ.setdefault("GSDP_REST_TOKEN_DIR", str(root / "data" / "demo_tokens"))
    from gs_assets.instance_config import write_instance_config
    write_instance_config(Path(os.environ["DAGSTER_HOME"]))


def upload_sample(s3_client, bucket: str, sample_dir: Path) -> list[str]:
    existing = [b["Name"] for b in s3_client.list_buckets().get("Buckets", [])]
    if bucket not in existing:
        s3_client.create_bucket(Bucket=bucket)
    keys = []
    for f in sorted(sample_dir.glob("*.csv")):
        key = BUCKET_PREFIX + f.name
        s3_client.upload_file(str(f), bucket, key)
        keys.append(key)
    return keys


def kind_sensors(cfg, defs, connection: str) -> list:
    """The sensors of the connector kind of `connection` (through the registry), as `defs` holds them."""
    from gs_assets.connectors.registry import kind_of
    kind = kind_of(cfg.connections[connection])
    names = [s.name for s in kind.sensors(cfg, {j.name: j for j in defs.jobs}, defs.resources["warehouse"])]
    return [(defs.resolve_sensor_def(n), kind) for n in names]


def run_sensor_once(defs, instance, cursor: str | None, sensor, kind):
    """Evaluate a connector kind's sensor like the daemon does and execute the runs it requests, in order."""
    import dagster as dg

    ctx = dg.build_sensor_context(instance=instance, cursor=cursor,
                                  resources={k: defs.resources[k] for k in kind.resource_keys})
    result = sensor(ctx)
    for req in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    outcomes = []
    for rr in result.run_requests or []:
        job = defs.resolve_job_def(rr.job_name)
        res = job.execute_in_process(partition_key=rr.partition_key, instance=instance, tags=rr.tags,
                                     raise_on_error=False,
                                     run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        outcomes.append((rr.job_name, rr.partition_key, res.success, res.run_id))
    return outcomes, result.cursor


# Jobs of an API connection run in this order of destination, so lookups find what the same
# connection brings (owners before the companies they own, people and companies before their links).
API_ORDER = ["user", "company", "person", "company_person"]


def api_jobs(cfg, connection: str) -> list:
    jobs = [j for j in cfg.jobs.values() if j.connection == connection]
    return sorted(jobs, key=lambda j: (API_ORDER.index(j.destination) if j.destination in API_ORDER else len(API_ORDER),
                                       j.name))


def sync_api(cfg, defs, instance, connection: str) -> list:
    """Sync now: each job of the connection as `gsdp run` runs it (its Dagster job, the latest time
    partition, which syncs the stream from its cursor and applies the load)."""
    from gs_assets.run_report import QUIET_CONSOLE, report_run
    from gs_assets.connectors.registry import kind_of
    from gs_assets.dagster_jobs import job_asset_job_name

    kind = kind_of(cfg.connections[connection])
    outcomes = []
    for job in api_jobs(cfg, connection):
        for key in kind.discover(cfg, job, None):
            res = defs.resolve_job_def(job_asset_job_name(job.name)).execute_in_process(
                partition_key=key, instance=instance, raise_on_error=False, run_config=QUIET_CONSOLE,
                tags={"gsdp/trigger": "demo"})
            if not res.success:  # why, in the job's words (a bug's stack trace goes to stderr)
                for description in report_run(instance, res):
                    print(f"{job.name}: {description}", file=sys.stderr)
            outcomes.append((job.name, key, res.success, res.run_id))
    return outcomes


def object_counts(warehouse_path: str, model) -> dict[str, int]:
    import duckdb
    con = duckdb.connect(warehouse_path, read_only=True)
    try:
        return {name: con.execute(f"SELECT count(*) FROM gs.{name}").fetchone()[0] for name in model.objects}
    finally:
        con.close()


def summary(warehouse_path: str, model, jobs: set[str] | None = None) -> str:
    """Objects, job runs and rejects; job runs and rejects of `jobs` only when given."""
    import re

    import duckdb

    from gs_assets.engine import ledger

    lines = []
    con = duckdb.connect(warehouse_path, read_only=True)
    try:
        lines.append(f"{'object':<22}{'rows':>9}")
        for name in model.objects:
            n = con.execute(f"SELECT count(*) FROM gs.{name}").fetchone()[0]
            lines.append(f"{'gs.' + name:<22}{n:>9,}")
        lines.append("")
        lines.append("job runs (gs_ops.job_runs):")
        lines.append(f"  {'job':<20}{'file':<34}{'status':<17}{'read':>8}{'ins':>8}{'upd':>6}{'same':>8}{'rej':>7}{'sup':>6}")
        for r in ledger.job_runs(con):
            if jobs is not None and r.job not in jobs:
                continue
            file = re.sub(r"^.*/", "", r.source_file) if r.source_file is not None else None
            lines.append(f"  {r.job:<20}{file:<34}{r.status:<17}{r.rows_read:>8,}{r.inserted:>8,}{r.updated:>6,}"
                         f"{r.unchanged:>8,}{r.rejected:>7,}{r.superseded:>6,}")
        lines.append("")
        groups = [g for g in ledger.reject_reasons(con) if jobs is None or g.job in jobs]
        total = ledger.count_rejects(con) if jobs is None else ledger.count_rejects_of_jobs(con, sorted(jobs))
        lines.append(f"rejects (gs_ops.rejects): {total:,} row(s), kept with file, line, original values and every reason.")
        lines.append("  by job and reason (count, then the first example):")
        for g in groups:
            shown = f" (value {g.value!r})" if g.value else ""
            lines.append(f"  {g.job:<20}{g.rows:>6,} x {g.field or 'row'} {g.rule:<24} e.g. {g.first}: {g.message}{shown}")
    finally:
        con.close()
    return "\n".join(lines)


def api_summary(warehouse_path: str, cfg, connection: str, run_ids: list[str]) -> str:
    """What the runs `run_ids` of an API connection landed: records per stream (gs_ops.syncs), its
    jobs' runs, and their rejects grouped by reason."""
    import duckdb

    from gs_assets.engine import ledger

    conn = cfg.connections[connection]
    jobs = {j.name for j in api_jobs(cfg, connection)}
    if conn.type == "sql":  # a dataset's fetches are its pages
        lines = [f"connection {connection} ({conn.label}, {conn.host}:{conn.server_port}/{conn.database}): "
                 f"synced datasets (gs_ops.syncs)"]
        stream_label, pages_label = "dataset", "fetch"
    else:
        lines = [f"connection {connection} ({conn.spec.label}, {conn.environment_name or 'one host'}): "
                 f"synced streams (gs_ops.syncs)"]
        stream_label, pages_label = "stream", "pages"
    con = duckdb.connect(warehouse_path, read_only=True)
    try:
        ids = [r.load_id for r in ledger.job_runs_of(con, run_ids) if r.job in jobs]
        rows = ledger.sync_totals(con, sorted(set(ids)))
        lines.append(f"  {stream_label:<20}{'mode':<13}{'syncs':>6}{pages_label:>7}{'records':>9}{'deleted':>9}")
        for stream, mode, n, pages, records, deleted in rows:
            lines.append(f"  {stream:<20}{mode:<13}{n:>6}{pages:>7,}{records:>9,}{deleted:>9,}")
        lines.append(f"  job runs: {'job':<28}{'object':<20}{'status':<17}{'read':>6}{'ins':>6}{'upd':>6}{'same':>6}"
                     f"{'rej':>5}{'del':>5}")
        for r in ledger.job_runs_of(con, run_ids):
            if r.job in jobs:
                lines.append(f"            {r.job:<28}{'gs.' + r.destination:<20}{r.status:<17}{r.rows_read:>6,}"
                             f"{r.inserted:>6,}{r.updated:>6,}{r.unchanged:>6,}{r.rejected:>5,}{r.deleted:>5,}")
        # Rejects by job and reason, each with the record id of its first example (an API row's location).
        groups = ledger.reject_reasons_of_runs(con, list(run_ids))
        total = ledger.count_rejects_of_runs(con, list(run_ids))
        lines.append(f"  rejects (gs_ops.rejects): {total:,} row(s)" + (", kept with record id, original values and "
                                                                        "every reason:" if total else ": none"))
        for job, fld, rule, n, first, message, value in groups:
            shown = f" (value {value!r})" if value else ""
            lines.append(f"    {job:<26}{n:>4,} x {fld or 'row'} {rule:<18} e.g. record {first}: {message}{shown}")
    finally:
        con.close()
    return "\n".join(lines)


def run_api_demo(cfg, instance, csv_counts: dict[str, int]) -> list:
    """Start the Salesforce and HubSpot fakes, sync both connections through Dagster, print what
    landed; the fakes stop at the end."""
    from gs_assets.definitions import build_definitions
    from gs_assets.demo import api_fakes

    fakes = api_fakes.start()
    try:
        os.environ.update(fakes.env)  # this process only: the fakes' hosts and their demo credentials
        defs = build_definitions(cfg, warehouse=os.environ["GSDP_WAREHOUSE"])  # its resources read them
        print("API connections: the Salesforce and HubSpot fakes on 127.0.0.1 (`./dev ui` starts them too)")
        for line in api_fakes.describe(fakes):
            print(f"  {line}")
        outcomes = []
        for connection in fakes.servers:
            ran = sync_api(cfg, defs, instance, connection)
            print(f"sync now of connection {connection}: {len(ran)} run(s) (the jobs `gsdp run` runs, latest partition):")
            for job, key, ok, run_id in ran:
                print(f"  {'ok    ' if ok else 'FAILED'} {job:<34} {key:<32} run {run_id}")
            outcomes += ran
        print()
        for connection in fakes.servers:
            print(api_summary(os.environ["GSDP_WAREHOUSE"], cfg, connection,
                              [run_id for job, _, _, run_id in outcomes if cfg.jobs[job].connection == connection]))
            print()
        after = object_counts(os.environ["GSDP_WAREHOUSE"], cfg.model)
        print(f"{'object':<22}{'rows':>9}{'before API':>12}")
        for name, n in after.items():
            print(f"{'gs.' + name:<22}{n:>9,}{csv_counts.get(name, 0):>12,}")
        return outcomes
    finally:
        fakes.stop()


def run_sql_demo(cfg, instance, before: dict[str, int], pg_root: Path = PG_ROOT,
                 sample_dir: Path = ROOT / "data" / "sample") -> list:
    """Start the demo's PostgreSQL (its billing database made on the first run, kept for the next),
    sync connection billing_db through Dagster, print what landed; the server stops at the end."""
    from gs_assets.definitions import build_definitions
    from gs_assets.demo import billing_db
    from gs_assets.demo.local_databases import LocalDatabaseError

    conn = cfg.connections[billing_db.CONNECTION]
    try:
        db = billing_db.start(pg_root, conn.server_port, sample_dir / "companies.csv")
    except LocalDatabaseError as e:  # one paragraph: what is wrong and what to do
        print(f"SQL connection {billing_db.CONNECTION}: not synced. {e}", file=sys.stderr)
        return [(job.name, None, False, None) for job in api_jobs(cfg, billing_db.CONNECTION)]
    try:
        os.environ.update(db.env)  # this process only: the read-only login's password
        defs = build_definitions(cfg, warehouse=os.environ["GSDP_WAREHOUSE"])
        print(f"SQL connection: {billing_db.CONNECTION} ({conn.label})")
        for line in db.describe():
            print(f"  {line}")
        ran = sync_api(cfg, defs, instance, billing_db.CONNECTION)
        print(f"sync now of connection {billing_db.CONNECTION}: {len(ran)} run(s) (the jobs `gsdp run` runs, "
              "latest partition):")
        for job, key, ok, run_id in ran:
            print(f"  {'ok    ' if ok else 'FAILED'} {job:<34} {key:<32} run {run_id}")
        print()
        print(api_summary(os.environ["GSDP_WAREHOUSE"], cfg, billing_db.CONNECTION, [r for *_, r in ran]))
        after = object_counts(os.environ["GSDP_WAREHOUSE"], cfg.model)
        print(f"{'object':<22}{'rows':>9}{'before SQL':>12}")
        print(f"{'gs.subscription':<22}{after['subscription']:>9,}{before.get('subscription', 0):>12,}")
        print(f"  look: ./dev ui -> Assets > source/{billing_db.CONNECTION}/subscriptions (each sync: mode, window, "
              "cursor, rows) and gs/subscription")
        print("        ./dev sql \"SELECT s.external_id, c.name AS company, s.product, s.mrr, s.status FROM "
              "gs.subscription s JOIN gs.company c ON c.gsid = s.company_id LIMIT 5\"")
        return ran
    finally:
        db.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=int(os.environ.get("GSDP_DEMO_S3_PORT", "0")) or None,
                    help="port for the local S3 server (default: a free one)")
    ap.add_argument("--fresh", action="store_true", help="delete the demo warehouse and Dagster history first")
    args = ap.parse_args(argv)

    prepare_env()
    if args.fresh:
        import shutil
        Path(os.environ["GSDP_WAREHOUSE"]).unlink(missing_ok=True)
        shutil.rmtree(Path(os.environ["DAGSTER_HOME"]) / "storage", ignore_errors=True)
        shutil.rmtree(Path(os.environ["DAGSTER_HOME"]) / "history", ignore_errors=True)
        shutil.rmtree(Path(os.environ["DAGSTER_HOME"]) / "schedules", ignore_errors=True)
        from gs_assets.demo.local_databases import LocalPostgres
        LocalPostgres(PG_ROOT).stop()  # the billing database is made anew
        shutil.rmtree(PG_ROOT, ignore_errors=True)

    from gs_assets.demo.local_s3 import local_s3
    from gs_assets.demo.sample_data import generate

    sample_dir = ROOT / "data" / "sample"
    counts = generate(sample_dir)
    print(f"sample data: {', '.join(f'{k} ({v:,} rows)' for k, v in counts.items())} in {sample_dir}")
    with local_s3(args.port) as s3:
        os.environ.update(s3.env())
        import dagster as dg

        from gs_assets.config.loader import load_platform_config
        from gs_assets.definitions import build_definitions

        cfg = load_platform_config()
        bucket = cfg.connections["demo_s3"].bucket
        keys = upload_sample(s3.client(), bucket, sample_dir)
        print(f"uploaded {len(keys)} files to s3://{bucket}/{BUCKET_PREFIX} on the local S3 server {s3.endpoint}")
        defs = build_definitions(cfg, warehouse=os.environ["GSDP_WAREHOUSE"])
        instance = dg.DagsterInstance.get()
        outcomes = []
        for sensor, kind in kind_sensors(cfg, defs, "demo_s3"):  # the demo connection's kind picks the files up
            ran, _cursor = run_sensor_once(defs, instance, None, sensor, kind)
            print(f"{sensor.name} requested {len(ran)} run(s):")
            for job, key, ok, run_id in ran:
                print(f"  {'ok    ' if ok else 'FAILED'} {job:<34} {key:<32} run {run_id}")
            outcomes += ran
    print()
    api_connections = {n for n, c in cfg.connections.items() if c.type in ("rest_api", "sql")}
    print(summary(os.environ["GSDP_WAREHOUSE"], cfg.model,
                  {j.name for j in cfg.jobs.values() if j.connection not in api_connections}))
    print()
    outcomes += run_api_demo(cfg, instance, object_counts(os.environ["GSDP_WAREHOUSE"], cfg.model))
    print()
    outcomes += run_sql_demo(cfg, instance, object_counts(os.environ["GSDP_WAREHOUSE"], cfg.model))
    print()
    print(f"warehouse: {os.environ['GSDP_WAREHOUSE']} (DuckDB; schemas gs, gs_ops, raw_demo_s3, raw_sfdc, raw_hubspot, "
          "raw_billing_db)")
    print("next: ./dev ui   -> Dagster UI on http://127.0.0.1:3000 with these runs: Assets > matrix group "
          "(row counts, previews, schema, checks), Runs, Sensors > s3_files_sensor")
    print("      ./dev sql \"SELECT * FROM gs_ops.rejects\"   -> query the warehouse")
    return 0 if all(ok for _, _, ok, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
