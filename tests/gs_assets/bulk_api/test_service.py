"""The Bulk API end to end: uploads landing in a moto S3 server, loaded by the Dagster sensor through
the job's normal path, status and error files read back over HTTP. Request handling is driven in
process through FastAPI's TestClient (the `bulk` fixture); the tests where the real service is the
point (it starts and answers curl, survives a restart, serves two uploads at once) use `served`:
uvicorn on 127.0.0.1 in a subprocess, driven by curl and httpx."""

import json
import os
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import dagster as dg
import duckdb
import httpx
import pytest
from fastapi.testclient import TestClient

from gs_assets.connectors.bulk_upload import access_keys as ak
from tests.config_builder import config_yaml, file_job
from tests.dagster_helpers import free_port, persistent_instance

BASE = "/v1.0/admin/connector/job/bulkimport"


def jobs_yaml(bucket):
    return config_yaml(bucket, {
        "companies": file_job("companies", "company", ["external_id"], {"Id": "external_id", "Name": "name", "Stage": "stage"},
                              connection="crm", source={"prefix": "in/", "file_name": "companies*.csv", "match": "glob"},
                              bulk_upload=True),
        "users": file_job("users", "user", ["email"], {"Email": "email", "Name": "name"}, connection="crm",
                          source={"prefix": "in/", "file_name": "users*.csv", "match": "glob"}, bulk_upload=True)},
        connection="crm", bulk_api={"max_upload_mb": 0.05, "calls_per_hour": 4, "calls_per_day": 100})


GOOD = "Id,Name,Stage\nA1,Acme,Launched\nA2,Beta,Adopting\n"
PARTIAL = 'Id,Name,Stage\nA3,Gamma,Launched\nA4,"Delta, Inc",Onboarding\n'


class Service:
    def __init__(self, env: dict):
        self.env, self.port, self.proc = env, free_port(), None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self):
        env = {**self.env, "GSDP_BULK_PORT": str(self.port)}
        self.proc = subprocess.Popen([sys.executable, "-m", "gs_assets.connectors.bulk_upload.app"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                if httpx.get(self.url + "/openapi.json", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("bulk API did not start")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@contextmanager
def _platform(tmp_path, s3_server, bucket, monkeypatch, real_server: bool):
    from gs_assets.connectors.bulk_upload.app import create_app
    from gs_assets.config.loader import load_platform_config
    from gs_assets.definitions import build_definitions
    from tests.conftest import write_config
    cfg_dir = tmp_path / "config"
    cfg = load_platform_config(write_config(cfg_dir, jobs_yaml(bucket)))
    built = {}

    def platform_parts():
        """The definitions and Dagster instance, built for the tests that load (most only talk to the API)."""
        if not built:
            built["defs"] = build_definitions(cfg, warehouse=str(tmp_path / "wh.duckdb"))
            built["instance"] = persistent_instance(tmp_path)
        return built["defs"], built["instance"]
    env = {**os.environ, **s3_server.env(), "GSDP_CONFIG_DIR": str(cfg_dir), "GSDP_WAREHOUSE": str(tmp_path / "wh.duckdb"),
           "GSDP_BULK_DB": str(tmp_path / "bulk.sqlite")}
    monkeypatch.setenv("GSDP_BULK_DB", env["GSDP_BULK_DB"])
    if real_server:
        service = Service(env).start()
        http = httpx.Client(base_url=service.url, timeout=60)
    else:  # the same app the service serves, built from the same config, S3 and queue, without a socket
        service = None
        http = TestClient(create_app(cfg, s3_client=s3_server.client(), db_path=tmp_path / "bulk.sqlite"))
    con = ak.connect(tmp_path / "bulk.sqlite")
    _, key = ak.create_key(con, "crm sync")
    _, users_only = ak.create_key(con, "hr sync", ["users"])
    con.close()
    state = {"cursor": None}

    def load_queued(status_sensors: bool = True):
        """One tick of bulk_uploads_sensor, its runs, then the status sensors for each run."""
        defs, instance = platform_parts()
        sensor = defs.resolve_sensor_def("bulk_uploads_sensor")
        res = sensor(dg.build_sensor_context(instance=instance, cursor=state["cursor"],
                                             resources={"warehouse": defs.resources["warehouse"]}))
        state["cursor"] = res.cursor
        state["last_skip"] = res.skip_reason.skip_message if res.skip_reason else None
        for req in res.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        for rr in res.run_requests or []:
            result = defs.resolve_job_def(rr.job_name).execute_in_process(
                partition_key=rr.partition_key, instance=instance, tags=rr.tags, raise_on_error=False)
            if not status_sensors:  # as when Dagster's run status sensor failed and moved on
                continue
            name = "bulk_status_success_sensor" if result.success else "bulk_status_failure_sensor"
            event = result.get_run_success_event() if result.success else result.get_run_failure_event()
            ctx = dg.build_run_status_sensor_context(sensor_name=name, dagster_event=event, dagster_instance=instance,
                                                     dagster_run=instance.get_run_by_id(result.run_id),
                                                     resources={"warehouse": defs.resources["warehouse"]})
            sensor_def = next(s for s in defs.sensors if s.name == name)
            sensor_def(ctx.for_run_failure() if not result.success else ctx)
        return len(res.run_requests or [])

    try:
        yield {"service": service, "http": http, "key": key, "users_only": users_only, "load": load_queued, "tmp": tmp_path,
               "state": state, "s3": s3_server.client(), "bucket": bucket, "env": env}
    finally:
        http.close()
        if service:
            service.stop()


@pytest.fixture
def bulk(tmp_path, s3_server, bucket, monkeypatch):
    """The Bulk API app in process (FastAPI's TestClient), with the platform's sensors and runs."""
    with _platform(tmp_path, s3_server, bucket, monkeypatch, real_server=False) as b:
        yield b


@pytest.fixture
def served(tmp_path, s3_server, bucket, monkeypatch):
    """The Bulk API as it runs: uvicorn in a subprocess on a free port of 127.0.0.1."""
    with _platform(tmp_path, s3_server, bucket, monkeypatch, real_server=True) as b:
        yield b


def curl_upload(b, job, path, key=None, name=None):
    form = f"file=@{path}" + (f";filename={name}" if name else "") + ";type=text/csv"
    p = subprocess.run(["curl", "-sS", "-w", "\\n%{http_code}", "-X", "POST", b["service"].url + BASE,
                        "-H", f"accessKey: {key or b['key']}", "-H", "loginName: ops@example.com",
                        "-F", form, "-F", f"jobId={job}"], capture_output=True, text=True, timeout=60)
    body, code = p.stdout.rsplit("\n", 1)
    return int(code), json.loads(body)


def httpx_upload(b, job, text, key=None, name="upload.csv", ctype="text/csv"):
    return b["http"].post(BASE, headers={"accessKey": key or b["key"]}, data={"jobId": job},
                          files={"file": (name, text.encode() if isinstance(text, str) else text, ctype)})


def status(b, status_id, key=None):
    return b["http"].get(f"{BASE}/status/{status_id}", headers={"accessKey": key or b["key"]})


def bulk_keys(b):
    return [o["Key"] for o in b["s3"].list_objects_v2(Bucket=b["bucket"], Prefix="bulk/").get("Contents", [])]


@pytest.mark.slow  # a real uvicorn subprocess
def test_curl_upload_to_success_with_counts(served):
    bulk = served  # the real service, started as `./dev bulk-api` starts it, answers curl
    f = bulk["tmp"] / "companies.csv"
    f.write_text(GOOD)
    code, body = curl_upload(bulk, "companies", f)
    assert code == 200 and body["result"] is True and body["requestId"] and body["statusId"]
    assert status(bulk, body["statusId"]).json()["status"] == "queued"
    assert bulk["load"]() == 1
    st = status(bulk, body["statusId"]).json()
    assert st["status"] == "Success" and st["counts"]["rows_read"] == 2 and st["counts"]["inserted"] == 2
    assert st["errorFileUrl"] is None and st["startedAt"] and st["endedAt"]
    with duckdb.connect(bulk["env"]["GSDP_WAREHOUSE"], read_only=True) as con:
        assert con.execute("SELECT external_id FROM gs.company ORDER BY 1").fetchall() == [("A1",), ("A2",)]


def test_an_upload_whose_status_sensor_missed_the_run_is_settled_by_the_uploads_sensor(bulk, monkeypatch):
    # Dagster's run status sensors skip a run for good when they fail (e.g. the warehouse stayed busy).
    body = httpx_upload(bulk, "companies", GOOD, name="companies.csv").json()
    assert bulk["load"](status_sensors=False) == 1
    assert status(bulk, body["statusId"]).json()["status"] == "running"
    assert bulk["load"]() == 0 and "settled" not in bulk["state"]["last_skip"]  # within the grace period
    monkeypatch.setenv("GSDP_BULK_STATUS_GRACE_SECONDS", "0")
    assert bulk["load"]() == 0 and "settled 1 upload status" in bulk["state"]["last_skip"]
    st = status(bulk, body["statusId"]).json()
    assert st["status"] == "Success" and st["counts"]["rows_read"] == 2 and st["counts"]["inserted"] == 2


def test_partial_success_and_its_error_file(bulk):
    r = httpx_upload(bulk, "companies", PARTIAL)
    assert r.status_code == 200, r.text
    bulk["load"]()
    st = status(bulk, r.json()["statusId"]).json()
    assert st["status"] == "Partial Success" and (st["counts"]["inserted"], st["counts"]["rejected"]) == (1, 1)
    errors = bulk["http"].get(st["errorFileUrl"], headers={"accessKey": bulk["key"]})
    assert errors.status_code == 200 and errors.headers["content-type"].startswith("text/csv")
    assert errors.text == (
        "\"line_number\",\"Id\",\"Name\",\"Stage\",\"unparsed_row\",\"reasons\"\n"  # every field quoted (CSV injection)
        "\"3\",\"A4\",\"Delta, Inc\",\"Onboarding\",,\"stage: not one of ['New Customer', 'Kicked Off', 'Launched', 'Adopting', "
        "'Will Expand', 'Will Churn', 'Churned'] (value Onboarding)\"\n")


def test_wrong_key_and_key_not_allowed_for_the_job(bulk):
    r = httpx_upload(bulk, "companies", GOOD, key="gsdp_00000000_nope")
    assert r.status_code == 401 and "companies" not in r.text and "users" not in r.text
    assert httpx_upload(bulk, "nope", GOOD, key="wrong").status_code == 401  # same answer for any job
    r = httpx_upload(bulk, "companies", GOOD, key=bulk["users_only"])
    assert r.status_code == 403 and "may not upload to job 'companies'" in r.text
    assert bulk_keys(bulk) == []


def test_oversize_upload_is_refused_and_nothing_is_stored(bulk):
    big = "Id,Name,Stage\n" + "".join(f"A{i},Company {i},Launched\n" for i in range(5000))  # ~110 KB > 50 KB
    r = httpx_upload(bulk, "companies", big, name="big.csv")
    code, body = r.status_code, r.json()
    assert code == 413 and "nothing was stored" in body["errorDesc"]
    assert bulk_keys(bulk) == []
    with sqlite3.connect(bulk["env"]["GSDP_BULK_DB"]) as con:
        assert con.execute("SELECT count(*) FROM bulk_requests").fetchone()[0] == 0


def test_rate_limit_then_success_after_the_window(bulk):
    for _ in range(4):
        assert httpx_upload(bulk, "users", "Email,Name\na@x.io,Ann\n").status_code == 200
    r = httpx_upload(bulk, "users", "Email,Name\na@x.io,Ann\n")
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 3601
    # An hour later (the calls age out of the window): accepted again.
    with sqlite3.connect(bulk["env"]["GSDP_BULK_DB"]) as con:
        old = (datetime.now(timezone.utc) - timedelta(hours=1, minutes=1)).isoformat()
        con.execute("UPDATE bulk_calls SET at = ?", [old])
    assert httpx_upload(bulk, "users", "Email,Name\na@x.io,Ann\n").status_code == 200


def test_header_mismatch_names_missing_and_unexpected_columns(bulk):
    r = httpx_upload(bulk, "companies", "Id,Title,Stage,Extra\nA1,Acme,Launched,x\n")
    assert r.status_code == 400
    assert "missing column(s) ['Name']" in r.text and "unexpected column(s) ['Title', 'Extra']" in r.text
    assert bulk_keys(bulk) == []


def test_client_file_name_never_becomes_a_path(bulk):
    r = httpx_upload(bulk, "companies", GOOD, name="../../etc/passwd")
    code, body = r.status_code, r.json()
    assert code == 200
    (key,) = bulk_keys(bulk)
    assert ".." not in key and "passwd" not in key and key.endswith(body["requestId"] + ".csv")
    assert status(bulk, body["statusId"]).json()["fileName"] == "passwd"


def test_gzip_upload(bulk):
    import gzip
    r = httpx_upload(bulk, "companies", gzip.compress(GOOD.encode()), name="c.csv.gz", ctype="application/gzip")
    assert r.status_code == 200, r.text
    bulk["load"]()
    assert status(bulk, r.json()["statusId"]).json()["status"] == "Success"


@pytest.mark.slow  # a real uvicorn subprocess
def test_two_concurrent_uploads_to_one_object_both_land(served):
    bulk = served  # two requests at once on the real server
    a = "Id,Name,Stage\n" + "".join(f"A{i},Co {i},Launched\n" for i in range(0, 300))
    b = "Id,Name,Stage\n" + "".join(f"B{i},Co {i},Launched\n" for i in range(0, 300))
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda text: httpx_upload(bulk, "companies", text), [a, b]))
    assert [r.status_code for r in responses] == [200, 200]
    assert bulk["load"]() == 2
    for r in responses:
        assert status(bulk, r.json()["statusId"]).json()["counts"]["inserted"] == 300
    with duckdb.connect(bulk["env"]["GSDP_WAREHOUSE"], read_only=True) as con:
        assert con.execute("SELECT count(*) FROM gs.company").fetchone()[0] == 600


@pytest.mark.slow  # a real uvicorn subprocess
def test_a_queued_upload_completes_across_a_service_restart(served):
    bulk = served
    r = httpx_upload(bulk, "companies", GOOD)
    assert r.status_code == 200
    bulk["service"].stop()
    bulk["load"]()  # the daemon's sensor does not need the service
    bulk["service"].start()
    assert status(bulk, r.json()["statusId"]).json()["status"] == "Success"


def test_openapi_document_describes_the_endpoints(bulk):
    doc = bulk["http"].get("/openapi.json").json()
    assert {BASE, BASE + "/status/{statusId}", BASE + "/status/{statusId}/errors"} <= set(doc["paths"])
    assert "post" in doc["paths"][BASE] and "413" in doc["paths"][BASE]["post"]["responses"]


def test_a_gzip_upload_that_inflates_past_the_limit_is_refused_and_nothing_is_stored(bulk):
    import zlib
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    rows = b"A1,Acme,Launched\n" * 60000  # ~1 MB of rows per block
    body = comp.compress(b"Id,Name,Stage\n") + b"".join(comp.compress(rows) for _ in range(8)) + comp.flush()
    assert len(body) < 50_000, "under the 0.05 MB upload limit, 8 MB inflated (> 10 x the upload limit)"
    r = httpx_upload(bulk, "companies", body, name="c.csv.gz", ctype="application/gzip")
    assert r.status_code == 413, r.text
    assert "inflates to more than 0.5 MB" in r.json()["errorDesc"] and "nothing was stored" in r.json()["errorDesc"]
    assert bulk_keys(bulk) == []
    with sqlite3.connect(bulk["env"]["GSDP_BULK_DB"]) as con:
        assert con.execute("SELECT count(*) FROM bulk_requests").fetchone()[0] == 0
