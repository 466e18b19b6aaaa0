"""The demo's API half: the shipped config's `sfdc` and `hubspot` connections, synced through Dagster
from the Salesforce and HubSpot fakes on 127.0.0.1 (gs_assets/demo/api_fakes.py), land records that
meet the CSV demo's: companies keyed by the CSV account id, users by email, each channel's own ids
in its own fields so parent accounts, owners (as CSMs) and contacts' companies are found."""

import os
import urllib.error
import urllib.request

import pytest

from tests.conftest import REPO


@pytest.mark.slow  # eight Dagster runs against the two fakes
def test_api_demo_syncs_both_fakes_into_the_csv_demos_objects(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    monkeypatch.setenv("GSDP_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("GSDP_REST_TOKEN_DIR", str(tmp_path / "tokens"))
    monkeypatch.setenv("GSDP_CONFIG_DIR", str(REPO / "config"))  # the shipped config
    for var in ("GSDP_REST_HOST_MAP", "GSDP_SFDC_CLIENT_ID", "GSDP_SFDC_CLIENT_SECRET", "GSDP_SFDC_REFRESH_TOKEN",
                "GSDP_HUBSPOT_ACCESS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "dh").mkdir()
    import dagster as dg
    import duckdb

    from gs_assets.config.loader import load_platform_config
    from gs_assets.demo import api_fakes, run_demo

    started = []
    real_start = api_fakes.start

    def start():
        fakes = real_start()
        started.append(dict(fakes.servers))
        return fakes
    monkeypatch.setattr(api_fakes, "start", start)

    cfg = load_platform_config()
    assert {"sfdc", "hubspot"} <= set(cfg.connections)
    assert [j.name for j in run_demo.api_jobs(cfg, "sfdc")] == [
        "sfdc_users", "sfdc_accounts", "sfdc_contacts", "sfdc_contact_companies"]
    with dg.DagsterInstance.get() as instance:
        outcomes = run_demo.run_api_demo(cfg, instance, {})
    out = capsys.readouterr().out
    assert [ok for _, _, ok, _ in outcomes] == [True] * 8, out
    assert {job for job, *_ in outcomes} == {f"sfdc_{k}" for k in ("users", "accounts", "contacts", "contact_companies")} \
        | {f"hubspot_{k}" for k in ("owners", "companies", "contacts", "contact_companies")}

    con = duckdb.connect(os.environ["GSDP_WAREHOUSE"], read_only=True)
    try:
        one = lambda sql: con.execute(sql).fetchone()  # noqa: E731
        # Salesforce accounts and HubSpot companies key the same companies: the CSV account ids.
        assert one("SELECT count(*), count(sfdc_account_id__gc), count(hubspot_company_id__gc), "
                   "count(*) FILTER (WHERE sfdc_account_id__gc IS NOT NULL AND hubspot_company_id__gc IS NOT NULL), "
                   "min(external_id), max(external_id) FROM gs.company") == (119, 60, 119, 60, "A00000", "A00118")
        # Owners as CSMs (through each channel's owner id on User), parent accounts through the Salesforce id.
        assert one("SELECT count(*) FILTER (WHERE csm IS NULL) FROM gs.company") == (0,)
        assert one("SELECT count(*) FROM gs.company c JOIN gs.company p ON c.parent_company = p.gsid "
                   "WHERE p.sfdc_account_id__gc IS NOT NULL") == (6,)
        # Users by email: 12 Salesforce users are HubSpot owners too (the CSV demo's users; the 13th is the
        # org's admin).
        assert one("SELECT count(*), count(sfdc_user_id__gc), count(hubspot_owner_id__gc), count(*) FILTER "
                   "(WHERE sfdc_user_id__gc IS NOT NULL AND hubspot_owner_id__gc IS NOT NULL) FROM gs.\"user\"") \
            == (50, 13, 49, 12)  # the archived owner (a delete, policy ignore) is not a user here
        # Every contact at its company, from both systems.
        assert one("SELECT count(*) FROM gs.company_person") == (180 + 592,)
    finally:
        con.close()

    for line in ("connection sfdc (Salesforce, production): synced streams (gs_ops.syncs)",
                 "connection hubspot (HubSpot, one host): synced streams (gs_ops.syncs)",
                 "  account             full              1      1       60        0",
                 "  companies           full              1      3      120        1",
                 "gs.company                  119           0"):
        assert line in out, out
    # the records wrong on purpose: rejected with their record id and reason
    for line in ("  rejects (gs_ops.rejects): 3 row(s), kept with record id, original values and every reason:",
                 "    sfdc_contacts                1 x email email_format       e.g. record 003",
                 "    sfdc_contact_companies       2 x person_id lookup_no_match    e.g. record 003",
                 "  rejects (gs_ops.rejects): 1 row(s), kept with record id, original values and every reason:",
                 "    hubspot_companies            1 x external_id identifier_missing e.g. record "):
        assert line in out, out
    for secret in ("fake-demo-consumer-secret", "5Aep861fakeDemoRefreshToken", api_fakes.DEMO_HUBSPOT_TOKEN):
        assert secret not in out
    # the fakes stopped at the end
    for servers in started:
        for server in servers.values():
            with pytest.raises(urllib.error.URLError):
                urllib.request.urlopen(server.url, timeout=5)
    # the CSV summary leaves the API jobs' runs out
    csv_jobs = {j.name for j in cfg.jobs.values() if j.connection == "demo_s3"}
    assert "sfdc_" not in run_demo.summary(os.environ["GSDP_WAREHOUSE"], cfg.model, csv_jobs)


@pytest.mark.slow  # a fresh interpreter: local S3, both fakes
def test_dev_ui_serves_the_api_fakes_beside_dagster(tmp_path):
    """`./dev ui` (run_ui) loads the config in a fresh interpreter (the connector kinds registered),
    starts the fakes, says where they are, and stops them with the rest. `dagster dev` and the Bulk
    API are replaced by a process that ends at once, so run_ui goes straight to its shutdown."""
    import subprocess
    import sys

    from tests.dagster_helpers import free_port
    code = ("import subprocess, sys\n"
            "from gs_assets.demo import run_ui\n"
            "run_ui._spawn = lambda args: subprocess.Popen([sys.executable, '-c', 'pass'])\n"
            "sys.exit(run_ui.main())\n")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dh"), "GSDP_WAREHOUSE": str(tmp_path / "wh.duckdb"),
           "GSDP_REST_TOKEN_DIR": str(tmp_path / "tokens"), "GSDP_DEMO_S3_PORT": str(free_port())}
    for k in ("GSDP_S3_ENDPOINT_URL", "GSDP_CONFIG_DIR", "GSDP_REST_HOST_MAP"):
        env.pop(k, None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "fake Salesforce (connection sfdc) on http://127.0.0.1:" in out, out
    assert "fake HubSpot (connection hubspot) on http://127.0.0.1:" in out, out
    assert "materialize source/sfdc/* or source/hubspot/* in the UI" in out, out
    for secret in ("fake-demo-consumer-secret", "5Aep861fakeDemoRefreshToken"):
        assert secret not in out + proc.stderr

