"""Start the Dagster UI over the demo: local S3 (with the sample files) + `dagster dev`, and the
Bulk API service beside it (http://127.0.0.1:8080, OpenAPI at /docs).

The local S3 server keeps nothing between starts, so the sample files are put back where the demo
left them: a file the warehouse's ledger holds as loaded and moved (same content) goes to its
archive (or error) key, the others to the inbound prefix. The sensor then finds only files that
were never loaded, and the UI does not start with a run per file that would do nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from gs_assets.demo.run_demo import ROOT, prepare_env, upload_sample


def restore_sample(client, bucket: str, sample_dir, warehouse_path: str) -> list[str]:
    """Upload the sample files and move each one the ledger holds as loaded and moved elsewhere
    (same key, same ETag) to where it was moved; returns the keys left in the inbound prefix."""
    keys = upload_sample(client, bucket, sample_dir)
    moved: dict[tuple[str, str], str] = {}
    if os.path.exists(warehouse_path):
        import duckdb

        from resources.warehouse import Warehouse
        try:
            with Warehouse(database=warehouse_path).read(wait_seconds=30) as con:
                rows = con.execute("SELECT source_file, etag, archived_to FROM gs_ops.loads WHERE archived_to IS NOT NULL "
                                   "AND archived_to <> source_file ORDER BY seq").fetchall()
        except duckdb.CatalogException:  # a warehouse without loads yet
            rows = []
        moved = {(f, e): a for f, e, a in rows}
    left = []
    for key in keys:
        etag = (client.head_object(Bucket=bucket, Key=key).get("ETag") or "").strip('"')
        target = moved.get((f"s3://{bucket}/{key}", etag))
        if target is None or not target.startswith(f"s3://{bucket}/"):
            left.append(key)
            continue
        client.copy_object(Bucket=bucket, Key=target[len(f"s3://{bucket}/"):], CopySource={"Bucket": bucket, "Key": key})
        client.delete_object(Bucket=bucket, Key=key)
    return left


def main() -> int:
    # SIGTERM ends the UI like Ctrl-C does, so the Bulk API process below is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    prepare_env()
    from gs_assets.config.loader import load_platform_config
    from gs_assets.demo.local_s3 import local_s3
    from gs_assets.demo.sample_data import generate

    sample = ROOT / "data" / "sample"
    if not sample.exists():
        generate(sample)
    port = int(os.environ.get("GSDP_DEMO_S3_PORT", "9555"))
    with local_s3(port) as s3:
        os.environ.update(s3.env())
        cfg = load_platform_config()
        restore_sample(s3.client(), cfg.connections["demo_s3"].bucket, sample, os.environ["GSDP_WAREHOUSE"])
        print(f"local S3 on {s3.endpoint}; warehouse {os.environ['GSDP_WAREHOUSE']}; Dagster home {os.environ['DAGSTER_HOME']}")
        bulk_port = os.environ.setdefault("GSDP_BULK_PORT", "8080")
        bulk = subprocess.Popen([sys.executable, "-m", "gs_assets.bulk_api.app"], cwd=ROOT)
        print(f"Bulk API: http://127.0.0.1:{bulk_port}{'/docs'}  (create a key: .venv/bin/gsdp keys create --name me)")
        print("Dagster UI: http://127.0.0.1:3000  (Ctrl-C to stop)")
        try:
            return subprocess.call([sys.executable, "-m", "dagster", "dev", "-w", str(ROOT / "workspace.yaml"),
                                    "-h", "127.0.0.1", "-p", os.environ.get("GSDP_UI_PORT", "3000")], cwd=ROOT)
        finally:
            bulk.terminate()
            bulk.wait(timeout=20)


if __name__ == "__main__":
    sys.exit(main())
