"""The Dagster UI in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium, installed
by `./dev test`; no browser download) against the webserver and daemon started on 127.0.0.1 with the
demo config. It checks the asset graph (source and matrix groups, asset checks on the objects),
launches the load of one file partition from the UI, waits for the run to succeed and reads the
row count and the check results from the object's asset page. Screenshots are kept under
test-artifacts/ui/ (CI keeps that folder)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from gs_assets.config.loader import load_platform_config
from gs_assets.demo.run_demo import upload_sample
from gs_assets.demo.sample_data import generate
from tests.conftest import REPO
from tests.dagster_dev import DagsterDeployment

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts" / "ui"
FILE = "inbound/users.csv"
# Chromium on a closed network: no background requests, no sandbox (root in CI), no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]

pytestmark = [pytest.mark.drill,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (./dev test installs it)")]


@pytest.fixture
def deployment(tmp_path, s3_server):
    cfg = load_platform_config(REPO / "config")
    bucket = cfg.connections["demo_s3"].bucket
    client = s3_server.client()
    sample = tmp_path / "sample"
    generate(sample)
    upload_sample(client, bucket, sample)
    dep = DagsterDeployment(tmp_path, config_dir=REPO / "config", warehouse=tmp_path / "wh.duckdb",
                            s3_env=s3_server.env())
    try:
        dep.start_webserver()
        # Only the UI loads this file here: the sensor would load every sample file by itself.
        dep.stop_sensor("s3_files_sensor")
        instance = dg.DagsterInstance.from_config(str(dep.home))
        instance.add_dynamic_partitions("files__demo_s3__users", [FILE])  # what the sensor registers
        dep.start_daemon()
        yield dep, instance
    finally:
        dep.stop()
        for o in client.list_objects_v2(Bucket=bucket).get("Contents", []):
            client.delete_object(Bucket=bucket, Key=o["Key"])


@pytest.mark.timeout(600)
def test_the_ui_shows_the_graph_and_loads_a_file_partition_with_row_count_and_checks(deployment, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    dep, instance = deployment
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)

        def visit(path: str) -> None:
            page.goto(dep.url + path)
            skip = page.get_by_role("button", name="Skip")  # the first-visit newsletter dialog
            try:
                skip.click(timeout=4_000)
            except Exception:  # noqa: BLE001 - shown only once per browser profile
                pass

        # The asset graph: both groups, the source assets of the demo connection, the objects with checks.
        visit("/asset-groups")
        tree = page.locator("body")
        expect(tree.get_by_text("demo_s3", exact=True).first).to_be_visible()
        expect(tree.get_by_text("matrix", exact=True).first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "01-asset-graph.png"))
        visit("/locations/gs_assets.definitions/asset-groups/demo_s3")
        for name in ("users", "companies", "contacts", "usage"):
            expect(page.get_by_text(name, exact=True).first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "02-group-demo_s3.png"))
        visit("/locations/gs_assets.definitions/asset-groups/matrix")
        expect(page.get_by_text("company", exact=True).first).to_be_visible()
        expect(page.get_by_text("Asset checks").first).to_be_visible()
        expect(page.get_by_text(re.compile(r"0 / 3 Passed")).first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "03-group-matrix.png"))

        # Launch the load of one file partition (its source asset and the object it loads) from the UI.
        visit("/locations/gs_assets.definitions/jobs/load_demo_s3__users_job")
        page.get_by_role("button", name=re.compile("Materialize")).first.click()
        dialog = page.get_by_role("dialog")
        # gs/user is fed by the API connections' user streams too: Dagster asks to confirm while
        # those have never been synced (the file load does not need them).
        sure = page.get_by_text("Are you sure?")
        try:
            sure.wait_for(timeout=15_000)
        except Exception:  # noqa: BLE001 - not asked once every upstream asset was materialized
            pass
        else:
            expect(page.get_by_text("source / sfdc / user")).to_be_visible()
            page.get_by_role("button", name="Confirm").click()
        dialog.get_by_text("Select a partition or create one").click()
        page.get_by_role("menuitem").filter(has_text=FILE).first.click()
        page.keyboard.press("Escape")
        launch = dialog.get_by_role("button", name="Launch 1 run")
        page.screenshot(path=str(ARTIFACTS / "04-launch-dialog.png"))
        launch.click()
        expect(page.get_by_text(re.compile("Launched run"))).to_be_visible()

        # Wait for the run to succeed (the run page shows its status).
        runs = []
        for _ in range(240):
            runs = instance.get_runs(dg.RunsFilter(job_name="load_demo_s3__users_job"))
            if runs and runs[0].is_finished:
                break
            page.wait_for_timeout(1000)
        assert runs and runs[0].status == dg.DagsterRunStatus.SUCCESS, runs and runs[0].status
        visit(f"/runs/{runs[0].run_id}")
        expect(page.get_by_text("Success", exact=True).first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "05-run-success.png"))

        # The object's page: the row count of the load and its three checks, passed.
        visit("/assets/gs/user")
        expect(page.get_by_text("Row count")).to_be_visible()
        row_count = int(page.get_by_text("Row count").locator("xpath=following::*[1]").inner_text().replace(",", ""))
        page.screenshot(path=str(ARTIFACTS / "06-gs-user.png"))
        visit("/assets/gs/user?view=checks")
        for check in ("conservation", "lookups_resolve", "schema"):
            expect(page.get_by_text(check, exact=True).first).to_be_visible()
        expect(page.get_by_text("Succeeded")).to_have_count(3)
        page.screenshot(path=str(ARTIFACTS / "07-gs-user-checks.png"))
        browser.close()

    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        in_table = con.execute("SELECT count(*) FROM gs.user").fetchone()[0]
        run_log = con.execute("SELECT rows_read, inserted, rejected, superseded, status FROM gs_ops.job_runs").fetchall()
        rejects = con.execute("SELECT count(*) FROM gs_ops.rejects").fetchone()[0]
    finally:
        con.close()
    # The sample has 50 users, all valid: the page, the table and the run log agree.
    assert row_count == in_table == 50
    assert run_log == [(50, 50, 0, 0, "Success")] and rejects == 0
