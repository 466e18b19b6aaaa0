"""A backfill range (several file partitions in one run, BackfillPolicy.multi_run): each file lands
on its own and gets its own partition metadata; a file that cannot be loaded fails the run at the
end, naming it, while the others stay landed (a retry finds them already landed)."""

import dagster as dg
import duckdb

from tests.dagster_helpers import persistent_instance, platform, put
from tests.config_builder import config_yaml, file_job


def jobs_yaml(bucket):
    return config_yaml(bucket, {"accounts": file_job("accounts", "company", ["external_id"], {"Id": "external_id", "Name": "name"},
                                                     operation="upsert", source={"prefix": "in/", "file_name": "accounts_*.csv"})},
                       connection_options={"backfill_files_per_run": 5})


SOURCE = dg.AssetKey(["source", "files", "accounts"])


def run_range(defs, instance, first: str, last: str):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(instance=instance, asset_selection=[SOURCE], raise_on_error=False,
                                  tags={"dagster/asset_partition_range_start": first,
                                        "dagster/asset_partition_range_end": last})


def test_a_range_lands_each_file_with_its_own_metadata(tmp_path, s3_server, bucket):
    _, defs = platform(tmp_path, jobs_yaml(bucket))
    assert defs.get_assets_def(SOURCE).backfill_policy == dg.BackfillPolicy.multi_run(5)
    instance = persistent_instance(tmp_path)
    keys = [f"in/accounts_{i}.csv" for i in range(3)]
    for i, key in enumerate(keys):
        put(s3_server, bucket, key, "Id,Name\n" + "".join(f"A{i}{n},N{n}\n" for n in range(i + 1)))
    instance.add_dynamic_partitions("files__files__accounts", keys)

    assert run_range(defs, instance, keys[0], keys[-1]).success
    for i, key in enumerate(keys):
        ev = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=SOURCE, asset_partitions=[key]), limit=1)
        meta = ev.records[0].asset_materialization.metadata
        assert meta["file"].value == f"s3://{bucket}/{key}" and meta["dagster/row_count"].value == i + 1
        assert meta["landing"].value == "landed"


def test_a_bad_file_in_a_range_fails_the_run_by_name_and_the_others_stay_landed(tmp_path, s3_server, bucket):
    _, defs = platform(tmp_path, jobs_yaml(bucket))
    instance = persistent_instance(tmp_path)
    keys = ["in/accounts_a.csv", "in/accounts_b.csv", "in/accounts_c.csv"]
    put(s3_server, bucket, keys[0], "Id,Name\nA1,One\n")
    put(s3_server, bucket, keys[1], "Identifier,Label\nA2,Two\n")  # lacks the mapped columns
    put(s3_server, bucket, keys[2], "Id,Name\nA3,Three\n")
    instance.add_dynamic_partitions("files__files__accounts", keys)

    result = run_range(defs, instance, keys[0], keys[-1])
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert "1 of 3 file(s) could not be loaded" in message and "in/accounts_b.csv" in message
    assert "accounts_a.csv" not in message and "accounts_c.csv" not in message
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        loads = con.execute("SELECT regexp_replace(source_file, '^.*/', ''), status FROM gs_ops.loads ORDER BY 1").fetchall()
    finally:
        con.close()
    assert loads == [("accounts_a.csv", "landed"), ("accounts_b.csv", "failed"), ("accounts_c.csv", "landed")]
    listed = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert "in/error/accounts_b.csv" in listed and keys[0] in listed and keys[2] in listed

    # The retry of the two good files finds them landed already.
    again = run_range(defs, instance, keys[0], keys[0])
    assert again.success
    meta = again.asset_materializations_for_node("source__files__accounts")[0].metadata
    assert meta["landing"].value == "already_landed"
