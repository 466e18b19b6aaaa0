"""Salesforce syncs through Dagster against the fake on loopback: the drills of issue 13 (ties,
token expiry, retries, the daily limit, schema drift, environments, credentials, window re-syncs,
rotated tokens, deletes), each checked in the warehouse (gs.*, gs_ops.syncs / loads / job_runs)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.gs_assets.connectors.rest_api.sf_env import new_org, start

# Syncs through Dagster against a fake on loopback: the full suite (CI) runs them, the fast lane does not.
pytestmark = pytest.mark.slow


@pytest.fixture
def sf(tmp_path, monkeypatch):
    servers = []

    def make(org=None, **kw):
        p, srv = start(tmp_path, monkeypatch, org or new_org(**kw))
        servers.append(srv)
        return p

    yield make
    for s in servers:
        s.stop()


def cursor(p):
    from gs_assets.engine import ledger
    import duckdb
    con = duckdb.connect(str(p.warehouse), read_only=True)
    try:
        r = ledger.stream_cursor(con, "sfdc", "account")
        return r.cursor_to if r else None
    finally:
        con.close()


def test_smoke_accounts_sync(sf):
    p = sf()
    ids = [p.org.insert("Account", Name=f"Acct {i}") for i in range(5)]
    assert p.run("sfdc_accounts") == 0
    assert sorted(r[0] for r in p.companies()) == sorted(ids)


def assert_no_stack_trace(text: str) -> None:
    """Expected trouble is one paragraph; a stack trace (Python's or Dagster's) means a bug."""
    assert "Traceback" not in text and "Stack Trace" not in text and "unexpected error" not in text, text


def company_ids(p):
    rows = p.rows("SELECT external_id FROM gs.company")
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "a record landed twice in gs.company"
    return set(ids)


def sorted_accounts(p):
    """(SystemModstamp, Id) of every live account in the order a sync reads them."""
    return sorted((r["SystemModstamp"], r["Id"]) for r in p.org.records("Account"))


# ---------------------------------------------------------------------------- 1. the tie drill
@pytest.mark.slow
def test_tie_drill_records_sharing_a_stamp_across_a_page_boundary_and_a_late_write_land_once(sf):
    p = sf()
    p.write_config("records_per_load: 2000\n")
    org = p.org
    t1 = org.stamp()
    org.insert_many("Account", [{"Name": f"Early {i}"} for i in range(1500)], stamped=t1)
    t2 = t1 + timedelta(seconds=5)
    # 1,000 accounts on one SystemModstamp: the 2,000-record page boundary falls inside them
    org.insert_many("Account", [{"Name": f"Tied {i}"} for i in range(1000)], stamped=t2)
    org.clock.advance(seconds=30)
    assert p.run("sfdc_accounts") == 0
    syncs = p.rows("SELECT records, cursor_to FROM gs_ops.syncs ORDER BY synced_at")
    assert [r[0] for r in syncs] == [2000, 500]  # each page committed as its own load
    assert company_ids(p) == p.accounts()
    # writes that become visible only now, stamped at and before the cursor (inside the lookback)
    late_at = org.commit_late("Account", {"Name": "Late at the boundary"}, stamped=t2)
    late_before = org.commit_late("Account", {"Name": "Late before"}, stamped=t2 - timedelta(seconds=30))
    tied = [i for s, i in sorted_accounts(p) if s == t2][:3]
    for rid in tied:  # updated in the same transaction, also visible late
        org.commit_late("Account", rid, stamped=t2, Name="Tied, renamed")
    org.clock.advance(seconds=30)
    assert p.run("sfdc_accounts") == 0
    ids = company_ids(p)
    assert ids == p.accounts() and {late_at, late_before} <= ids and len(ids) == 2502
    names = dict(p.rows("SELECT external_id, name FROM gs.company WHERE external_id IN (SELECT unnest(?))", [tied]))
    assert set(names.values()) == {"Tied, renamed"}


# ---------------------------------------------------------------------------- 4. daily limit
@pytest.mark.slow
@pytest.mark.parametrize("signal", ["usage_header", "request_limit_exceeded"])
def test_daily_limit_mid_sync_keeps_committed_loads_and_the_next_run_resumes(sf, capsys, signal):
    p = sf()
    p.write_config("records_per_load: 2000\n")
    org = p.org
    for _ in range(10):  # 5,000 accounts, 500 per second
        org.insert_many("Account", [{"Name": "A"} for _ in range(500)])
        org.clock.advance(seconds=1)
    org.clock.advance(seconds=60)
    # describe, the row estimate (SELECT COUNT()) and two queryAll pages are served, then no more
    if signal == "usage_header":  # Sforce-Limit-Info says the allocation is spent: the client stops itself
        org.limit_after(4)
    else:  # other integrations spend it behind the sync's back: the 5th call gets 403 REQUEST_LIMIT_EXCEEDED
        org.plan.at_request(5, lambda o: o.use_api_calls(o.api_limit))
    assert p.run("sfdc_accounts") == 0, capsys.readouterr()
    out = capsys.readouterr()
    assert_no_stack_trace(out.out + out.err)
    loads = p.rows("SELECT records, cursor_to FROM gs_ops.syncs ORDER BY synced_at")
    assert [r[0] for r in loads] == [2000, 2000]
    import dagster as dg
    ev = dg.DagsterInstance.get().get_latest_materialization_event(dg.AssetKey(["source", "sfdc", "account"]))
    meta = ev.asset_materialization.metadata
    assert "resumes on the next run" in meta["stopped"].value and meta["loads"].value == 2
    order = sorted_accounts(p)
    assert company_ids(p) == {i for _, i in order[:4000]}
    cur = cursor(p)
    last_stamp, last_id = order[3999]
    assert cur["cursor"].startswith(last_stamp.strftime("%Y-%m-%dT%H:%M:%S")) and last_id in cur["pks"]
    # the rolling 24-hour allocation frees up: the next run resumes from the committed cursor
    org.api_calls.clear()
    assert p.run("sfdc_accounts") == 0
    assert company_ids(p) == p.accounts() and len(p.accounts()) == 5000
    assert p.one("SELECT count(*) FROM gs_ops.job_runs WHERE status = 'Failed'") == 0


# ---------------------------------------------------------------------------- 6. schema drift
@pytest.mark.slow
def test_schema_drift_added_field_reported_removed_mapped_field_fails_before_writing(sf, capsys):
    import dagster as dg
    p = sf()
    org = p.org
    ids = [org.insert("Account", Name=f"Acct {i}", Website=f"https://a{i}.example") for i in range(3)]
    org.clock.advance(seconds=10)
    assert p.run("sfdc_accounts") == 0
    org.add_field("Account", "Region__c", "string", label="Region")
    org.update("Account", ids[0], Name="Renamed")
    org.clock.advance(seconds=10)
    assert p.run("sfdc_accounts") == 0
    instance = dg.DagsterInstance.get()
    ev = instance.get_latest_materialization_event(dg.AssetKey(["source", "sfdc", "account"]))
    meta = ev.asset_materialization.metadata
    assert "Region__c" in meta["schema_drift"].value and "added" in meta["schema_drift"].value
    before = p.companies()
    cur = cursor(p)
    loads = p.one("SELECT count(*) FROM gs_ops.loads")
    capsys.readouterr()
    org.remove_field("Account", "Website")  # mapped by sfdc_accounts (-> website)
    org.update("Account", ids[1], Name="Changed after the field went")
    org.clock.advance(seconds=10)
    assert p.run("sfdc_accounts") == 1
    err = capsys.readouterr().err
    assert "sfdc_accounts" in err and "'Website'" in err
    assert_no_stack_trace(err)
    assert p.companies() == before
    assert cursor(p) == cur
    assert p.one("SELECT count(*) FROM gs_ops.loads") == loads


# ---------------------------------------------------------------------------- 8. credentials
def _event_log_text(run_ids=None) -> str:
    import dagster as dg
    instance = dg.DagsterInstance.get()
    out = []
    for run in instance.get_runs():
        for e in instance.all_logs(run.run_id):
            out.append(repr(e))
    return "\n".join(out)


def test_wrong_client_secret_is_one_clear_paragraph_without_any_secret(sf, capsys, monkeypatch):
    from tests.gs_assets.connectors.rest_api import sf_env
    p = sf()
    p.org.insert("Account", Name="Acct")
    wrong = "wrong-consumer-secret-5b7e0"
    monkeypatch.setenv("GSDP_SFDC_CLIENT_SECRET", wrong)
    assert p.run("sfdc_accounts") == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "sfdc" in text and "consumer key and secret" in text
    assert_no_stack_trace(text)
    logs = _event_log_text()
    assert logs
    for secret in (wrong, sf_env.CLIENT_SECRET, sf_env.REFRESH_TOKEN):
        assert secret not in text and secret not in logs
    assert p.rows("SELECT count(*) FROM gs.company")[0][0] == 0


def test_revoked_refresh_token_needs_reauthorization_one_token_call(sf, capsys):
    from tests.gs_assets.connectors.rest_api import sf_env
    p = sf()
    p.org.insert("Account", Name="Acct")
    p.org.revoke_refresh_token(sf_env.REFRESH_TOKEN)
    assert p.run("sfdc_accounts") == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "sfdc" in text and "Authorize the connection again" in text
    assert_no_stack_trace(text)
    assert len(p.log.token_calls()) == 1  # no retry storm
    assert not p.log.api_hosts()
    assert sf_env.REFRESH_TOKEN not in text + _event_log_text()


# ---------------------------------------------------------------------------- 11. deletes
def test_deleted_account_marks_company_inactive_counted(sf):
    p = sf()
    ids = [p.org.insert("Account", Name=f"Acct {i}") for i in range(3)]
    p.org.clock.advance(seconds=10)
    assert p.run("sfdc_accounts") == 0
    p.org.delete("Account", ids[1])
    p.org.clock.advance(seconds=10)
    assert p.run("sfdc_accounts") == 0
    status = {r[0]: r[2] for r in p.companies()}
    assert status[ids[1]] == "Inactive" and status[ids[0]] != "Inactive" and len(status) == 3
    deleted, applied = p.rows("SELECT deleted, deletes_applied FROM gs_ops.job_runs WHERE job = 'sfdc_accounts' "
                              "ORDER BY started_at DESC LIMIT 1")[0]
    assert (deleted, applied) == (1, 1)


def test_deleted_account_removed_by_a_delete_policy_override(sf):
    p = sf()
    p.write_config("default_jobs:\n  accounts: {deletes: {policy: delete}}\n")
    ids = [p.org.insert("Account", Name=f"Acct {i}") for i in range(3)]
    p.org.clock.advance(seconds=10)
    assert p.run("sfdc_accounts") == 0
    p.org.delete("Account", ids[1])
    p.org.clock.advance(seconds=10)
    assert p.run("sfdc_accounts") == 0
    assert company_ids(p) == {ids[0], ids[2]}
    deleted, applied = p.rows("SELECT deleted, deletes_applied FROM gs_ops.job_runs WHERE job = 'sfdc_accounts' "
                              "ORDER BY started_at DESC LIMIT 1")[0]
    assert (deleted, applied) == (1, 1)


# ---------------------------------------------------------------------------- 2. token expiry
def test_session_ends_mid_sync_the_sync_refreshes_and_finishes(sf):
    p = sf()
    p.write_config("records_per_load: 2000\n")
    p.org.insert_many("Account", [{"Name": f"A {i}"} for i in range(4500)])
    p.org.clock.advance(seconds=60)
    p.org.plan.expire_sessions_after_calls = 3  # describe, COUNT(), page 1; page 2 meets INVALID_SESSION_ID
    assert p.run("sfdc_accounts") == 0
    assert company_ids(p) == p.accounts()
    assert len(p.log.token_calls()) == 2  # the first token and one refresh
    assert p.rows("SELECT records FROM gs_ops.syncs ORDER BY synced_at") == [(2000,), (2000,), (500,)]


# ---------------------------------------------------------------------------- 3. 429 and 5xx
def test_429_retry_after_and_a_5xx_burst_mid_sync_are_retried_without_real_sleeping(sf, monkeypatch):
    import time
    p = sf()
    monkeypatch.setenv("GSDP_REST_MAX_RETRY_WAIT_SECONDS", "0.01")
    slept = []
    real_sleep = time.sleep
    monkeypatch.setattr(time, "sleep", lambda s: (slept.append(s), real_sleep(s))[1])
    p.write_config("records_per_load: 2000\n")
    p.org.insert_many("Account", [{"Name": f"A {i}"} for i in range(4500)])
    p.org.clock.advance(seconds=60)
    p.log.answer[4] = (429, {"Retry-After": "7", "Content-Type": "application/json"}, b"{}")
    # the fake sees describe, COUNT(), page 1, page 2 (after the 429), then 3 x 503 SERVER_UNAVAILABLE on page 3
    p.org.plan.at_request(5, lambda o: o.plan.fail_next(3, 503))
    assert p.run("sfdc_accounts") == 0
    assert company_ids(p) == p.accounts()
    assert slept.count(0.01) == 4  # one wait per retry, each capped by the setting (7 s and backoff asked)


@pytest.mark.slow
def test_retry_after_longer_than_the_sync_may_wait_stops_cleanly_and_resumes(sf):
    p = sf()
    p.write_config("records_per_load: 2000\n")
    p.org.insert_many("Account", [{"Name": f"A {i}"} for i in range(4500)])
    p.org.clock.advance(seconds=60)
    p.log.answer[4] = (429, {"Retry-After": "3600", "Content-Type": "application/json"}, b"{}")
    assert p.run("sfdc_accounts") == 0
    assert p.rows("SELECT records FROM gs_ops.syncs") == [(2000,)]
    assert p.run("sfdc_accounts") == 0
    assert company_ids(p) == p.accounts()


# ---------------------------------------------------------------------------- 7. environments
@pytest.mark.parametrize("case", ["production", "sandbox", "my_domain", "wrong_environment"])
def test_each_environment_gets_its_token_from_its_own_host_and_calls_the_instance(sf, case):
    org_kw, conn, token_host, api_host = {
        "production": ({"environment": "production", "my_domain": None}, "environment: production\n",
                       "login.salesforce.com", "na1.salesforce.com"),
        "sandbox": ({"environment": "sandbox", "my_domain": None}, "environment: sandbox\n",
                    "test.salesforce.com", "na1.salesforce.com"),
        "my_domain": ({"environment": "production", "my_domain": "acme", "instance_host": "na7.salesforce.com"},
                      "domain: acme\n", "acme.my.salesforce.com", "na7.salesforce.com"),
        # a sandbox org, a connection that says production: login.salesforce.com does not know the org
        "wrong_environment": ({"environment": "sandbox", "my_domain": None}, "environment: production\n",
                              "login.salesforce.com", None),
    }[case]
    p = sf(**org_kw)
    p.write_config(conn)
    rid = p.org.insert("Account", Name="Acct")
    p.org.clock.advance(seconds=10)
    rc = p.run("sfdc_accounts")
    assert p.log.token_calls() == [token_host]
    if api_host is None:
        assert rc == 1 and not p.log.api_hosts()
        assert p.one("SELECT count(*) FROM gs.company") == 0
    else:
        assert rc == 0 and p.log.api_hosts() == {api_host}
        assert company_ids(p) == {rid}


# ---------------------------------------------------------------------------- 9. window re-sync
def _month(dt):
    return dt.strftime("%Y-%m-01")


def _materialize(p, **kw):
    import dagster as dg
    from gs_assets.config.loader import load_platform_config
    from gs_assets.dagster_jobs import job_asset_job_name
    from gs_assets.definitions import build_definitions
    defs = build_definitions(load_platform_config(p.root / "config"))
    return defs.resolve_job_def(job_asset_job_name("sfdc_accounts")).execute_in_process(
        instance=dg.DagsterInstance.get(), raise_on_error=False, **kw)


def test_window_resync_of_an_earlier_month_rereads_it_without_moving_the_cursor(sf):
    p = sf()
    org = p.org
    t0 = org.stamp()
    ids = [org.insert("Account", Name=f"Acct {i}") for i in range(3)]
    org.clock.advance(hours=1)
    assert p.run("sfdc_accounts") == 0
    cur = cursor(p)
    # a write that became visible long after its stamp (outside the lookback): incremental syncs miss it
    late = org.commit_late("Account", {"Name": "Very late"}, stamped=t0 - timedelta(minutes=30))
    org.clock.advance(minutes=5)
    assert p.run("sfdc_accounts") == 0
    assert late not in company_ids(p)
    res = _materialize(p, partition_key=_month(t0))
    assert res.success
    assert company_ids(p) == set(ids) | {late}
    assert cursor(p) == cur
    rows = p.rows("SELECT mode, window_from, window_to FROM gs_ops.syncs WHERE mode = 'window'")
    assert len(rows) == 1 and rows[0][1].startswith(_month(t0))


def test_backfill_over_two_months_is_one_window(sf):
    p = sf()
    org = p.org
    t0 = org.stamp()
    first = (t0.replace(day=1) - timedelta(days=1)).replace(day=1)
    older = org.insert("Account", Name="Last month", stamped=first + timedelta(days=3))
    newer = org.insert("Account", Name="This month")
    org.clock.advance(minutes=5)
    res = _materialize(p, tags={"dagster/asset_partition_range_start": _month(first),
                                "dagster/asset_partition_range_end": _month(t0)})
    assert res.success
    rows = p.rows("SELECT DISTINCT sync_id, mode, window_from, window_to FROM gs_ops.syncs")
    assert len(rows) == 1 and rows[0][1] == "window"
    assert rows[0][2].startswith(_month(first)) and rows[0][3] > _month(t0)
    assert company_ids(p) == {older, newer}
    assert cursor(p) is None  # a window re-sync never sets the incremental cursor


# ---------------------------------------------------------------------------- 10. rotated refresh token
def test_rotated_refresh_token_is_stored_owner_only_and_used_next_run(sf):
    import os
    import stat
    from tests.gs_assets.connectors.rest_api import sf_env
    p = sf()
    p.org.plan.rotate_refresh_tokens = True
    a = p.org.insert("Account", Name="First")
    p.org.clock.advance(seconds=10)
    assert p.run("sfdc_accounts") == 0
    assert sf_env.REFRESH_TOKEN not in p.org.refresh_tokens  # the env var's token no longer works
    files = list(p.token_dir.iterdir())
    assert [f.name for f in files] == ["sfdc.refresh_token"]
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    assert files[0].read_text().strip() in p.org.refresh_tokens
    b = p.org.insert("Account", Name="Second")
    p.org.clock.advance(seconds=10)
    assert p.run("sfdc_accounts") == 0
    assert company_ids(p) == {a, b}
    assert len(p.log.token_calls()) == 2
    logs = _event_log_text()
    for secret in [sf_env.REFRESH_TOKEN, sf_env.CLIENT_SECRET, *p.org.refresh_tokens, *p.org.sessions]:
        assert secret not in logs


def test_daily_limit_already_spent_when_the_sync_starts_stops_cleanly(sf, capsys):
    p = sf()
    ids = [p.org.insert("Account", Name=f"Acct {i}") for i in range(3)]
    p.org.clock.advance(seconds=10)
    p.org.use_api_calls(p.org.api_limit)  # other integrations spent today's allocation
    assert p.run("sfdc_accounts") == 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert_no_stack_trace(text)
    assert "API request limit is reached" in text and "resumes on the next run" in text
    assert p.one("SELECT count(*) FROM gs.company") == 0
    p.org.api_calls.clear()
    assert p.run("sfdc_accounts") == 0
    assert company_ids(p) == set(ids)


def test_server_errors_that_outlast_the_retries_at_describe_fail_in_one_paragraph(sf, capsys):
    p = sf()
    p.org.insert("Account", Name="Acct")
    p.org.clock.advance(seconds=10)
    p.org.plan.fail_next(10, 503)  # more than the spec's 5 attempts
    assert p.run("sfdc_accounts") == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert_no_stack_trace(text)
    assert "sfdc" in text and "kept failing" in text
    assert p.one("SELECT count(*) FROM gs_ops.syncs") == 0
