"""A custom Salesforce object (`__c`) a user names syncs through the `any_object` template stream
into a custom matrix object, with its fields discovered by describe and a lookup across streams;
`gsdp run` does it through Dagster against the Salesforce fake on loopback."""

from datetime import date

import duckdb
import pytest
import yaml

from gs_assets.cli import main
from gs_assets.connectors.rest_api.fakes.harness import serve_on_loopback
from gs_assets.connectors.rest_api.systems.salesforce.fake import create_app
from gs_assets.connectors.rest_api.systems.salesforce.fake.__main__ import (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET,
                                                                           DEMO_REFRESH_TOKEN, demo_org)
from gs_assets.connectors.rest_api.systems.salesforce.fake.org import FieldDef
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # Dagster runs against a loopback server


@pytest.fixture
def org_and_env(tmp_path, monkeypatch):
    org = demo_org()
    org.add_object("Health_Score__c", "Health Score", [
        FieldDef("Account__c", "reference", "Account", reference_to=["Account"], length=18),
        FieldDef("Score__c", "double", "Score"), FieldDef("Scored_On__c", "date", "Scored On")])
    accounts = org.records("Account")[:3]
    for i, acc in enumerate(accounts):
        org.insert("Health_Score__c", {"Name": f"HS-{i}", "Account__c": acc["Id"], "Score__c": 70.0 + i,
                                       "Scored_On__c": date(2026, 11, 20 + i).isoformat()})
    org.insert("Health_Score__c", {"Name": "HS-orphan", "Account__c": None, "Score__c": 10.0,
                                   "Scored_On__c": "2026-11-25"})
    server = serve_on_loopback(create_app(org))
    hosts = sorted(org.token_hosts() | {org.api_host})
    monkeypatch.setenv("GSDP_REST_HOST_MAP", ",".join(f"{h}={server.url}" for h in hosts))
    monkeypatch.setenv("GSDP_SFDC_CLIENT_ID", DEMO_CLIENT_ID)
    monkeypatch.setenv("GSDP_SFDC_CLIENT_SECRET", DEMO_CLIENT_SECRET)
    monkeypatch.setenv("GSDP_SFDC_REFRESH_TOKEN", DEMO_REFRESH_TOKEN)
    cfg_dir = tmp_path / "config"
    cfg_dir.mkdir()
    (cfg_dir / "objects.yaml").write_text((REPO / "config" / "objects.yaml").read_text())
    (cfg_dir / "jobs.yaml").write_text(yaml.safe_dump({
        "connections": {"sfdc": {"type": "rest_api", "system": "salesforce", "auth": {"method": "refresh_token"},
                                 "default_jobs": {"users": False, "contacts": False, "contact_companies": False,
                                                  "accounts": {"lookups": []}}}},
        "jobs": {"health_scores": {
            "connection": "sfdc", "destination": "health_score__gc", "operation": "upsert",
            "source": {"object": "health_scores", "stream": "any_object", "sobject": "Health_Score__c"},
            "identifiers": ["company_id", "scored_on"],
            "mappings": [{"source": "Score__c", "target": "score"}, {"source": "Scored_On__c", "target": "scored_on"}],
            "lookups": [{"target": "company_id", "object": "company",
                         "match": [{"source": "Account__c", "field": "external_id"}]}]}}}, sort_keys=False))
    monkeypatch.setenv("GSDP_CONFIG_DIR", str(cfg_dir))
    monkeypatch.setenv("GSDP_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("GSDP_REST_TOKEN_DIR", str(tmp_path / "tokens"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    (tmp_path / "dh").mkdir()
    yield org, tmp_path
    server.stop()


def test_a_custom_object_syncs_through_the_template_stream_with_a_lookup(org_and_env, capsys):
    org, tmp = org_and_env
    assert main(["run", "sfdc_accounts"]) == 0
    assert main(["run", "health_scores"]) == 0
    assert "Partial Success" in capsys.readouterr().out  # the orphan score has no account
    con = duckdb.connect(str(tmp / "wh.duckdb"), read_only=True)
    rows = con.execute("SELECT c.external_id, h.score, h.scored_on FROM gs.health_score__gc h "
                       "JOIN gs.company c ON c.gsid = h.company_id ORDER BY h.scored_on").fetchall()
    accounts = org.records("Account")[:3]
    assert [(r[0], r[1]) for r in rows] == [(a["Id"], 70.0 + i) for i, a in enumerate(accounts)]
    (reasons,) = con.execute("SELECT reasons FROM gs_ops.rejects WHERE job = 'health_scores'").fetchone()
    assert "company_id" in reasons
    (source_id,) = con.execute("SELECT source_id FROM gs_ops.rejects WHERE job = 'health_scores'").fetchone()
    orphan = [r for r in org.records("Health_Score__c") if r["Name"] == "HS-orphan"][0]
    assert source_id == orphan["Id"]  # a rejected API record is located by its Salesforce id
    (fields,) = con.execute("SELECT fields FROM gs_ops.syncs WHERE source_object = 'health_scores'").fetchone()
    assert {"Account__c", "Score__c", "Scored_On__c"} <= set(yaml.safe_load(fields))


def test_a_large_first_sync_goes_through_bulk_api_2(org_and_env, capsys):
    """Above the connection's row threshold a full sync is a Bulk API 2.0 query job (CSV pages by
    locator); the records reach the object as through `queryAll`."""
    org, tmp = org_and_env
    jobs_yaml = tmp / "config" / "jobs.yaml"
    doc = yaml.safe_load(jobs_yaml.read_text())
    doc["connections"]["sfdc"]["bulk_export_above_rows"] = 10
    jobs_yaml.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["run", "sfdc_accounts"]) == 0
    assert org.bulk_jobs, "the sync created a Bulk API 2.0 query job"
    con = duckdb.connect(str(tmp / "wh.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM gs.company").fetchone()[0] == len(org.records("Account"))
    mode, cursor = con.execute("SELECT mode, cursor_to FROM gs_ops.syncs WHERE source_object = 'account'").fetchone()
    assert mode == "full" and cursor  # the export's last page offers the cursor the next sync starts from
