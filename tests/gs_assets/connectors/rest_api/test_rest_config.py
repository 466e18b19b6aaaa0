"""Config of REST API connections and their jobs: what loads, what fails at load (naming the file
and key), out-of-the-box jobs, and the source assets, jobs and schedules definitions get."""

import textwrap

import dagster as dg
import pytest
import yaml

from gs_assets.config.loader import load_platform_config
from gs_assets.connectors.rest_api.assets import current_key, partitions_def, window_of
from gs_assets.connectors.rest_api.resource import (ConnectionSetupError, FileTokenStore, connection_secrets,
                                                    parse_host_map)
from gs_assets.definitions import build_definitions
from gs_assets.settings import Settings
from gs_assets.validators.errors import ConfigError


def _load(tmp_path, doc: dict):
    folder = tmp_path / "config"
    folder.mkdir(exist_ok=True)
    (folder / "jobs.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_platform_config(folder)


SF = {"type": "rest_api", "system": "salesforce", "auth": {"method": "refresh_token"}}


def test_a_salesforce_connection_gets_its_out_of_the_box_jobs(tmp_path):
    cfg = _load(tmp_path, {"connections": {"sfdc": SF}})
    assert {"sfdc_users", "sfdc_accounts", "sfdc_contacts", "sfdc_contact_companies"} <= set(cfg.jobs)
    accounts = cfg.jobs["sfdc_accounts"]
    assert accounts.destination == "company" and accounts.source.stream_name == "account"
    assert {lk.target for lk in accounts.lookups} == {"parent_company", "csm"}
    assert accounts.deletes.policy == "mark"
    conn = cfg.connections["sfdc"]
    assert conn.environment_name == "production"
    assert conn.secret_env("sfdc") == {"client_id": "GSDP_SFDC_CLIENT_ID", "client_secret": "GSDP_SFDC_CLIENT_SECRET",
                                       "refresh_token": "GSDP_SFDC_REFRESH_TOKEN"}


def test_default_jobs_switch_off_and_override(tmp_path):
    cfg = _load(tmp_path, {"connections": {"sfdc": {**SF, "default_jobs": {
        "users": False, "accounts": {"identifiers": ["name"], "deletes": {"policy": "ignore"}}}}}})
    assert "sfdc_users" not in cfg.jobs
    assert cfg.jobs["sfdc_accounts"].identifiers == ["name"] and cfg.jobs["sfdc_accounts"].deletes.policy == "ignore"


@pytest.mark.parametrize("conn, key, words", [
    ({**SF, "system": "salesforc"}, "connections.sfdc", ["unknown REST system 'salesforc'", "salesforce"]),
    ({**SF, "environment": "staging"}, "connections.sfdc", ["no environment 'staging'", "production, sandbox"]),
    ({**SF, "auth": {"method": "password"}}, "connections.sfdc", ["offers refresh_token", "not 'password'"]),
    ({**SF, "auth": {"method": "refresh_token", "env": {"api_key": "X"}}}, "connections.sfdc",
     ["takes the secrets client_id, client_secret, refresh_token"]),
    ({**SF, "auth": {"method": "refresh_token", "env": {"client_secret": "sk-live-123 456"}}}, "connections.sfdc",
     ["is not an env var name", "never in config"]),
    ({**SF, "auth": {"method": "client_credentials"}}, "connections.sfdc", ["runs on the org's own domain"]),
    ({"type": "rest_api", "system": "hubspot", "domain": "acme", "auth": {"method": "private_app"}},
     "connections.sfdc", ["no custom domain"]),
])
def test_a_broken_connection_fails_at_load_naming_file_and_key(tmp_path, conn, key, words):
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, {"connections": {"sfdc": conn}})
    assert e.value.key.startswith(key) and "jobs.yaml" in str(e.value)
    for w in words:
        assert w in str(e.value)


def _job(**over):
    job = {"connection": "sfdc", "source": {"object": "renewals", "stream": "renewals"}, "destination": "company",
           "operation": "upsert", "identifiers": ["external_id"],
           "mappings": [{"source": "Id", "target": "external_id"}, {"source": "Name", "target": "name"}]}
    job.update(over)
    return job


def test_a_job_on_a_stream_the_system_lacks_fails_naming_the_key(tmp_path):
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, {"connections": {"sfdc": {**SF, "default_jobs": {k: False for k in
                                                  ("users", "accounts", "contacts", "contact_companies")}}},
                         "jobs": {"renewals": _job(source={"object": "renewals", "stream": "renewals"})}})
    assert e.value.key == "jobs.renewals.source.stream"
    assert "salesforce has no stream 'renewals'" in str(e.value) and "any_object" in str(e.value)


def test_any_custom_object_through_the_template_stream(tmp_path):
    cfg = _load(tmp_path, {"connections": {"sfdc": {**SF, "default_jobs": {k: False for k in
                                                    ("users", "accounts", "contacts", "contact_companies")}}},
                           "jobs": {"renewals": _job(source={"object": "renewals", "stream": "any_object",
                                                              "sobject": "Renewal__c", "fields": ["Stage__c"]})}})
    src = cfg.jobs["renewals"].source
    bound = cfg.connections["sfdc"].spec.stream(src.stream_name, src.sobject)
    assert bound.object == "Renewal__c" and bound.spec.template


def test_insert_is_refused_on_an_api_source(tmp_path):
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, {"connections": {"sfdc": {**SF, "default_jobs": {"accounts": {"operation": "insert",
                                                                                       "deletes": {"policy": "ignore"}}}}}})
    assert e.value.key == "connections.sfdc.default_jobs.accounts"  # a default job is blamed on its override
    assert "insert would add them twice; use upsert" in str(e.value)


def test_definitions_get_time_partitioned_source_assets_jobs_and_schedules(tmp_path):
    cfg = _load(tmp_path, {"connections": {"sfdc": SF}})
    defs = build_definitions(cfg, warehouse=str(tmp_path / "wh.duckdb"))
    asset = defs.resolve_assets_def(dg.AssetKey(["source", "sfdc", "account"]))
    assert isinstance(asset.partitions_def, dg.TimeWindowPartitionsDefinition)
    assert asset.group_names_by_key[dg.AssetKey(["source", "sfdc", "account"])] == "sfdc"
    assert {"load_sfdc__account_job", "sfdc_accounts_job"} <= {j.name for j in defs.jobs}
    sched = defs.resolve_schedule_def("sfdc_accounts_schedule")
    assert sched.cron_schedule == "0 * * * *" and sched.job_name == "sfdc_accounts_job"
    ctx = dg.build_schedule_context(repository_def=defs.get_repository_def())
    (req,) = sched.evaluate_tick(ctx).run_requests
    assert req.partition_key == current_key(cfg.connections["sfdc"])  # a tick syncs now (the latest partition)


def test_the_latest_partition_syncs_incrementally_and_earlier_ones_resync_their_window(tmp_path):
    cfg = _load(tmp_path, {"connections": {"sfdc": {**SF, "sync_start": "2026-01-01"}}})
    conn = cfg.connections["sfdc"]
    keys = partitions_def(conn).get_partition_keys()
    assert keys[0] == "2026-01-01" and keys[-1] == current_key(conn)
    assert window_of(conn, keys[-1], keys[-1]) is None
    w = window_of(conn, "2026-02-01", "2026-03-01")
    assert (w.start.isoformat(), w.end.isoformat()) == ("2026-02-01T00:00:00+00:00", "2026-04-01T00:00:00+00:00")


def test_missing_secrets_are_named_by_their_env_vars_never_shown(tmp_path):
    cfg = _load(tmp_path, {"connections": {"sfdc": {**SF, "auth": {"method": "refresh_token",
                                                                    "env": {"refresh_token": "SF_RT"}}}}})
    settings = Settings.from_env({"GSDP_SFDC_CLIENT_ID": "3MVGid", "GSDP_SFDC_CLIENT_SECRET": "very-secret-value"})
    with pytest.raises(ConnectionSetupError) as e:
        connection_secrets("sfdc", cfg.connections["sfdc"], settings)
    assert "SF_RT (its refresh_token)" in str(e.value) and "very-secret-value" not in str(e.value)
    settings = Settings.from_env({"GSDP_SFDC_CLIENT_ID": "3MVGid", "GSDP_SFDC_CLIENT_SECRET": "very-secret-value",
                                  "SF_RT": "5Aep-token"})
    secrets = connection_secrets("sfdc", cfg.connections["sfdc"], settings)
    assert "very-secret-value" not in repr(secrets) and secrets["client_secret"].reveal() == "very-secret-value"


def test_host_map_and_token_store(tmp_path):
    assert parse_host_map("login.salesforce.com=http://127.0.0.1:8700, API.hubapi.com=http://127.0.0.1:8701/") == {
        "login.salesforce.com": "http://127.0.0.1:8700", "api.hubapi.com": "http://127.0.0.1:8701"}
    with pytest.raises(ConnectionSetupError, match="not host=http"):
        parse_host_map("login.salesforce.com")
    store = FileTokenStore(tmp_path / "tokens")
    assert store.get("sfdc") is None
    store.put("sfdc", "rotated-token")
    assert store.get("sfdc") == "rotated-token"
    assert (tmp_path / "tokens" / "sfdc.refresh_token").stat().st_mode & 0o777 == 0o600


def test_a_delete_policy_needs_identifiers_from_the_records_primary_key(tmp_path):
    """A reported delete carries only the record's id: a job keyed on another column could never
    match one, so config refuses delete/mark there instead of counting deletes that never apply."""
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, {"connections": {"sfdc": {**SF, "default_jobs": {"accounts": {
            "mappings": [{"source": "External_Id__c", "target": "external_id"}, {"source": "Name", "target": "name"}],
            "lookups": []}}}}})
    assert e.value.key == "connections.sfdc.default_jobs.accounts"
    assert "carries only the record's Id" in str(e.value) and "policy: ignore" in str(e.value)
    cfg = _load(tmp_path, {"connections": {"sfdc": {**SF, "default_jobs": {"accounts": {
        "mappings": [{"source": "External_Id__c", "target": "external_id"}, {"source": "Name", "target": "name"}],
        "lookups": [], "deletes": {"policy": "ignore"}}}}}})
    assert cfg.jobs["sfdc_accounts"].deletes.policy == "ignore"
