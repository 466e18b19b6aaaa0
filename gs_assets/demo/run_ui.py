"""Start the Dagster UI over the demo: local S3 (with the sample files) + `dagster dev`, and the
Bulk API service beside it (http://127.0.0.1:8080, OpenAPI at /docs).

The S3 server is started again with the same files, so the sensor and "Materialize" on a file
partition work from the UI; files already loaded are recognised by the ledger and not reloaded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from gs_assets.demo.run_demo import ROOT, prepare_env, upload_sample


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
        upload_sample(s3.client(), cfg.connections["demo_s3"].bucket, sample)
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
