"""A job with `schedule` gets a cron schedule that scans its source and requests loads."""

import dagster as dg

from tests.dagster_helpers import persistent_instance, platform, put


JOBS = """
connections:
  files: {type: s3, bucket: %s}
jobs:
  nightly_companies:
    connection: files
    source: {object: companies, prefix: in/, file_name: "companies.csv", match: equals}
    destination: company
    operation: upsert
    identifiers: [external_id]
    schedule: "0 2 * * 1-5"
    timezone: Europe/Berlin
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
"""


def test_a_scheduled_job_scans_its_source_and_registers_the_file_partition(tmp_path, s3_server, bucket):
    _, defs = platform(tmp_path, JOBS % bucket)
    schedule = defs.resolve_schedule_def("nightly_companies_schedule")
    assert schedule.cron_schedule == "0 2 * * 1-5" and schedule.execution_timezone == "Europe/Berlin"
    # A persistent instance (schedule contexts need an instance ref), kept alive for the session:
    # Dagster's definitions-load context keeps a weak reference to the last instance it saw.
    instance = persistent_instance(tmp_path)
    _scheduled_loads(defs, schedule, instance, s3_server, bucket)


def _scheduled_loads(defs, schedule, instance, s3_server, bucket):
    ctx = dg.build_schedule_context(instance=instance, resources={"s3": defs.resources["s3"]}, repository_def=defs.get_repository_def())
    assert isinstance(schedule.evaluate_tick(ctx).skip_message, str)
    put(s3_server, bucket, "in/companies.csv", "Id,Name\nA1,Acme\n")
    put(s3_server, bucket, "in/other.csv", "Id,Name\n")
    result = schedule.evaluate_tick(dg.build_schedule_context(instance=instance, resources={"s3": defs.resources["s3"]}, repository_def=defs.get_repository_def()))
    assert [r.partition_key for r in result.run_requests] == ["in/companies.csv"]
    assert instance.get_dynamic_partitions("files__files__companies") == ["in/companies.csv"]
    run = defs.resolve_job_def("nightly_companies_job").execute_in_process(
        partition_key="in/companies.csv", instance=instance, tags=result.run_requests[0].tags)
    assert run.success


import pytest  # noqa: E402

from gs_assets.validators.errors import ConfigError  # noqa: E402


@pytest.mark.parametrize("schedule, cron, tz", [
    ("{every: day, at: '06:30'}", "30 6 * * *", "Europe/Berlin"),
    ("{every: weekday, at: '02:00', timezone: America/New_York}", "0 2 * * 1-5", "America/New_York"),
    ("{every: week, day: Sunday, at: '23:15'}", "15 23 * * 0", "Europe/Berlin"),
    ("{every: month, day: 28, at: '00:05'}", "5 0 28 * *", "Europe/Berlin"),
    ("{cron: '*/15 * * * *'}", "*/15 * * * *", "Europe/Berlin"),
])
def test_schedule_presets_become_cron_in_their_time_zone(tmp_path, schedule, cron, tz):
    _, defs = platform(tmp_path, JOBS.replace('"0 2 * * 1-5"', schedule) % "bkt")
    s = defs.resolve_schedule_def("nightly_companies_schedule")
    assert (s.cron_schedule, s.execution_timezone) == (cron, tz)


@pytest.mark.parametrize("schedule, message", [
    ("{every: month, day: 31}", "a date from 1 to 28"),
    ("{every: week}", "needs 'day'"),
    ("{every: day, at: '25:00'}", "HH:MM"),
    ("{every: hourly}", "every"),
    ("'every day'", "not a valid cron expression"),
    ("{every: day, timezone: Mars/Olympus}", "unknown time zone"),
])
def test_bad_schedules_fail_at_load_with_the_key(tmp_path, schedule, message):
    with pytest.raises(ConfigError) as e:
        platform(tmp_path, JOBS.replace('"0 2 * * 1-5"', schedule) % "bkt")
    assert "jobs.nightly_companies.schedule" in str(e.value) and message in str(e.value)
