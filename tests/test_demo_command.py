"""The README's main command: sample data through local S3 and Dagster into the warehouse."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow  # the full demo in a subprocess
def test_demo_loads_sample_data_and_explains_rejects(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dh"), "GSDP_WAREHOUSE": str(tmp_path / "wh.duckdb"),
           "GSDP_REST_TOKEN_DIR": str(tmp_path / "tokens")}
    for k in ("GSDP_S3_ENDPOINT_URL",):
        env.pop(k, None)
    proc = subprocess.run([sys.executable, "-m", "gs_assets.demo.run_demo"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "s3_files_sensor requested 5 run(s)" in out
    for line in ("gs.company                  498", "gs.company_usage        268,918", "gs.user                      50"):
        assert line in out
    assert "crm_companies            1 x stage dropdown_value" in out
    assert "e.g. companies.csv:19: not one of" in out
    assert "./dev ui" in out
    # the API half: both fakes synced through Dagster, what landed per connection
    for line in ("sync now of connection sfdc: 4 run(s)", "sync now of connection hubspot: 4 run(s)",
                 "connection sfdc (Salesforce, production): synced streams (gs_ops.syncs)",
                 "gs.company                  499         498", "gs.user                      51          50"):
        assert line in out, out[-4000:]
    # the SQL half: the local PostgreSQL's billing database synced through Dagster into Subscription
    for line in ("SQL connection: billing_db (PostgreSQL)", "sync now of connection billing_db: 1 run(s)",
                 "connection billing_db (PostgreSQL, 127.0.0.1:54390/billing): synced datasets (gs_ops.syncs)",
                 "    billing_subscriptions        2 x company_id lookup_no_match    e.g. record SUB-00001: no "
                 "company record matches external_id=A90001",
                 "gs.subscription             230           0", "Assets > source/billing_db/subscriptions"):
        assert line in out, out[-4000:]
    assert "FAILED" not in out
    assert (tmp_path / "dh" / "dagster.yaml").exists()
