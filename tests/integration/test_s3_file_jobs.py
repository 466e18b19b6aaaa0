"""End to end through Dagster: moto S3 server -> sensor -> runs -> DuckDB file in a temp dir."""

import json

import dagster as dg
import pytest

from gs_assets.demo.run_demo import upload_sample
from gs_assets.demo.sample_data import generate
from tests.dagster_helpers import platform, put, run_requests, tick
from tests.config_builder import config_yaml, file_job


def jobs_yaml(bucket):
    return config_yaml(bucket, {
        "users": file_job("users", "user", ["email"], {"Name": "name", "Email": "email"}, operation="upsert",
                          source={"prefix": "in/", "file_name": "users*.csv"}),
        "companies": file_job("companies", "company", ["external_id"],
                              {"Id": "external_id", "Name": "name", "Status": "status", "Employees": "employees",
                               "Website": "website"}, operation="upsert",
                              source={"prefix": "in/", "file_name": "companies*.csv"},
                              lookups=[{"target": "csm", "object": "user", "match": [{"source": "CSM", "field": "email"}]}])})


def rows(tmp_path, sql):
    import duckdb
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def setup(tmp_path, s3_server, bucket):
    cfg, defs = platform(tmp_path, jobs_yaml(bucket))
    instance = dg.DagsterInstance.ephemeral()
    put(s3_server, bucket, "in/users.csv", "Name,Email\nAnn,ann@x.io\nBob,bob@x.io\n")
    results = run_requests(defs, instance, tick(defs, instance, None))
    assert all(r.success for r in results)
    return cfg, defs, instance


BAD = ("Id,Name,Status,Employees,Website,CSM\n"
       "A1,Acme,Active,10,acme.com,ann@x.io\n"
       "A2,,Active,ten,acme.com,ann@x.io\n"
       "A3,Gamma,Gone,5,not a site,ann@x.io\n"
       "A4,Delta,Active,5,,nobody@x.io\n"
       "A5,Epsilon,Active\n"
       "A6,Zeta,active,7,https://zeta.io/x,BOB@x.io\n")


def test_bad_rows_give_partial_success_with_exact_reasons(tmp_path, s3_server, bucket, setup):
    cfg, defs, instance = setup
    put(s3_server, bucket, "in/companies_bad.csv", BAD)
    result = tick(defs, instance, None)
    (run,) = [r for r in run_requests(defs, instance, result) if "companies" in r.dagster_run.job_name]
    assert run.success
    status = rows(tmp_path, "SELECT status, rows_read, inserted, rejected FROM gs_ops.job_runs WHERE job = 'companies'")
    assert status == [("Partial Success", 6, 2, 4)]
    rejects = {line: sorted((r["field"], r["rule"], r["value"], r["message"]) for r in json.loads(reasons))
               for line, reasons in rows(tmp_path, "SELECT line_number, reasons FROM gs_ops.rejects ORDER BY 1")}
    assert rejects == {
        3: [("employees", "type", "ten", "'Employees': not a number"),
            ("name", "required", None, "required field is empty")],
        4: [("status", "dropdown_value", "Gone", "not one of ['Active', 'Inactive', 'Churned']"),
            ("website", "url_format", "not a site", "not a valid URL")],
        5: [("csm", "lookup_no_match", "email=nobody@x.io", "no user record matches email=nobody@x.io")],
        6: [(None, "malformed_row", "A5,Epsilon,Active",
             "row could not be parsed: row has 3 fields, the header has 6")],
    }
    # The destination asset reports counts and checks in the UI.
    mat = instance.get_latest_materialization_event(dg.AssetKey(["gs", "company"])).asset_materialization
    assert mat.metadata["dagster/row_count"].value == 2 and mat.metadata["rejected"].value == 4
    assert "dagster/column_schema" in mat.metadata
    checks = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
    assert checks == {"schema": True, "conservation": True, "lookups_resolve": True}


def test_loading_the_same_file_twice_leaves_no_duplicates(tmp_path, s3_server, bucket, setup):
    cfg, defs, instance = setup
    put(s3_server, bucket, "in/companies.csv", BAD)
    first = tick(defs, instance, None)
    run_requests(defs, instance, first)
    snapshot = rows(tmp_path, "SELECT * FROM gs.company ORDER BY external_id")
    # Materialize the same partition again, as a user would from the UI or a backfill.
    again = defs.resolve_job_def("load_files__companies_job").execute_in_process(
        partition_key="in/companies.csv", instance=instance)
    assert again.success
    landing = again.get_asset_materialization_events()[0].materialization.metadata["landing"].value
    assert landing == "already_landed"
    assert rows(tmp_path, "SELECT * FROM gs.company ORDER BY external_id") == snapshot
    assert rows(tmp_path, "SELECT count(*) FROM gs_ops.job_runs WHERE job = 'companies'") == [(1,)]
    # A re-upload with new content is a new load and upserts onto the same records.
    put(s3_server, bucket, "in/companies.csv", BAD.replace("Acme", "Acme Corp"))
    run_requests(defs, instance, tick(defs, instance, first.cursor))
    assert rows(tmp_path, "SELECT external_id, name FROM gs.company ORDER BY 1") == [("A1", "Acme Corp"), ("A6", "Zeta")]
    assert rows(tmp_path, "SELECT inserted, updated, unchanged FROM gs_ops.job_runs WHERE job = 'companies' ORDER BY started_at") == [
        (2, 0, 0), (0, 1, 1)]


def test_a_killed_run_leaves_objects_unchanged_and_a_rerun_gives_one_runs_result(tmp_path, s3_server, bucket, setup, monkeypatch):
    import gs_assets.engine.apply_load as engine
    cfg, defs, instance = setup
    put(s3_server, bucket, "in/companies.csv", BAD)
    before = rows(tmp_path, "SELECT count(*) FROM gs.company")
    real = engine._count_and_write

    def dies_mid_write(b, obj, *a, **kw):
        real(b, obj, *a, **kw)          # objects, rejects and run log are written ...
        raise RuntimeError("worker killed")  # ... and the transaction never commits

    monkeypatch.setattr(engine, "_count_and_write", dies_mid_write)
    (run,) = [r for r in run_requests(defs, instance, tick(defs, instance, None)) if "companies" in r.dagster_run.job_name]
    assert not run.success
    assert rows(tmp_path, "SELECT count(*) FROM gs.company") == before
    assert rows(tmp_path, "SELECT count(*) FROM gs_ops.rejects") == [(0,)]
    assert rows(tmp_path, "SELECT status, final FROM gs_ops.job_runs WHERE job = 'companies'") == [("Failed", False)]

    monkeypatch.setattr(engine, "_count_and_write", real)
    rerun = dg.materialize([a for a in defs.assets if a.key == dg.AssetKey(["gs", "company"])],
                           instance=instance, resources=defs.resources)
    assert rerun.success
    assert rows(tmp_path, "SELECT external_id FROM gs.company ORDER BY 1") == [("A1",), ("A6",)]
    assert rows(tmp_path, "SELECT status, inserted, rejected FROM gs_ops.job_runs WHERE job = 'companies' AND final") == [
        ("Partial Success", 2, 4)]


def test_a_file_missing_a_mapped_column_fails_naming_file_and_column_and_writes_nothing(tmp_path, s3_server, bucket, setup):
    cfg, defs, instance = setup
    put(s3_server, bucket, "in/companies.csv", "Id,Name,Status,Employees,CSM\nA1,Acme,Active,1,ann@x.io\n")
    (run,) = [r for r in run_requests(defs, instance, tick(defs, instance, None)) if "companies" in r.dagster_run.job_name]
    assert not run.success
    (status, error), = rows(tmp_path, "SELECT status, error FROM gs_ops.job_runs WHERE job = 'companies'")
    assert status == "Failed"
    assert f"s3://{bucket}/in/companies.csv" in error and "['Website']" in error
    assert rows(tmp_path, "SELECT count(*) FROM gs.company") == [(0,)]


@pytest.mark.slow  # every sample file through Dagster
def test_the_sample_data_lands(tmp_path, s3_server, bucket):
    from gs_assets.config.loader import load_platform_config
    from gs_assets.definitions import build_definitions
    import shutil
    cfg_dir = tmp_path / "config"
    shutil.copytree(__import__("gs_assets.config.loader", fromlist=["x"]).DEFAULT_CONFIG_DIR, cfg_dir)
    text = (cfg_dir / "connections.yaml").read_text().replace("bucket: gsdp-demo", f"bucket: {bucket}")
    (cfg_dir / "connections.yaml").write_text(text)
    cfg = load_platform_config(cfg_dir)
    defs = build_definitions(cfg, warehouse=str(tmp_path / "wh.duckdb"))
    counts = generate(tmp_path / "sample")
    upload_sample(s3_server.client(), bucket, tmp_path / "sample")
    instance = dg.DagsterInstance.ephemeral()
    results = run_requests(defs, instance, tick(defs, instance, None))
    assert len(results) == len(counts) and all(r.success for r in results)
    got = dict(rows(tmp_path, "SELECT 'user', count(*) FROM gs.user UNION ALL SELECT 'company', count(*) FROM gs.company "
                              "UNION ALL SELECT 'person', count(*) FROM gs.person UNION ALL SELECT 'company_person', count(*) FROM gs.company_person "
                              "UNION ALL SELECT 'company_usage', count(*) FROM gs.company_usage UNION ALL SELECT 'case', count(*) FROM gs.case"))
    assert got == {"user": 50, "company": 498, "person": 4999, "company_person": 4975, "company_usage": 268918, "case": 297}
    assert rows(tmp_path, "SELECT count(*) FROM gs.company WHERE parent_company IS NOT NULL") == [(60,)]
    assert rows(tmp_path, "SELECT count(*) FROM gs.case WHERE person_id IS NOT NULL") == [(297,)]
    bad = rows(tmp_path, "SELECT job_run_id FROM gs_ops.job_runs WHERE rows_read <> inserted + updated + unchanged + rejected + filtered + superseded")
    assert bad == []
    for r in results:
        assert all(e.passed for e in r.get_asset_check_evaluations()), r.dagster_run.job_name
