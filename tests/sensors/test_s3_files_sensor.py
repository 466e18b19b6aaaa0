"""The S3 sensor with a real cursor against a moto S3 server: first tick, nothing new, new files."""

import json

import dagster as dg

from tests.dagster_helpers import platform, put, tick
from tests.config_builder import config_yaml, file_job


COMPANY = {"Id": "external_id", "Name": "name"}


def jobs_yaml(bucket, **more_jobs):
    return config_yaml(bucket, {
        "companies": file_job("companies", "company", ["external_id"], COMPANY, operation="upsert",
                              source={"prefix": "in/", "file_name": "companies*.csv"}),
        "users": file_job("users", "user", ["email"], {"Name": "name", "Email": "email"}, operation="upsert",
                          source={"prefix": "in/", "file_name": "users_*.csv"}),
        "companies_with_csm": file_job(
            "accounts", "company", ["external_id"], COMPANY, operation="upsert",
            source={"prefix": "in/", "file_name": "accounts.csv"},
            lookups=[{"target": "csm", "object": "user", "match": [{"source": "CSM", "field": "email"}], "on_none": "empty"}]),
        **more_jobs})


def test_first_tick_nothing_new_then_new_and_reuploaded_files(tmp_path, s3_server, bucket):
    _, defs = platform(tmp_path, jobs_yaml(bucket))
    instance = dg.DagsterInstance.ephemeral()
    put(s3_server, bucket, "in/companies_1.csv", "Id,Name\nA1,Acme\n")
    put(s3_server, bucket, "in/users_1.csv", "Name,Email\nAnn,ann@x.io\n")
    put(s3_server, bucket, "in/notes.txt", "not a job file")
    put(s3_server, bucket, "elsewhere/companies_9.csv", "Id,Name\n")

    first = tick(defs, instance, None)
    assert sorted((r.job_name, r.partition_key) for r in first.run_requests) == [
        ("load_files__companies_job", "in/companies_1.csv"), ("load_files__users_job", "in/users_1.csv")]
    assert {r.partitions_def_name: list(r.partition_keys) for r in first.dynamic_partitions_requests} == {
        "files__files__companies": ["in/companies_1.csv"], "files__files__users": ["in/users_1.csv"]}
    assert all(r.tags["gsdp/etag"] for r in first.run_requests)

    second = tick(defs, instance, first.cursor)
    assert not second.run_requests and second.skip_reason
    assert json.loads(second.cursor) == json.loads(first.cursor)

    put(s3_server, bucket, "in/companies_2.csv", "Id,Name\nA2,Beta\n")          # new
    put(s3_server, bucket, "in/users_1.csv", "Name,Email\nAnn,ann@x.io\nBo,bo@x.io\n")  # re-uploaded, new content
    # (the same bytes uploaded again are a new version too: tests/integration/test_shared_and_repeated_files.py)
    third = tick(defs, instance, second.cursor)
    assert sorted(r.partition_key for r in third.run_requests) == ["in/companies_2.csv", "in/users_1.csv"]
    assert not tick(defs, instance, third.cursor).run_requests


def test_deleted_files_do_not_cause_reruns(tmp_path, s3_server, bucket):
    _, defs = platform(tmp_path, jobs_yaml(bucket))
    instance = dg.DagsterInstance.ephemeral()
    put(s3_server, bucket, "in/companies_1.csv", "Id,Name\nA1,Acme\n")
    put(s3_server, bucket, "in/companies_2.csv", "Id,Name\nA2,Beta\n")
    first = tick(defs, instance, None)
    s3_server.client().delete_object(Bucket=bucket, Key="in/companies_1.csv")
    assert not tick(defs, instance, first.cursor).run_requests


def test_runs_are_ordered_so_looked_up_objects_load_first(tmp_path, s3_server, bucket):
    _, defs = platform(tmp_path, jobs_yaml(bucket))
    instance = dg.DagsterInstance.ephemeral()
    put(s3_server, bucket, "in/accounts.csv", "Id,Name,CSM\nA1,Acme,ann@x.io\n")
    put(s3_server, bucket, "in/users_1.csv", "Name,Email\nAnn,ann@x.io\n")
    result = tick(defs, instance, None)
    assert [r.job_name for r in result.run_requests] == ["load_files__users_job", "load_files__accounts_job"]


def test_one_file_goes_to_every_job_whose_rule_it_matches(tmp_path, s3_server, bucket):
    jobs = jobs_yaml(bucket, companies_copy=file_job(
        "companies_archive", "company", ["external_id"], COMPANY, operation="upsert",
        source={"prefix": "in/", "file_name": "companies_", "match": "starts_with"}))
    _, defs = platform(tmp_path, jobs)
    instance = dg.DagsterInstance.ephemeral()
    put(s3_server, bucket, "in/companies_1.csv", "Id,Name\nA1,Acme\n")
    result = tick(defs, instance, None)
    assert sorted((r.job_name, r.partition_key) for r in result.run_requests) == [
        ("load_files__companies_archive_job", "in/companies_1.csv"), ("load_files__companies_job", "in/companies_1.csv")]
