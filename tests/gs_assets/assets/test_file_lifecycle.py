"""Moving a loaded file to the archive survives a crash in the middle of the move: S3 has no
atomic move (copy, then delete), so a run killed between the copy and the ledger update leaves the
copy behind. The next run finishes that move instead of archiving a second, renamed copy."""

import duckdb
import pytest

from gs_assets.connectors.s3_files.lifecycle import finish_files
from tests.dagster_helpers import persistent_instance, platform, put, run_requests, tick
from tests.config_builder import config_yaml, file_job


def jobs_yaml(bucket):
    return config_yaml(bucket, {"accounts": file_job("accounts", "company", ["external_id"], {"Id": "external_id", "Name": "name"},
                                                     operation="upsert", source={"prefix": "in/", "file_name": "accounts*.csv"})})


BODY = "Id,Name\nA1,One\nA2,Two\n"


@pytest.fixture
def loaded(tmp_path, s3_server, bucket):
    cfg, defs = platform(tmp_path, jobs_yaml(bucket))
    put(s3_server, bucket, "in/accounts.csv", BODY)
    instance = persistent_instance(tmp_path)
    assert all(r.success for r in run_requests(defs, instance, tick(defs, instance, None)))
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    (load_id,) = con.execute("SELECT load_id FROM gs_ops.loads").fetchone()
    con.execute("UPDATE gs_ops.loads SET archived_to = NULL")  # as if killed before the ledger update
    con.close()
    return cfg, defs, s3_server.client(), load_id


def keys(client, bucket):
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def archived_to(tmp_path):
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        return con.execute("SELECT archived_to FROM gs_ops.loads").fetchone()[0]
    finally:
        con.close()


def test_killed_after_the_copy_before_the_delete(tmp_path, bucket, loaded):
    cfg, defs, client, load_id = loaded
    client.put_object(Bucket=bucket, Key="in/accounts.csv", Body=BODY.encode())  # the delete never happened
    finish_files(defs.resources["warehouse"], cfg, client, [load_id])
    assert keys(client, bucket) == ["in/archive/accounts.csv"]
    assert archived_to(tmp_path) == f"s3://{bucket}/in/archive/accounts.csv"


def test_killed_after_the_delete_before_the_ledger_update(tmp_path, bucket, loaded):
    cfg, defs, client, load_id = loaded
    finish_files(defs.resources["warehouse"], cfg, client, [load_id])
    assert keys(client, bucket) == ["in/archive/accounts.csv"]
    assert archived_to(tmp_path) == f"s3://{bucket}/in/archive/accounts.csv"


def test_another_file_of_the_same_name_in_the_archive_keeps_its_place(tmp_path, bucket, loaded):
    cfg, defs, client, load_id = loaded
    client.put_object(Bucket=bucket, Key="in/archive/accounts.csv", Body=b"Id,Name\nOLD,Earlier file\n")
    client.put_object(Bucket=bucket, Key="in/accounts.csv", Body=BODY.encode())
    finish_files(defs.resources["warehouse"], cfg, client, [load_id])
    assert keys(client, bucket) == sorted(["in/archive/accounts.csv", f"in/archive/{load_id[:8]}_accounts.csv"])
    assert archived_to(tmp_path) == f"s3://{bucket}/in/archive/{load_id[:8]}_accounts.csv"
