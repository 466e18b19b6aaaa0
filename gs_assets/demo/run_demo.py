"""The main demo: sample files -> local S3 -> sensor -> Dagster runs -> objects; prints what landed.

Everything is local and embedded: a DuckDB file under data/, moto on 127.0.0.1 as the S3
endpoint, and a Dagster instance under .dagster_home/ (so `./dev ui` shows these very runs).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUCKET_PREFIX = "inbound/"


def prepare_env(root: Path = ROOT) -> None:
    os.environ.setdefault("DAGSTER_HOME", str(root / ".dagster_home"))
    os.environ.setdefault("GSDP_WAREHOUSE", str(root / "data" / "warehouse.duckdb"))
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


def summary(warehouse_path: str, model) -> str:
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
            file = re.sub(r"^.*/", "", r.source_file) if r.source_file is not None else None
            lines.append(f"  {r.job:<20}{file:<34}{r.status:<17}{r.rows_read:>8,}{r.inserted:>8,}{r.updated:>6,}"
                         f"{r.unchanged:>8,}{r.rejected:>7,}{r.superseded:>6,}")
        lines.append("")
        total = ledger.count_rejects(con)
        lines.append(f"rejects (gs_ops.rejects): {total:,} row(s), kept with file, line, original values and every reason.")
        lines.append("  by job and reason (count, then the first example):")
        for g in ledger.reject_reasons(con):
            shown = f" (value {g.value!r})" if g.value else ""
            lines.append(f"  {g.job:<20}{g.rows:>6,} x {g.field or 'row'} {g.rule:<24} e.g. {g.first}: {g.message}{shown}")
    finally:
        con.close()
    return "\n".join(lines)


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
    print(summary(os.environ["GSDP_WAREHOUSE"], cfg.model))
    print()
    print(f"warehouse: {os.environ['GSDP_WAREHOUSE']} (DuckDB; schemas gs, gs_ops, raw_demo_s3)")
    print("next: ./dev ui   -> Dagster UI on http://127.0.0.1:3000 with these runs: Assets > matrix group "
          "(row counts, previews, schema, checks), Runs, Sensors > s3_files_sensor")
    print("      ./dev sql \"SELECT * FROM gs_ops.rejects\"   -> query the warehouse")
    return 0 if all(ok for _, _, ok, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
