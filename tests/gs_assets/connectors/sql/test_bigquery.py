"""The BigQuery system at its client boundary: the real google-cloud-bigquery client (and google-auth
for the service account's token) against the BigQuery fake on 127.0.0.1
(gs_assets/connectors/sql/fakes/bigquery.py: jobs.insert, jobs.get, jobs.getQueryResults paging,
the documented row and error shapes, the OAuth JWT-bearer token endpoint checking the assertion's
signature with the public key of the key this test generates).

What only a real project would show: IAM roles beyond "may run jobs in the project", BigQuery's own
SQL semantics (the fake runs the SQL on DuckDB through sqlglot), GEOGRAPHY and BIGNUMERIC's full
range, quotas, and the Storage Read API (not used: rows come from getQueryResults pages).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.cloud.bigquery import SchemaField

from gs_assets.connectors.rest_api.auth import Secret
from gs_assets.connectors.rest_api.fakes.harness import Clock, serve_on_loopback
from gs_assets.connectors.sql.config import SqlConnection
from gs_assets.connectors.sql.fakes.bigquery import BigQueryFake, create_app
from gs_assets.connectors.sql.systems import system_class
from gs_assets.connectors.sql.systems.base import ConnectFailed
from gs_assets.connectors.sql.systems.bigquery import BigQuery, BigQueryError, bq_category

PROJECT = "gsdp-billing"
EMAIL = "gsdp-reader@gsdp-billing.iam.gserviceaccount.com"
NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=timezone.utc)


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _sa_json(key, token_uri: str, email: str = EMAIL) -> str:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return json.dumps({"type": "service_account", "project_id": PROJECT, "private_key_id": "k1",
                       "private_key": pem, "client_email": email, "client_id": "1234567890",
                       "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri})


@pytest.fixture(scope="module")
def bq():
    fake = BigQueryFake(project=PROJECT, location="US", clock=Clock(start=NOW))
    key = _key()
    fake.add_service_account(EMAIL, key.public_key())
    fake.create_dataset("billing", location="US")
    fake.create_dataset("eu_billing", location="EU")
    fake.run("CREATE TABLE billing.subs (id INT64, plan STRING, amount NUMERIC, ratio FLOAT64, active BOOL, "
             "start_date DATE, updated_at DATETIME, billed_at TIMESTAMP, attrs JSON, blob BYTES, at_time TIME, "
             "tags ARRAY<STRING>, addr STRUCT<city STRING, zip INT64>)")
    base = datetime(2026, 11, 1)
    fake.insert("billing.subs", [
        (i, f"plan-{i % 3}", Decimal(i) / 4, i / 8, i % 2 == 0, date(2026, 1, 1) + timedelta(days=i % 30),
         base + timedelta(minutes=i), (base + timedelta(minutes=i)).replace(tzinfo=timezone.utc),
         json.dumps({"seats": i}), bytes([i % 256]), None, [f"t{i}"], {"city": "Oslo", "zip": i})
        for i in range(1, 2501)])
    server = serve_on_loopback(create_app(fake))
    yield {"fake": fake, "key": key, "url": server.url}
    server.stop()


def _system(bq, secret: str = None, **conn) -> BigQuery:
    c = SqlConnection(type="sql", system="bigquery", project=PROJECT, location="US", endpoint=bq["url"], **conn)
    return BigQuery("lake", c, {"service_account_json": Secret(secret or _sa_json(bq["key"], bq["url"] + "/token"))})


def test_the_registry_finds_bigquery():
    assert system_class("bigquery") is BigQuery


def test_describe_maps_every_category(bq):
    with _system(bq) as s:
        s.begin_snapshot()
        cols = s.describe("billing.subs")
    assert [(c.name, c.db_type, c.category) for c in cols] == [
        ("id", "INTEGER", "integer"), ("plan", "STRING", "text"), ("amount", "NUMERIC", "decimal"),
        ("ratio", "FLOAT", "float"), ("active", "BOOLEAN", "boolean"), ("start_date", "DATE", "date"),
        ("updated_at", "DATETIME", "datetime"), ("billed_at", "TIMESTAMP", "datetime_tz"),
        ("attrs", "JSON", "json"), ("blob", "BYTES", "binary"), ("at_time", "TIME", "text"),
        ("tags", "ARRAY<STRING>", "other"), ("addr", "RECORD", "other")]
    # describe is a dry run: no job was created for it
    assert not any(j.query.startswith("SELECT * FROM billing.subs") for j in bq["fake"].jobs.values())


def test_describe_a_query_on_a_fully_qualified_table(bq):
    with _system(bq) as s:
        cols = s.describe(f"(SELECT id, amount * 2 AS twice, CURRENT_TIMESTAMP() AS seen FROM {PROJECT}.billing.subs "
                          "WHERE active)")
    assert [(c.name, c.category) for c in cols] == [("id", "integer"), ("twice", "decimal"),
                                                    ("seen", "datetime_tz")]


def test_types_the_fake_cannot_hold_map_by_name():
    assert bq_category(SchemaField("g", "GEOGRAPHY"))[0] == "other"
    assert bq_category(SchemaField("b", "BIGNUMERIC"))[0] == "decimal"
    assert bq_category(SchemaField("i", "INT64"))[0] == "integer"
    assert bq_category(SchemaField("r", "STRUCT", fields=[SchemaField("x", "STRING")]))[0] == "other"
    assert bq_category(SchemaField("n", "INTEGER", mode="REPEATED"))[0] == "other"


def test_rows_page_and_convert_values(bq):
    fake = bq["fake"]
    with _system(bq, fetch_rows=1000) as s:
        s.describe("billing.subs")
        sql = ("SELECT d.`id` AS `id`, d.`amount` AS `amount`, d.`active` AS `active`, d.`updated_at` AS `u`, "
               "d.`billed_at` AS `b`, d.`attrs` AS `attrs`, d.`blob` AS `blob` FROM billing.subs AS d "
               "WHERE d.`updated_at` >= @p1 AND d.`updated_at` < @p2 AND d.`updated_at` IS NOT NULL "
               "ORDER BY d.`updated_at`, d.`id`")
        lower = datetime(2026, 11, 1, 0, 5, tzinfo=timezone.utc)  # aware bounds on a DATETIME column
        upper = datetime(2026, 11, 2, 18, 0, tzinfo=timezone.utc)  # minute 2520: ids 5..2500
        before = len(fake.requests)
        chunks = list(s.rows(sql, [lower, upper]))
    assert [len(c) for c in chunks] == [1000, 1000, 496]
    got = [r for c in chunks for r in c]
    assert [r[0] for r in got] == list(range(5, 2501))
    first = got[0]
    assert first[1] == Decimal("1.25") and first[2] is False
    assert first[3] == datetime(2026, 11, 1, 0, 5) and first[4] == datetime(2026, 11, 1, 0, 5, tzinfo=timezone.utc)
    assert first[5] == {"seats": 5} and first[6] == bytes([5])
    calls = fake.requests[before:]
    pages = [c for c in calls if c[1].startswith(f"/bigquery/v2/projects/{PROJECT}/queries/")]
    assert [c[0] for c in calls].count("POST") == 1  # one job: one snapshot
    assert len(pages) >= 3  # the first page, then one request per pageToken
    job = list(fake.jobs.values())[-1]
    assert {p["name"]: p["parameterType"]["type"] for p in job.parameters} == {"p1": "DATETIME", "p2": "DATETIME"}


def test_timestamp_bounds_stay_timestamps(bq):
    with _system(bq, fetch_rows=100) as s:
        s.describe("billing.subs")
        sql = ("SELECT d.`id` AS `id` FROM billing.subs AS d WHERE d.`billed_at` >= @p1 AND d.`billed_at` < @p2 "
               "ORDER BY d.`billed_at`, d.`id`")
        got = [r for c in s.rows(sql, [datetime(2026, 11, 1, 1, 0), datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)])
               for r in c]
    assert [r[0] for r in got] == list(range(60, 120))
    job = list(bq["fake"].jobs.values())[-1]
    assert [p["parameterType"]["type"] for p in job.parameters] == ["TIMESTAMP", "TIMESTAMP"]


def test_scalar_parameters_by_python_type(bq):
    s = _system(bq)
    s._types = {}
    ps = s.parameters("SELECT 1", [True, 7, 1.5, Decimal("2.50"), date(2026, 1, 2), b"\x01", "x",
                                   datetime(2026, 1, 1), datetime(2026, 1, 1, tzinfo=timezone.utc)])
    assert [p.type_ for p in ps] == ["BOOL", "INT64", "FLOAT64", "NUMERIC", "DATE", "BYTES", "STRING", "DATETIME",
                                     "TIMESTAMP"]
    assert [p.name for p in ps][:2] == ["p1", "p2"]
    assert s.placeholder(3) == "@p3" and s.quote("a`b") == "`a\\`b`"


def test_server_now_is_the_servers_clock(bq):
    with _system(bq) as s:
        assert s.server_now() == NOW
    bq["fake"].clock.advance(minutes=5)
    with _system(bq) as s:
        assert s.server_now() == NOW + timedelta(minutes=5)
    bq["fake"].clock.set(NOW)


def test_a_key_the_token_endpoint_does_not_know_is_connect_failed_without_secrets(bq):
    other = _key()
    secret = _sa_json(other, bq["url"] + "/token")
    s = _system(bq, secret=secret)
    with pytest.raises(ConnectFailed) as e:
        s.connect()
    text = str(e.value)
    assert text.startswith(f"connection lake (Google BigQuery {PROJECT}): the service account's token request "
                           "was refused")
    assert "invalid_grant" in text and "Invalid JWT Signature" in text
    pem_body = json.loads(secret)["private_key"].splitlines()[1]
    assert pem_body not in text and "PRIVATE KEY" not in text


@pytest.mark.parametrize("secret, why", [
    ("{not json", "is not JSON"),
    ('{"type": "authorized_user", "client_id": "x"}', "is not a service-account key"),
    ("/nonexistent/key.json", "neither service-account JSON nor the path of a file"),
])
def test_a_secret_that_is_not_a_service_account_key_is_connect_failed(bq, secret, why):
    with pytest.raises(ConnectFailed) as e:
        _system(bq, secret=secret).connect()
    assert why in str(e.value) and "GSDP_LAKE_SERVICE_ACCOUNT_JSON" in str(e.value)


def test_a_key_file_path_works(bq, tmp_path):
    path = tmp_path / "sa.json"
    path.write_text(_sa_json(bq["key"], bq["url"] + "/token"))
    with _system(bq, secret=str(path)) as s:
        assert s.server_now().tzinfo is not None


def test_a_project_the_account_may_not_use_is_connect_failed(bq):
    c = SqlConnection(type="sql", system="bigquery", project="someone-else", endpoint=bq["url"])
    s = BigQuery("lake", c, {"service_account_json": Secret(_sa_json(bq["key"], bq["url"] + "/token"))})
    with pytest.raises(ConnectFailed) as e:
        s.connect()
    assert "403" in str(e.value) and "roles/bigquery.jobUser" in str(e.value)


def test_an_unknown_table_and_a_dataset_in_another_location_are_not_found(bq):
    from google.api_core.exceptions import NotFound
    with _system(bq) as s:
        with pytest.raises(BigQueryError, match="404 notFound: Not found: Table gsdp-billing:billing.nope was not "
                                                "found in location US"):
            s.describe("billing.nope")
        bq["fake"].run("CREATE TABLE eu_billing.subs (id INT64)")
        with pytest.raises(NotFound, match="Dataset gsdp-billing:eu_billing was not found in location US"):
            list(s.rows("SELECT d.`id` FROM eu_billing.subs AS d", []))


def test_a_request_without_a_valid_token_gets_the_documented_401(bq):
    import httpx
    r = httpx.post(f"{bq['url']}/bigquery/v2/projects/{PROJECT}/jobs", json={},
                   headers={"Authorization": "Bearer not-issued"})
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["status"] == "UNAUTHENTICATED" and err["errors"][0]["reason"] == "authError"


# -- end to end: the SQL kind's reader through the BigQuery client and the fake ------------------------

SYNC_JOBS = """
connections:
  lake:
    type: sql
    system: bigquery
    project: gsdp-billing
    location: US
    endpoint: ENDPOINT
    fetch_rows: 500
jobs:
  lake_companies:
    connection: lake
    source:
      object: companies
      table: billing.companies
      primary_key: [id]
      cursor: {column: changed_at, lookback_seconds: 0, visibility_lag_seconds: 5}
    destination: company
    operation: upsert
    identifiers: [external_id]
    mappings:
      - {source: id, target: external_id}
      - {source: name, target: name}
      - {source: employees, target: employees}
"""


def test_full_then_incremental_sync_into_company(bq, harness, monkeypatch):
    from gs_assets.connectors.sql.reader import sync_dataset
    from gs_assets.connectors.sql.resource import open_system
    from gs_assets.engine.pipeline import apply_pending

    fake = bq["fake"]
    fake.run("CREATE TABLE billing.companies (id INT64, name STRING, employees INT64, changed_at TIMESTAMP)")
    start = NOW - timedelta(days=2)
    fake.insert("billing.companies", [(i, f"Company {i}", i * 10, start + timedelta(minutes=i))
                                      for i in range(1, 1201)])
    h = harness(SYNC_JOBS.replace("ENDPOINT", bq["url"]))
    monkeypatch.setenv("GSDP_LAKE_SERVICE_ACCOUNT_JSON", _sa_json(bq["key"], bq["url"] + "/token"))

    def sync():
        out = sync_dataset(h.warehouse, h.cfg, open_system("lake", h.cfg.connections["lake"]),
                           connection="lake", source_object="companies")
        assert out.error is None, out.error
        return out, apply_pending(h.warehouse, h.cfg, "company")

    out, runs = sync()
    assert (out.mode, out.records, out.pages) == ("full", 1200, 3)
    assert [(r.rows_read, r.inserted, r.updated, r.rejected) for r in runs] == [(1200, 1200, 0, 0)]
    assert out.cursor_to == (start + timedelta(minutes=1200)).isoformat()

    # 10 companies change, 5 are new, later than the stored cursor and before the fake's now - lag
    fake.clock.advance(hours=1)
    try:
        _incremental(fake, h, sync)
    finally:
        fake.clock.set(NOW)


def _incremental(fake, h, sync):
    later = NOW + timedelta(minutes=30)
    fake.run("UPDATE billing.companies SET employees = employees + 1, changed_at = ? WHERE id <= 10", [later])
    fake.insert("billing.companies", [(i, f"Company {i}", 7, later + timedelta(seconds=i)) for i in range(1201, 1206)])
    # within the visibility lag of the server's now: left for the next sync
    fake.insert("billing.companies", [(1206, "Company 1206", 7, fake.clock.now() - timedelta(seconds=2))])
    out, runs = sync()
    assert out.mode == "incremental"
    # the row at the stored cursor is read again (closed lower bound) and absorbed by the upsert
    assert out.records == 16
    assert [(r.rows_read, r.inserted, r.updated, r.unchanged) for r in runs] == [(16, 5, 10, 1)]
    assert h.rows("SELECT count(*), sum(employees) FROM gs.company") == [(1205, sum(i * 10 for i in range(1, 1201))
                                                                           + 10 + 35)]


def test_connection_check_and_a_dropped_table(bq, harness, monkeypatch):
    """`gsdp connections test lake` (the kind's connection check), then the table dropped: the sync
    reports it before anything lands."""
    from gs_assets.connectors.sql.connection_test import connection_check
    from gs_assets.connectors.sql.reader import sync_dataset
    from gs_assets.connectors.sql.resource import open_system

    fake = bq["fake"]
    fake.run("CREATE TABLE billing.accounts (id INT64, name STRING, employees INT64, changed_at TIMESTAMP)")
    h = harness(SYNC_JOBS.replace("ENDPOINT", bq["url"]).replace("billing.companies", "billing.accounts"))
    secret = _sa_json(bq["key"], bq["url"] + "/token")
    monkeypatch.setenv("GSDP_LAKE_SERVICE_ACCOUNT_JSON", secret)
    check = connection_check(h.cfg, "lake")
    assert check.ok, check.error
    lines = dict(check.lines)
    assert lines["server clock"] == NOW.isoformat(timespec="seconds")
    assert lines["dataset companies"].startswith("table billing.accounts: OK, reads 4 of its 4 column(s)")

    fake.run("DROP TABLE billing.accounts")
    out = sync_dataset(h.warehouse, h.cfg, open_system("lake", h.cfg.connections["lake"]), connection="lake",
                       source_object="companies")
    assert "Not found: Table gsdp-billing:billing.accounts was not found in location US" in out.error
    assert "Nothing was loaded" in out.error and out.loads == []

    monkeypatch.setenv("GSDP_LAKE_SERVICE_ACCOUNT_JSON", _sa_json(_key(), bq["url"] + "/token"))
    check = connection_check(h.cfg, "lake")
    assert not check.ok and "invalid_grant" in check.error and "PRIVATE KEY" not in check.error


def test_a_token_endpoint_that_does_not_answer_is_connect_failed(bq):
    from gs_assets.connectors.rest_api.fakes.harness import free_port
    s = _system(bq, secret=_sa_json(bq["key"], f"http://127.0.0.1:{free_port()}/token"))
    with pytest.raises(ConnectFailed, match=r"^connection lake \(Google BigQuery gsdp-billing\): cannot reach the "
                                            r"token endpoint: .*Check the network path"):
        s.connect()
