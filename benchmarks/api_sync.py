"""Benchmark: a Salesforce full sync into Company through the whole API path vs the fake's own
serving rate, measured side by side.

The Salesforce fake (gs_assets/connectors/rest_api/systems/salesforce/fake) is seeded with
`--records` accounts (default 200,000; 200 users own them, one in ten has a parent account) and
served by uvicorn on 127.0.0.1 in a *separate process*, so the client and the server do not share
one GIL: in one process the server's JSON encoding and the client's parsing would take turns on
one core and the floor would measure their sum, not what the fake can serve. Then, N times
(default 3, the median is reported), each in a fresh process:
  floor: the same client (RestClient: OAuth refresh token, host map, httpx, retries, usage
         headers) fetches the same pages the sync reads (describe, then SOQL queryAll of the same
         fields with the same upper bound, 2,000-record batches, following nextRecordsUrl) and
         discards them: the rate at which the fake serves, the floor for any API path;
  sync:  the Dagster run of the Salesforce accounts job (`sfdc_accounts_job`, latest partition:
         a full sync, as the ledger is empty): describe, count, fetch, land 4 loads of 50,000,
         prepare, map, lookups (ParentId -> parent company, a self lookup; OwnerId -> User as CSM),
         validation, write (200,000 inserts into Company), ledger and run log.
User is loaded once by the users job (into a template warehouse copied before every sync), so the
CSM lookup finds its users. Prints records/s of both (medians), the median of each run's
sync/floor ratio (floor and sync run back to back, so a busy machine slows both) and the sync
process's peak RSS, and where the sync's time goes (Dagster steps; pages and landing in the source
step).

    ./dev bench api                     # 200,000 records, 3 runs
    ./dev bench api --records 20000 --runs 1
    ./dev bench api --runs 1 --profile /tmp/sync.prof   # then: python -m pstats /tmp/sync.prof
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONNECTION = "sfdc"
CONNECTIONS = f"""
connections:
  {CONNECTION}:
    type: rest_api
    system: salesforce
    environment: production
    auth: {{method: refresh_token}}
    # only the two jobs the benchmark runs
    default_jobs: {{contacts: false, contact_companies: false}}
"""
INDUSTRIES = ["Software", "Financial Services", "Healthcare", "Manufacturing", "Retail", "Education", "Media",
              "Telecommunications", "Energy", "Government"]
COUNTRIES = ["United States", "Germany", "France", "United Kingdom", "Japan", "India", "Brazil", "Canada"]


# ---------------------------------------------------------------------------- the fake (server process)

def serve(args: dict) -> None:
    """Seed the fake and serve it on loopback; print {url, hosts, secrets env} as one JSON line,
    then obey stdin: `reset` drops the org's open query cursors (each holds a copy of the rows it
    pages through), EOF stops."""
    from gs_assets.connectors.rest_api.fakes.harness import Clock, serve_on_loopback
    from gs_assets.connectors.rest_api.systems.salesforce.fake import create_app
    from gs_assets.connectors.rest_api.systems.salesforce.fake.__main__ import (
        DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REFRESH_TOKEN, demo_org)

    t0 = time.perf_counter()
    org = demo_org(seed="empty")
    # Records stamped an hour ago (whatever today's date is), so a full sync's upper bound
    # (now - visibility lag) includes every one of them.
    org.clock = Clock(start=datetime.now(timezone.utc) - timedelta(hours=1), ticking=True)
    org.api_limit = 10_000_000  # the benchmark makes ~110 calls a sync; no budget stop
    users = [org.insert("User", Username=f"csm{i}@bench.example.sf", FirstName=f"Csm{i}", LastName="Bench",
                        Email=f"csm{i}@bench.example", Title="CSM") for i in range(args["users"])]
    accounts: list[str] = []
    for i in range(args["records"]):
        accounts.append(org.insert("Account", {
            "Name": f"Account {i:07d}", "Industry": INDUSTRIES[i % len(INDUSTRIES)],
            "NumberOfEmployees": 10 + (i * 37) % 50_000, "AnnualRevenue": float(10_000 + (i * 7_919) % 5_000_000),
            "Website": f"https://www.account{i}.example.com", "BillingCountry": COUNTRIES[i % len(COUNTRIES)],
            "OwnerId": users[i % len(users)],
            "ParentId": accounts[(i * 7) % (i // 10)] if i >= 100 and i % 10 == 0 else None}))
    server = serve_on_loopback(create_app(org))
    hosts = sorted(org.token_hosts() | {org.api_host})
    print(json.dumps({
        "url": server.url, "seed_seconds": time.perf_counter() - t0,
        "env": {"GSDP_REST_HOST_MAP": ",".join(f"{h}={server.url}" for h in hosts),
                f"GSDP_{CONNECTION.upper()}_CLIENT_ID": DEMO_CLIENT_ID,
                f"GSDP_{CONNECTION.upper()}_CLIENT_SECRET": DEMO_CLIENT_SECRET,
                f"GSDP_{CONNECTION.upper()}_REFRESH_TOKEN": DEMO_REFRESH_TOKEN}}), flush=True)
    for line in sys.stdin:
        if line.strip() == "reset":
            with org.lock:
                org.cursors.clear()
            print("ok", flush=True)
    server.stop()


class FakeServer:
    def __init__(self, records: int, users: int):
        self.proc = subprocess.Popen([sys.executable, __file__, "--child", "serve",
                                      json.dumps({"records": records, "users": users})],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the fake did not start (exit code {self.proc.wait()})")
        info = json.loads(line)
        self.env: dict[str, str] = info["env"]
        self.seed_seconds: float = info["seed_seconds"]

    def reset(self) -> None:
        self.proc.stdin.write("reset\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ok":
            raise RuntimeError("the fake did not answer reset")

    def stop(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------- measurements (fresh processes)

def child(mode: str, args: dict, env: dict, profile: str = "") -> dict:
    prof = ["-m", "cProfile", "-o", profile] if profile else []
    proc = subprocess.run([sys.executable, *prof, __file__, "--child", mode, json.dumps(args)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, **env})
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_child(mode: str, args: dict) -> None:
    out: dict = {}
    import gs_assets.connectors.registry  # noqa: F401  (registers the connector kinds, rest_api among them)
    from gs_assets.config.loader import load_platform_config
    cfg = load_platform_config(Path(os.environ["GSDP_CONFIG_DIR"]))
    conn = cfg.connections[CONNECTION]
    if mode == "floor":
        from gs_assets.connectors.rest_api.paginators import paginate
        from gs_assets.connectors.rest_api.reader import bound_stream, check_fields, discovered_fields
        from gs_assets.connectors.rest_api.resource import rest_client
        from gs_assets.connectors.rest_api.spec import render
        from gs_assets.connectors.rest_api.sync import literal
        from gs_assets.engine.pipeline import jobs_reading
        stream = bound_stream(conn, jobs_reading(cfg, CONNECTION, "account")[0].source)
        s, inc = stream.spec, stream.spec.incremental
        t0 = time.perf_counter()
        with rest_client(CONNECTION, conn) as client:
            # the fields and the upper bound the sync's full read asks for (reader.sync_stream, sync.read_stream)
            names = [f.name for f in check_fields(cfg, CONNECTION, "account", stream, discovered_fields(client, stream))]
            upper = literal(datetime.now(timezone.utc) - timedelta(seconds=inc.visibility_lag_seconds), inc.literal_format)
            values = {"object": stream.object, "fields": s.fields_param_separator.join(names), "field_list": names,
                      "where": inc.where_prefix + render(inc.upper_filter, {"upper": upper})}
            records = pages = 0
            for raw, _data, _req, _last in paginate(client, s.request, values, s.paginator, s.record_selector):
                records += len(raw)  # discarded
                pages += 1
            out["calls"] = client.usage.calls
        out.update(records=records, pages=pages, fields=len(names))
    elif mode in ("users", "sync"):
        import dagster as dg
        from gs_assets.connectors.rest_api.assets import current_key
        from gs_assets.definitions import build_definitions
        job = f"{CONNECTION}_{'users' if mode == 'users' else 'accounts'}"
        defs = build_definitions(cfg)
        instance = dg.DagsterInstance.ephemeral()
        spent = {"pages": 0.0, "land": 0.0}
        _time_pages_and_landing(spent)
        t0 = time.perf_counter()
        res = defs.resolve_job_def(f"{job}_job").execute_in_process(
            partition_key=current_key(conn), instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        assert res.success, f"{job} failed"
        out.update(spent)
        out["steps"] = _step_seconds(instance, res.run_id)
        import duckdb
        con = duckdb.connect(os.environ["GSDP_WAREHOUSE"], read_only=True)
        out["result"] = con.execute(
            "SELECT count(*), sum(rows_read), sum(inserted), sum(updated), sum(rejected), "
            "string_agg(DISTINCT status, ',') FROM gs_ops.job_runs WHERE job = ?", [job]).fetchone()
        out["sync"] = con.execute(
            "SELECT count(*), sum(pages), sum(records) FROM gs_ops.syncs WHERE source_object = ?",
            ["account" if mode == "sync" else "user"]).fetchone()
        out["company"] = con.execute("SELECT count(*), count(csm), count(parent_company) FROM gs.company").fetchone()
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out, default=str))


def _time_pages_and_landing(spent: dict) -> None:
    """Where the source step's time goes: add the time spent getting pages (HTTP and JSON decoding,
    the floor's work) and landing loads to `spent`; the rest of the step is describe, count and
    turning records into Arrow batches (sync.read_stream, reader.sync_stream)."""
    from gs_assets.connectors.rest_api import reader, sync
    paginate, land_records = sync.paginate, reader.land_records

    def timed_paginate(*a, **kw):
        pages = paginate(*a, **kw)
        while True:
            t = time.perf_counter()
            try:
                item = next(pages)
            except StopIteration:
                return
            finally:
                spent["pages"] += time.perf_counter() - t
            yield item

    def timed_land(*a, **kw):
        t = time.perf_counter()
        try:
            return land_records(*a, **kw)
        finally:
            spent["land"] += time.perf_counter() - t

    sync.paginate, reader.land_records = timed_paginate, timed_land


def _step_seconds(instance, run_id: str) -> dict:
    steps: dict[str, float] = {}
    for e in instance.all_logs(run_id):
        de = e.dagster_event
        if de is None or not de.step_key:
            continue
        if de.event_type_value == "STEP_START":
            steps[de.step_key] = -e.timestamp
        elif de.event_type_value == "STEP_SUCCESS":
            steps[de.step_key] += e.timestamp
    return steps


# ---------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000, help="accounts in the fake (default 200000)")
    ap.add_argument("--users", type=int, default=200, help="users owning them (default 200)")
    ap.add_argument("--runs", type=int, default=3, help="measurements of each; the median is reported (default 3)")
    ap.add_argument("--work", default=str(ROOT / "data" / "bench_api"))
    ap.add_argument("--profile", default="", help="write a cProfile of the first sync process to this file")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        if a.child[0] == "serve":
            serve(json.loads(a.child[1]))
        else:
            run_child(a.child[0], json.loads(a.child[1]))
        return 0

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    cfg_dir = work / "config"
    cfg_dir.mkdir(exist_ok=True)
    (cfg_dir / "connections.yaml").write_text(textwrap.dedent(CONNECTIONS))
    print(f"seeding the Salesforce fake with {a.records:,} accounts and {a.users} users (separate process)...", flush=True)
    fake = FakeServer(a.records, a.users)
    floors, syncs = [], []
    try:
        print(f"  seeded in {fake.seed_seconds:.1f} s", flush=True)
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            base = {**fake.env, "GSDP_CONFIG_DIR": str(cfg_dir), "GSDP_REST_TOKEN_DIR": f"{tmp}/tokens"}
            template = f"{tmp}/template.duckdb"
            users = child("users", {}, {**base, "GSDP_WAREHOUSE": template})
            print(f"  users job (template warehouse): {users['result']}", flush=True)
            for i in range(a.runs):
                fake.reset()
                floor = child("floor", {}, base)
                assert floor["records"] == a.records, floor
                db = f"{tmp}/run{i}.duckdb"
                shutil.copy(template, db)
                fake.reset()
                sync = child("sync", {}, {**base, "GSDP_WAREHOUSE": db}, a.profile if i == 0 else "")
                os.unlink(db)
                floors.append(floor)
                syncs.append(sync)
                print(f"  run {i + 1}: floor {floor['seconds']:.2f} s ({a.records / floor['seconds']:,.0f} rec/s, "
                      f"{floor['pages']} pages, {floor['calls']} calls); sync {sync['seconds']:.2f} s "
                      f"({a.records / sync['seconds']:,.0f} rec/s, peak RSS {sync['peak_rss_mib']:.0f} MiB); "
                      f"job runs {sync['result']}; company (rows, csm, parent) {sync['company']}", flush=True)
                print(f"         sync steps (s): " + ", ".join(f"{k} {v:.2f}" for k, v in sync["steps"].items())
                      + f"; in the source step: pages (HTTP + JSON) {sync['pages']:.2f}, landing {sync['land']:.2f}",
                      flush=True)
    finally:
        fake.stop()
    f_s = statistics.median(f["seconds"] for f in floors)
    s_s = statistics.median(s["seconds"] for s in syncs)
    rss = statistics.median(s["peak_rss_mib"] for s in syncs)
    ratios = sorted(s["seconds"] / f["seconds"] for f, s in zip(floors, syncs))  # each run's pair, side by side
    last = syncs[-1]
    runs, read, ins, upd, rej, status = last["result"]
    print()
    print(f"median of {a.runs} run(s), {a.records:,} Salesforce accounts -> Company "
          f"(sync/floor: the median of each run's ratio; range {ratios[0]:.2f}x-{ratios[-1]:.2f}x):")
    print("| records | floor s | floor rec/s | sync s | sync rec/s | sync/floor | sync peak RSS MiB | result |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    print(f"| {a.records:,} | {f_s:.2f} | {a.records / f_s:,.0f} | {s_s:.2f} | {a.records / s_s:,.0f} | "
          f"{statistics.median(ratios):.2f}x | {rss:.0f} | {status}: {runs} loads, {ins:,} ins, {upd:,} upd, {rej:,} rej |")
    med = {k: statistics.median(s["steps"].get(k, 0.0) for s in syncs) for k in syncs[0]["steps"]}
    print("median sync step seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in med.items())
          + f"; in the source step: pages (HTTP + JSON) {statistics.median(s['pages'] for s in syncs):.2f}, "
          f"landing {statistics.median(s['land'] for s in syncs):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
