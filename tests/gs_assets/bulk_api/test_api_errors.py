"""Every answer of the Bulk API that is an error has the API's own shape
(`{"result": false, "errorDesc": ...}`), including FastAPI's validation errors, multipart parse
errors and unknown paths; an error file gone from S3 is a clear 410, not a bare 500; loginName is
capped and cleaned before it is stored. Driven through FastAPI's TestClient (no socket needed)
against a moto S3 server."""

import sqlite3

import pytest
from fastapi.testclient import TestClient

from gs_assets.connectors.bulk_upload import access_keys as ak
from gs_assets.connectors.bulk_upload import requests_store as rs
from gs_assets.connectors.bulk_upload.app import clean_login_name, create_app
from gs_assets.config.loader import load_platform_config
from tests.config_builder import config_yaml, file_job
from tests.conftest import write_config

BASE = "/v1.0/admin/connector/job/bulkimport"


def jobs_yaml(bucket):
    return config_yaml(bucket, {"companies": file_job(
        "companies", "company", ["external_id"], {"Id": "external_id", "Name": "name"}, connection="crm",
        source={"prefix": "in/", "file_name": "companies*.csv", "match": "glob"}, bulk_upload=True)}, connection="crm")


GOOD = "Id,Name\nA1,Acme\n"


@pytest.fixture
def api(tmp_path, s3_server, bucket):
    cfg = load_platform_config(write_config(tmp_path / "config", jobs_yaml(bucket)))
    db = tmp_path / "bulk.sqlite"
    con = ak.connect(db)
    _, key = ak.create_key(con, "crm sync")
    con.close()
    client = TestClient(create_app(cfg, s3_client=s3_server.client(), db_path=db), raise_server_exceptions=False)
    return {"client": client, "key": key, "db": db, "s3": s3_server.client(), "bucket": bucket}


def api_error(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"result", "errorDesc"} and body["result"] is False, body
    return body["errorDesc"]


def upload(api, files, login=None, data=None):
    headers = {"accessKey": api["key"]}
    if login is not None:
        headers["loginName"] = login.encode("latin-1")  # as a client may send it: any byte but CR/LF
    return api["client"].post(BASE, headers=headers, data={"jobId": "companies"} if data is None else data, files=files)


def test_error_file_gone_from_s3_is_410_in_the_api_format(api):
    r = upload(api, {"file": ("c.csv", GOOD.encode(), "text/csv")})
    assert r.status_code == 200, r.text
    status_id = r.json()["statusId"]
    with sqlite3.connect(api["db"]) as con:  # the run finished Partial Success; its error file was then removed
        req = rs.get(con, status_id)
        rs.update(con, req.request_id, status="Partial Success", job_run_id="run-1",
                  error_file=f"s3://{api['bucket']}/errors/gone.errors.csv")
    r = api["client"].get(f"{BASE}/status/{status_id}/errors", headers={"accessKey": api["key"]})
    desc = api_error(r, 410)
    assert "no longer" in desc and status_id in desc and "gsdp rejects" in desc
    assert api["bucket"] not in desc  # no storage names in answers


def test_two_file_parts_are_refused_in_the_api_format(api):
    desc = api_error(upload(api, [("file", ("a.csv", GOOD.encode(), "text/csv")),
                                  ("file", ("b.csv", GOOD.encode(), "text/csv"))]), 400)
    assert "one file" in desc


def test_validation_and_routing_errors_use_the_api_format(api):
    c = api["client"]
    api_error(c.get(BASE + "/status/", headers={"accessKey": api["key"]}), 404)
    api_error(c.put(BASE, headers={"accessKey": api["key"]}), 405)
    r = c.post(BASE, headers={"accessKey": api["key"], "Content-Type": "multipart/form-data"}, content=b"x")
    api_error(r, 400)  # a multipart body without a boundary


def test_request_validation_errors_use_the_api_format(api):
    from fastapi import Query
    app = api["client"].app

    @app.get("/probe")
    def probe(n: int = Query(...)):
        return {"n": n}

    desc = api_error(api["client"].get("/probe?n=abc"), 422)
    assert "n" in desc and "integer" in desc


def test_unexpected_errors_are_500_in_the_api_format_without_details(api, monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(rs, "get", boom)
    desc = api_error(api["client"].get(f"{BASE}/status/x", headers={"accessKey": api["key"]}), 500)
    assert "secret internals" not in desc


def test_login_name_is_capped_and_cleaned(api):
    long = "a" * 300 + "@example.com"
    assert upload(api, {"file": ("c.csv", GOOD.encode(), "text/csv")}, login=long).status_code == 200
    assert upload(api, {"file": ("c.csv", GOOD.encode(), "text/csv")},
                  login="ops\x1b[31m@exa\x7fmple.com\t").status_code == 200
    with sqlite3.connect(api["db"]) as con:
        names = [r[0] for r in con.execute("SELECT login_name FROM bulk_requests ORDER BY seq")]
    assert names[0] == long[:254] and names[1] == "ops[31m@example.com"
    assert clean_login_name("\u202eops\x85@x.io ") == "ops@x.io" and clean_login_name(" \x00 ") is None
