"""Which files get loaded and archived, through the real sensor and Dagster runs (moto S3):
one file read by two source objects, identical re-uploads, scheduled jobs beside sensor-served
ones, and files the ledger already holds."""

import duckdb
import dagster as dg

from tests.config_builder import config_yaml, file_job
from tests.dagster_helpers import platform, put, run_requests, tick

USER_FIELDS = {"Name": "name", "Email": "email"}
COMPANY_FIELDS = {"Id": "external_id", "Name": "name"}


def to_company(source_object: str, prefix: str = "in/", schedule=None, **source) -> dict:
    extra = {"schedule": schedule} if schedule else {}
    return file_job(source_object, "company", ["external_id"], COMPANY_FIELDS, operation="upsert",
                    source={"prefix": prefix, **source}, **extra)


def to_user(source_object: str, prefix: str = "in/", **source) -> dict:
    return file_job(source_object, "user", ["email"], USER_FIELDS, operation="upsert", source={"prefix": prefix, **source})


def dual(bucket: str) -> str:
    """One prefix, two source objects: d*.csv -> dualx (company) and *.csv -> dualy (user)."""
    return config_yaml(bucket, {"dualx": to_company("dualx", file_name="d*.csv"),
                                "dualy": to_user("dualy", file_name="*.csv")})


def timed(bucket: str) -> str:
    """A source read by a scheduled job and a job on arrival, and a source read by a scheduled job only."""
    return config_yaml(bucket, {
        "nightly_accounts": to_company("accounts", file_name="acc*.csv", schedule={"every": "day", "at": "02:00"}),
        "live_contacts": to_user("accounts", file_name="acc*.csv"),
        "nightly_only": to_company("ledger", file_name="ledger*.csv", schedule={"every": "day", "at": "03:00"})})


def lookups(bucket: str, prefix: str = "in/", users: dict | None = None, accounts: dict | None = None) -> str:
    """Users, and accounts whose CSM is looked up among them (extra source settings per job)."""
    company = to_company("accounts", prefix, file_name="accounts.csv", match="equals", **(accounts or {}))
    company["lookups"] = [{"target": "csm", "object": "user", "match": [{"source": "CSM", "field": "email"}]}]
    return config_yaml(bucket, {"users": to_user("users", prefix, file_name="users*.csv", **(users or {})),
                                "accounts": company})


def q(tmp_path, sql, params=()):
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def keys(s3_server, bucket):
    """The bucket's files, without error files."""
    return sorted(o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
                  if not o["Key"].endswith(".errors.csv"))


def test_one_file_read_by_two_source_objects_loads_into_both_and_is_archived_once(tmp_path, s3_server, bucket):
    _, defs = platform(tmp_path, dual(bucket))
    instance = dg.DagsterInstance.ephemeral()
    put(s3_server, bucket, "in/d1.csv", "Id,Name,Email\nA1,Acme,ann@x.io\nA2,Beta,bob@x.io\n")
    result = tick(defs, instance, None)
    assert sorted(r.job_name for r in result.run_requests) == ["load_files__dualx_job", "load_files__dualy_job"]
    runs = run_requests(defs, instance, result)
    assert all(r.success for r in runs)
    assert q(tmp_path, "SELECT count(*) FROM gs.company")[0][0] == 2
    assert q(tmp_path, "SELECT count(*) FROM gs.user")[0][0] == 2
    assert sorted(q(tmp_path, "SELECT job, status, rows_read FROM gs_ops.job_runs WHERE final")) == [
        ("dualx", "Success", 2), ("dualy", "Success", 2)]
    assert keys(s3_server, bucket) == ["in/archive/d1.csv"]
    assert q(tmp_path, "SELECT source_object, archived_to FROM gs_ops.loads ORDER BY source_object") == [
        ("dualx", f"s3://{bucket}/in/archive/d1.csv"), ("dualy", f"s3://{bucket}/in/archive/d1.csv")]


ACC = "Id,Name,Email\nA1,Acme,ann@x.io\nA2,Beta,bob@x.io\n"


def schedule_tick(defs, instance, name):
    from tests.dagster_helpers import persistent_instance  # noqa: F401 - instance passed in
    ctx = dg.build_schedule_context(instance=instance, resources={"s3": defs.resources["s3"]},
                                    repository_def=defs.get_repository_def())
    return defs.resolve_schedule_def(name).evaluate_tick(ctx)


def test_a_scheduled_job_applies_at_its_time_and_the_file_is_archived_after_all_jobs(tmp_path, s3_server, bucket,
                                                                                      capfd):
    from tests.dagster_helpers import persistent_instance
    _, defs = platform(tmp_path, timed(bucket))
    instance = persistent_instance(tmp_path)
    put(s3_server, bucket, "in/acc.csv", ACC)
    put(s3_server, bucket, "in/ledger.csv", "Id,Name\nL1,Ledger Co\n")
    result = tick(defs, instance, None)
    # The sensor loads files for the job without a schedule only; ledger.csv waits for its schedule.
    assert [(r.job_name, r.partition_key) for r in result.run_requests] == [("load_files__accounts_job", "in/acc.csv")]
    assert all(r.success for r in run_requests(defs, instance, result))
    assert q(tmp_path, "SELECT count(*) FROM gs.user")[0][0] == 2
    assert q(tmp_path, "SELECT count(*) FROM gs.company")[0][0] == 0, "the scheduled job waits for its time"
    assert q(tmp_path, "SELECT job FROM gs_ops.job_runs WHERE final") == [("live_contacts",)]
    assert keys(s3_server, bucket) == ["in/acc.csv", "in/ledger.csv"], "not archived before every job applied it"
    capfd.readouterr()
    assert not tick(defs, instance, result.cursor).run_requests
    # The file does not sit in the prefix without a visible reason: the tick says why it stays.
    assert "job(s) nightly_accounts apply it at their schedule or chain, then it is archived: " \
           f"s3://{bucket}/in/acc.csv" in "".join(capfd.readouterr())

    sched = schedule_tick(defs, instance, "nightly_accounts_schedule")
    assert [r.partition_key for r in sched.run_requests] == ["in/acc.csv"]
    run = defs.resolve_job_def("nightly_accounts_job").execute_in_process(
        partition_key="in/acc.csv", instance=instance, tags=sched.run_requests[0].tags)
    assert run.success
    assert q(tmp_path, "SELECT count(*) FROM gs.company")[0][0] == 2
    assert sorted(q(tmp_path, "SELECT job, status FROM gs_ops.job_runs WHERE final")) == [
        ("live_contacts", "Success"), ("nightly_accounts", "Success")]
    assert keys(s3_server, bucket) == ["in/archive/acc.csv", "in/ledger.csv"]


def test_a_run_of_one_job_also_applies_its_sources_on_arrival_jobs_so_the_file_is_archived(tmp_path, s3_server, bucket):
    """gsdp run, the Bulk API and the launchpad run <job>_job: the source's jobs that load on
    arrival apply the file in that run too, so it does not wait in the prefix."""
    from tests.dagster_helpers import persistent_instance
    _, defs = platform(tmp_path, timed(bucket))
    instance = persistent_instance(tmp_path)
    put(s3_server, bucket, "in/acc.csv", ACC)
    instance.add_dynamic_partitions("files__files__accounts", ["in/acc.csv"])
    run = defs.resolve_job_def("nightly_accounts_job").execute_in_process(partition_key="in/acc.csv", instance=instance)
    assert run.success
    assert sorted(q(tmp_path, "SELECT job, status FROM gs_ops.job_runs WHERE final")) == [
        ("live_contacts", "Success"), ("nightly_accounts", "Success")]
    assert keys(s3_server, bucket) == ["in/archive/acc.csv"]


ACCOUNTS = "Id,Name,CSM\nA1,Acme,ann@x.io\nA2,Beta,zed@x.io\n"


def log_messages(instance, run_id):
    return [e.user_message for e in instance.all_logs(run_id)]


def test_an_identical_reupload_gets_a_run_is_archived_with_a_note_and_can_be_reapplied(tmp_path, s3_server, bucket,
                                                                                      monkeypatch):
    from gs_assets import cli
    _, defs = platform(tmp_path, lookups(bucket))
    instance = dg.DagsterInstance.ephemeral()
    put(s3_server, bucket, "in/users.csv", "Name,Email\nAnn,ann@x.io\n")
    put(s3_server, bucket, "in/accounts.csv", ACCOUNTS)
    first = tick(defs, instance, None)
    assert all(r.success for r in run_requests(defs, instance, first))
    assert q(tmp_path, "SELECT external_id FROM gs.company") == [("A1",)], "A2's CSM is not a user yet"
    assert keys(s3_server, bucket) == ["in/archive/accounts.csv", "in/archive/users.csv"]
    put(s3_server, bucket, "in/users_2.csv", "Name,Email\nZed,zed@x.io\n")  # the CSM arrives
    second = tick(defs, instance, first.cursor)
    assert all(r.success for r in run_requests(defs, instance, second))

    put(s3_server, bucket, "in/accounts.csv", ACCOUNTS)  # the same bytes again
    third = tick(defs, instance, second.cursor)
    assert [r.partition_key for r in third.run_requests] == ["in/accounts.csv"]
    before = next(r for r in first.run_requests if r.partition_key == "in/accounts.csv")
    assert third.run_requests[0].run_key != before.run_key, "Dagster would drop a request with the same run key"
    (run,) = run_requests(defs, instance, third)
    assert run.success
    assert keys(s3_server, bucket) == ["in/archive/accounts.csv", "in/archive/users.csv", "in/archive/users_2.csv"]
    (first_load,) = q(tmp_path, "SELECT load_id FROM gs_ops.loads WHERE source_object = 'accounts' AND status = 'landed'")
    (status, note, archived), = q(tmp_path, "SELECT status, note, archived_to FROM gs_ops.loads "
                                            "WHERE source_object = 'accounts' AND dagster_run_id = ?", [run.run_id])
    assert status == "identical" and archived == f"s3://{bucket}/in/archive/accounts.csv"
    assert f"identical to load {first_load[0]}" in note and "not applied again" in note and "--reapply" in note
    meta = next(m for m in run.get_asset_materialization_events()
                if m.asset_key == dg.AssetKey(["source", "files", "accounts"])).materialization.metadata
    assert meta["landing"].value == "identical" and "not applied again" in meta["note"].value
    assert any("not applied again" in m for m in log_messages(instance, run.run_id))
    assert q(tmp_path, "SELECT external_id FROM gs.company") == [("A1",)], "objects unchanged"
    assert q(tmp_path, "SELECT count(*) FROM gs_ops.job_runs WHERE job = 'accounts'") == [(1,)]

    # Re-apply on request: the file has moved to the archive, its archived copy is applied again.
    monkeypatch.setenv("GSDP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("GSDP_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert cli.main(["run", "accounts", "--file", "in/accounts.csv", "--reapply"]) == 0
    assert q(tmp_path, "SELECT external_id FROM gs.company ORDER BY 1") == [("A1",), ("A2",)], \
        "the row whose lookup failed the first time is loaded now"
    assert q(tmp_path, "SELECT status, inserted, unchanged, rejected FROM gs_ops.job_runs WHERE job = 'accounts' "
                       "ORDER BY started_at") == [("Partial Success", 1, 0, 1), ("Success", 1, 1, 0)]
    assert keys(s3_server, bucket) == ["in/archive/accounts.csv", "in/archive/users.csv", "in/archive/users_2.csv"]


def wait_for_s3_clock_after(s3_server, bucket, moment):
    """Until an upload now gets a LastModified later than `moment` (S3 keeps whole seconds)."""
    import time
    from datetime import timezone
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        put(s3_server, bucket, "probe/clock", "x")
        lm = s3_server.client().head_object(Bucket=bucket, Key="probe/clock")["LastModified"]
        if lm.astimezone(timezone.utc).replace(tzinfo=None) > moment:
            s3_server.client().delete_object(Bucket=bucket, Key="probe/clock")
            return
        time.sleep(0.2)
    raise AssertionError(f"the S3 server's clock did not pass {moment} within 60 s")


def test_files_left_in_place_are_not_loaded_again_by_a_new_cursor_but_a_reupload_is(tmp_path, s3_server, bucket):
    """archive_prefix "" keeps loaded files in place: a sensor with a new cursor (another Dagster
    instance, a reset sensor) requests no runs for them (the ledger holds them); the same bytes
    uploaded again over one of them get a run and a note."""
    keep = {"archive_prefix": ""}
    _, defs = platform(tmp_path, lookups(bucket, users=keep, accounts=keep))
    instance = dg.DagsterInstance.ephemeral()
    put(s3_server, bucket, "in/users.csv", "Name,Email\nAnn,ann@x.io\n")
    put(s3_server, bucket, "in/accounts.csv", ACCOUNTS)
    first = tick(defs, instance, None)
    assert all(r.success for r in run_requests(defs, instance, first))
    assert keys(s3_server, bucket) == ["in/accounts.csv", "in/users.csv"]
    fresh = tick(defs, dg.DagsterInstance.ephemeral(), None)
    assert not fresh.run_requests, "files the ledger holds as loaded and finished get no run"
    assert not tick(defs, instance, fresh.cursor).run_requests

    (landed,), = q(tmp_path, "SELECT max(landed_at) FROM gs_ops.loads")
    wait_for_s3_clock_after(s3_server, bucket, landed)
    put(s3_server, bucket, "in/accounts.csv", ACCOUNTS)
    again = tick(defs, instance, fresh.cursor)
    assert [r.partition_key for r in again.run_requests] == ["in/accounts.csv"]
    (run,) = run_requests(defs, instance, again)
    assert run.success
    assert q(tmp_path, "SELECT status FROM gs_ops.loads WHERE dagster_run_id = ?", [run.run_id]) == [("identical",)]
    assert keys(s3_server, bucket) == ["in/accounts.csv", "in/users.csv"]


def test_the_ui_after_the_demo_requests_no_runs_for_files_already_loaded(tmp_path, s3_server, bucket):
    """`./dev ui` starts an empty local S3 again and a sensor with a new cursor: the sample files go
    back where the demo left them (archive), so the sensor requests runs only for new files."""
    from gs_assets.demo import run_demo
    from gs_assets.demo.run_ui import restore_sample
    jobs = lookups(bucket, run_demo.BUCKET_PREFIX)
    _, defs = platform(tmp_path, jobs)
    sample = tmp_path / "sample"
    sample.mkdir()
    (sample / "users.csv").write_text("Name,Email\nAnn,ann@x.io\n")
    (sample / "accounts.csv").write_text(ACCOUNTS)
    run_demo.upload_sample(s3_server.client(), bucket, sample)
    demo = dg.DagsterInstance.ephemeral()
    assert all(r.success for r in run_requests(defs, demo, tick(defs, demo, None)))
    loaded = keys(s3_server, bucket)
    assert loaded == ["inbound/archive/accounts.csv", "inbound/archive/users.csv"]

    for key in keys(s3_server, bucket) + [k + ".accounts.errors.csv" for k in loaded[:1]]:  # a new, empty S3
        s3_server.client().delete_object(Bucket=bucket, Key=key)
    (sample / "users_2.csv").write_text("Name,Email\nZed,zed@x.io\n")  # one file the demo never loaded
    left = restore_sample(s3_server.client(), bucket, sample, str(tmp_path / "wh.duckdb"))
    assert left == ["inbound/users_2.csv"]
    assert keys(s3_server, bucket) == loaded + ["inbound/users_2.csv"]
    ui = tick(defs, dg.DagsterInstance.ephemeral(), None)
    assert [r.partition_key for r in ui.run_requests] == ["inbound/users_2.csv"]


def test_on_identical_file_reapply_applies_a_reupload_again(tmp_path, s3_server, bucket):
    _, defs = platform(tmp_path, lookups(bucket, accounts={"on_identical_file": "reapply"}))
    instance = dg.DagsterInstance.ephemeral()
    put(s3_server, bucket, "in/users.csv", "Name,Email\nAnn,ann@x.io\n")
    put(s3_server, bucket, "in/accounts.csv", ACCOUNTS)
    first = tick(defs, instance, None)
    assert all(r.success for r in run_requests(defs, instance, first))
    put(s3_server, bucket, "in/users_2.csv", "Name,Email\nZed,zed@x.io\n")
    put(s3_server, bucket, "in/accounts.csv", ACCOUNTS)
    second = tick(defs, instance, first.cursor)
    assert all(r.success for r in run_requests(defs, instance, second))
    assert q(tmp_path, "SELECT external_id FROM gs.company ORDER BY 1") == [("A1",), ("A2",)]
    assert q(tmp_path, "SELECT status, count(*) FROM gs_ops.loads WHERE source_object = 'accounts' GROUP BY 1") == [
        ("landed", 2)]
    assert keys(s3_server, bucket) == ["in/archive/accounts.csv", "in/archive/users.csv", "in/archive/users_2.csv"]


def test_a_file_gone_before_the_second_source_object_landed_it_fails_that_run(tmp_path, s3_server, bucket):
    """The ledger lookup for a file that is gone matches the source object: the other object's
    load does not make this run a Success with nothing loaded."""
    _, defs = platform(tmp_path, dual(bucket))
    instance = dg.DagsterInstance.ephemeral()
    put(s3_server, bucket, "in/d1.csv", "Id,Name,Email\nA1,Acme,ann@x.io\n")
    result = tick(defs, instance, None)
    for req in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    (x,) = [r for r in result.run_requests if r.job_name == "load_files__dualx_job"]
    (y,) = [r for r in result.run_requests if r.job_name == "load_files__dualy_job"]
    assert defs.resolve_job_def(x.job_name).execute_in_process(
        partition_key=x.partition_key, instance=instance, tags=x.tags).success
    s3_server.client().delete_object(Bucket=bucket, Key="in/d1.csv")  # removed by someone else
    run = defs.resolve_job_def(y.job_name).execute_in_process(
        partition_key=y.partition_key, instance=instance, tags=y.tags, raise_on_error=False)
    assert not run.success
    failure = next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE")
    assert "never loaded" in failure.event_specific_data.error.message
