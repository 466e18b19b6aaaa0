"""Invariant 6: credentials never appear in logs, metadata, exceptions, rejects or run records."""

import dagster as dg

from tests.dagster_helpers import platform, put, run_requests, tick
from tests.integration.test_s3_file_jobs import BAD, jobs_yaml, rows

SECRET = "sk-TEST-9f8e7d6c5b4a-do-not-leak"


def test_the_s3_secret_never_shows_up(tmp_path, s3_server, bucket, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    cfg, defs = platform(tmp_path, jobs_yaml(bucket))
    instance = dg.DagsterInstance.ephemeral()
    put(s3_server, bucket, "in/users.csv", "Name,Email\nAnn,ann@x.io\n")
    put(s3_server, bucket, "in/companies_bad.csv", BAD)
    put(s3_server, bucket, "in/companies_broken.csv", "Id\nA1\n")  # fails: missing mapped columns
    results = run_requests(defs, instance, tick(defs, instance, None))
    assert any(not r.success for r in results) and any(r.success for r in results)
    seen = []
    for r in results:
        for entry in instance.all_logs(r.run_id):
            seen.append(str(entry))
        seen.append(str(r.dagster_run))
    for table in ("gs_ops.job_runs", "gs_ops.rejects", "gs_ops.loads"):
        seen.append(str(rows(tmp_path, f"SELECT * FROM {table}")))
    blob = "\n".join(seen)
    assert "companies_broken.csv" in blob, "the scan covers the failed run"
    assert SECRET not in blob
