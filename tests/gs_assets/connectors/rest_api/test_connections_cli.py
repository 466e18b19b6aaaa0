"""`gsdp connections` and `gsdp connections test NAME` (Connectors 2.0's "test connection") against
the HubSpot and Salesforce fakes on 127.0.0.1: what a person checks is printed, no secret ever is,
and a failure is one paragraph with exit status 1."""

from __future__ import annotations

import logging
import textwrap

import pytest

from gs_assets.cli import main
from gs_assets.connectors.rest_api.fakes.harness import Clock, free_port, serve_on_loopback
from gs_assets.connectors.rest_api.systems.hubspot.fake import HubSpotPortal
from gs_assets.connectors.rest_api.systems.hubspot.fake import create_app as hubspot_app
from gs_assets.connectors.rest_api.systems.salesforce.fake import create_app as salesforce_app
from gs_assets.connectors.rest_api.systems.salesforce.fake.__main__ import (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET,
                                                                             DEMO_REFRESH_TOKEN, demo_org)

# Both fakes driven through the CLI: the full suite (CI) runs them, the fast lane does not.
pytestmark = pytest.mark.slow

PAT = "pat-na1-0c1d2e3f-aaaa-bbbbccccddddeeeeffff0000"

CONFIG = """\
connections:
  hs:
    type: rest_api
    system: hubspot
    auth: {method: private_app}
  hs_oauth:
    type: rest_api
    system: hubspot
    auth: {method: oauth}
  sfdc:
    type: rest_api
    system: salesforce
    environment: production
    auth: {method: refresh_token}
  exports:
    type: s3
    bucket: crm-exports
    system: hubspot_crm
    prefix: hubspot/
"""


@pytest.fixture(scope="module")
def fakes():
    portal = HubSpotPortal(Clock())
    portal.add_private_app(PAT)
    oauth = portal.add_oauth_app()
    org = demo_org(seed="empty")
    hs = serve_on_loopback(hubspot_app(portal))
    sf = serve_on_loopback(salesforce_app(org))
    yield {"portal": portal, "oauth": oauth, "org": org, "hs": hs, "sf": sf}
    hs.stop()
    sf.stop()


@pytest.fixture
def env(tmp_path, monkeypatch, fakes):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "jobs.yaml").write_text(CONFIG)
    org = fakes["org"]
    hosts = {"api.hubapi.com": fakes["hs"].url, **{h: fakes["sf"].url for h in org.token_hosts() | {org.api_host}}}
    monkeypatch.setenv("GSDP_REST_HOST_MAP", ",".join(f"{h}={u}" for h, u in sorted(hosts.items())))
    monkeypatch.setenv("GSDP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("GSDP_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("GSDP_REST_TOKEN_DIR", str(tmp_path / "tokens"))
    client_id, secret, refresh = fakes["oauth"]
    secrets = {"GSDP_HS_ACCESS_TOKEN": PAT, "GSDP_HS_OAUTH_CLIENT_ID": client_id,
               "GSDP_HS_OAUTH_CLIENT_SECRET": secret, "GSDP_HS_OAUTH_REFRESH_TOKEN": refresh,
               "GSDP_SFDC_CLIENT_ID": DEMO_CLIENT_ID, "GSDP_SFDC_CLIENT_SECRET": DEMO_CLIENT_SECRET,
               "GSDP_SFDC_REFRESH_TOKEN": DEMO_REFRESH_TOKEN}
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    return {"secrets": set(secrets.values()), "hosts": hosts, "monkeypatch": monkeypatch, **fakes}


def run(capsys, caplog, *argv) -> tuple[int, str, str]:
    caplog.set_level(logging.DEBUG)
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err + "\n".join(r.getMessage() for r in caplog.records)


def assert_no_secret(env, *texts) -> None:
    tokens = env["portal"].access_tokens  # the OAuth access tokens the fake issued during the test
    for text in texts:
        for s in env["secrets"] | set(tokens):
            assert s not in text, "a secret reached the output"


def test_connections_lists_type_system_environment(env, capsys, caplog):
    rc, out, _ = run(capsys, caplog, "connections")
    assert rc == 0
    lines = {ln.split()[0]: ln.split() for ln in out.splitlines()[1:]}
    assert lines["hs"][:3] == ["hs", "rest_api", "hubspot"]
    assert lines["sfdc"][:4] == ["sfdc", "rest_api", "salesforce", "production"]
    assert lines["exports"][:3] == ["exports", "s3", "hubspot_crm"]


def test_hubspot_private_app_test_prints_portal_and_usage_without_secret(env, capsys, caplog):
    rc, out, err = run(capsys, caplog, "connections", "test", "hs")
    assert rc == 0, err
    assert "connection hs: OK" in out
    assert "hubspot (HubSpot)" in out and "api.hubapi.com" in out
    assert f"portal id    {env['portal'].portal_id}" in out
    assert "/250000 daily API calls used" in out
    assert_no_secret(env, out, err)


def test_hubspot_oauth_test_authorizes_without_showing_tokens(env, capsys, caplog):
    rc, out, err = run(capsys, caplog, "connections", "test", "hs_oauth")
    assert rc == 0, err
    assert "oauth" in out and str(env["portal"].portal_id) in out
    assert env["portal"].access_tokens  # a token was issued ...
    assert_no_secret(env, out, err)     # ... and is shown nowhere


def test_salesforce_test_prints_org_environment_hosts_and_usage(env, capsys, caplog):
    org = env["org"]
    rc, out, err = run(capsys, caplog, "connections", "test", "sfdc")
    assert rc == 0, err
    assert "salesforce (Salesforce)" in out and "production" in out
    assert "login.salesforce.com" in out and org.api_host in out
    assert f"org id       {org.org_id}" in out
    assert "daily API calls used" in out
    assert_no_secret(env, out, err)


def test_wrong_private_app_token_is_one_paragraph_and_exit_1(env, capsys, caplog):
    env["monkeypatch"].setenv("GSDP_HS_ACCESS_TOKEN", "pat-na1-wrong-token-value")
    rc, out, err = run(capsys, caplog, "connections", "test", "hs")
    assert rc == 1 and out == ""
    first = err.split("\n")[0]
    assert first.startswith("connection hs (HubSpot") and "401" in first and "credentials" in first
    assert "Traceback" not in err and "pat-na1-wrong-token-value" not in err


def test_revoked_refresh_token_needs_reauthorization_without_retries(env, capsys, caplog):
    portal = env["portal"]
    client_id, secret, _ = env["oauth"]
    _, _, refresh = portal.add_oauth_app(client_id, secret)
    portal.revoke_refresh_token(refresh)
    env["monkeypatch"].setenv("GSDP_HS_OAUTH_REFRESH_TOKEN", refresh)
    before = portal.token_requests
    rc, out, err = run(capsys, caplog, "connections", "test", "hs_oauth")
    assert rc == 1
    assert "re-authoriz" in err.split("\n")[0] and "Authorize the connection again" in err
    assert portal.token_requests == before + 1  # asked once: no retry storm
    assert refresh not in err and secret not in err


def test_unreachable_host_is_one_paragraph_and_exit_1(env, capsys, caplog):
    dead = f"http://127.0.0.1:{free_port()}"
    env["monkeypatch"].setenv("GSDP_REST_HOST_MAP", f"api.hubapi.com={dead}")
    rc, out, err = run(capsys, caplog, "connections", "test", "hs")
    assert rc == 1
    first = err.split("\n")[0]
    assert "could not be reached" in first and dead in first
    assert "Traceback" not in err
    assert_no_secret(env, out, err)


def test_unknown_or_non_api_connection_is_a_usage_error(env, capsys, caplog):
    rc, _, err = run(capsys, caplog, "connections", "test", "nope")
    assert rc == 2 and "unknown connection 'nope'" in err
    rc, _, err = run(capsys, caplog, "connections", "test", "exports")
    assert rc == 2 and "type s3" in err
