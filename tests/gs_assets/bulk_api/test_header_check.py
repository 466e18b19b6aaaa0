"""The Bulk API checks an upload's header against what landing needs: the columns of every job
reading the job's source object (one definition, pipeline.source_columns), so an accepted upload
lands for each of them and a sibling job's columns are not "unexpected"."""

import json

import pytest
from fastapi.testclient import TestClient

from gs_assets.connectors.bulk_upload import access_keys as ak
from gs_assets.connectors.bulk_upload.app import create_app
from gs_assets.config.loader import load_platform_config
from gs_assets.connectors.s3_files.reader import land
from gs_assets.engine.pipeline import apply_pending, source_columns
from gs_assets.engine.warehouse_setup import sync_object_tables
from resources.warehouse import Warehouse
from tests.config_builder import config_yaml, file_job
from tests.conftest import write_config

BASE = "/v1.0/admin/connector/job/bulkimport"


ACCOUNTS = {"prefix": "in/", "file_name": "accounts*.csv"}  # two jobs read one source object


def jobs_yaml(bucket):
    return config_yaml(bucket, {
        "accounts": file_job("accounts", "company", ["external_id"], {"Id": "external_id", "Name": "name"},
                             connection="crm", source=ACCOUNTS, bulk_upload=True),
        "account_owners": file_job("accounts", "user", ["email"], {"OwnerEmail": "email", "OwnerName": "name"},
                                   connection="crm", source=ACCOUNTS)}, connection="crm")


@pytest.fixture
def api(tmp_path, s3_server, bucket):
    cfg = load_platform_config(write_config(tmp_path / "config", jobs_yaml(bucket)))
    db = tmp_path / "bulk.sqlite"
    con = ak.connect(db)
    _, key = ak.create_key(con, "crm sync")
    con.close()
    client = TestClient(create_app(cfg, s3_client=s3_server.client(), db_path=db), raise_server_exceptions=False)
    return {"client": client, "key": key, "cfg": cfg, "s3": s3_server.client(), "bucket": bucket, "tmp": tmp_path}


def upload(api, text: str):
    return api["client"].post(BASE, headers={"accessKey": api["key"]}, data={"jobId": "accounts"},
                              files={"file": ("a.csv", text.encode(), "text/csv")})


def test_one_definition_of_the_columns_a_source_object_needs(api):
    assert source_columns(api["cfg"], "crm", "accounts") == {
        "Id": ["accounts"], "Name": ["accounts"], "OwnerEmail": ["account_owners"], "OwnerName": ["account_owners"]}


def test_an_upload_lacking_a_sibling_jobs_columns_is_refused_naming_that_job(api):
    r = upload(api, "Id,Name\nA1,Acme\n")
    assert r.status_code == 400, r.text
    desc = r.json()["errorDesc"]
    assert "missing column(s) ['OwnerEmail', 'OwnerName']" in desc
    assert "job 'account_owners'" in desc and "unexpected" not in desc
    r = upload(api, "Id,Name,OwnerEmail,OwnerName,Extra\nA1,Acme,o@x.io,Olga,1\n")
    assert r.status_code == 400 and "unexpected column(s) ['Extra']" in r.json()["errorDesc"]
    assert api["s3"].list_objects_v2(Bucket=api["bucket"], Prefix="bulk/").get("KeyCount", 0) == 0


def test_an_upload_with_every_jobs_columns_is_accepted_and_lands_for_both(api):
    r = upload(api, "Id,Name,OwnerEmail,OwnerName\nA1,Acme,o@x.io,Olga\n")
    assert r.status_code == 200, r.text
    (obj,) = api["s3"].list_objects_v2(Bucket=api["bucket"], Prefix="bulk/")["Contents"]
    body = api["s3"].get_object(Bucket=api["bucket"], Key=obj["Key"])["Body"]
    wh = Warehouse(database=str(api["tmp"] / "wh.duckdb"))
    with wh.connect() as con:
        sync_object_tables(con, api["cfg"].model)
    landed = land(wh, api["cfg"], connection="crm", source_object="accounts", chunks=body.iter_chunks(1 << 16),
                  name=obj["Key"], source_file=f"s3://{api['bucket']}/{obj['Key']}", etag=obj["ETag"].strip('"'))
    assert landed.status == "landed", landed.error
    results = apply_pending(wh, api["cfg"], "company") + apply_pending(wh, api["cfg"], "user")
    assert sorted((r.job, r.status, r.inserted) for r in results) == [
        ("account_owners", "Success", 1), ("accounts", "Success", 1)]
    with wh.read() as con:
        assert json.loads(con.execute("SELECT header FROM gs_ops.loads").fetchone()[0]) == [
            "Id", "Name", "OwnerEmail", "OwnerName"]


def test_a_dry_run_checks_the_header_as_landing_does(api):
    from gs_assets.connectors.s3_files.dry_run import dry_run
    wh = Warehouse(database=str(api["tmp"] / "dry.duckdb"))
    out = dry_run(wh, api["cfg"], api["cfg"].jobs["accounts"], chunks=[b"Id,Name\nA1,Acme\n"], name="accounts_1.csv",
                  source_file="accounts_1.csv")
    assert not out.ok and "['OwnerEmail', 'OwnerName']" in out.render() and "account_owners" in out.render()
