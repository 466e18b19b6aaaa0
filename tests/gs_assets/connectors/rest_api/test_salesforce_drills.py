"""SIGKILL mid-sync: a `gsdp run` subprocess syncing Salesforce (the fake on loopback in this
process) is killed while a query page is in flight; the fake holds that request on an Event, so
the kill lands at the same point on any machine. Nothing uncommitted may remain, the cursor may
not pass what committed, and the next run gives the object one clean sync gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from tests.gs_assets.connectors.rest_api.sf_env import new_org, start

pytestmark = [pytest.mark.drill, pytest.mark.slow]


@pytest.fixture
def sf(tmp_path, monkeypatch):
    p, srv = start(tmp_path, monkeypatch, new_org())
    yield p
    srv.stop()


def test_sigkill_mid_sync_leaves_no_partial_load_and_the_next_run_equals_one_clean_sync(sf):
    from gs_assets.engine import ledger
    import duckdb

    p = sf
    p.write_config("records_per_load: 3000\n")
    org = p.org
    for _ in range(14):  # 7,000 accounts, 500 per second: query pages of 2,000, 2,000, 2,000, 1,000
        org.insert_many("Account", [{"Name": "A"} for _ in range(500)])
        org.clock.advance(seconds=1)
    org.clock.advance(seconds=60)
    reached, release = threading.Event(), threading.Event()

    def hold(_org):  # the 4th query page: pages 1-2 committed as one load, page 3 read but not committed
        reached.set()
        release.wait(timeout=300)

    # API requests: describe, the row estimate (COUNT()), then queryAll pages 1..4
    org.plan.at_request(6, hold)
    proc = subprocess.Popen([sys.executable, "-m", "gs_assets.cli", "run", "sfdc_accounts"],
                            env={**os.environ, **p.env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        if not reached.wait(timeout=300):
            out = proc.stdout.read().decode() if proc.poll() is not None else "(still running)"
            pytest.fail(f"the sync never asked for the 4th query page within 300 s; gsdp run said: {out}")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    order = sorted((r["SystemModstamp"], r["Id"]) for r in org.records("Account"))
    # only the committed load is there: 4,000 records; page 3 (read, not committed) is absent
    assert p.rows("SELECT records FROM gs_ops.syncs") == [(4000,)]
    loads = p.rows("SELECT load_id, status, rows_read FROM gs_ops.loads")
    assert [(s, n) for _, s, n in loads] == [("landed", 4000)]
    con = duckdb.connect(str(p.warehouse), read_only=True)
    try:
        raw = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw_sfdc'").fetchall()
        assert len(raw) == 1  # one landed table per committed load, none for the killed chunk
        landed = {r[0] for r in con.execute(f'SELECT "Id" FROM raw_sfdc."{raw[0][0]}"').fetchall()}
        cur = ledger.stream_cursor(con, "sfdc", "account").cursor_to
    finally:
        con.close()
    stamp, last_id = order[3999]
    assert cur["cursor"].startswith(stamp.strftime("%Y-%m-%dT%H:%M:%S")) and last_id in cur["pks"]
    assert not any(i in cur["pks"] for _, i in order[4000:])
    assert landed == {i for _, i in order[:4000]}

    # the next run resumes and the object is what one clean sync gives
    assert p.run("sfdc_accounts") == 0
    got = p.rows("SELECT external_id, name FROM gs.company")
    assert len(got) == len({r[0] for r in got}) == 7000
    assert {r[0] for r in got} == {i for _, i in order}
    assert p.one("SELECT count(*) FROM gs_ops.job_runs WHERE status = 'Failed'") == 0
