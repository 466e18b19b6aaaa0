"""Job chains end to end: a scheduled chain (Company, then People and Company Person with lookups
to Company and Person, then Usage with a lookup to Company), each job preparing its dataset,
run through Dagster against a moto S3 server; a failing member stops or does not stop the chain."""

import dagster as dg
import duckdb
import pytest

from gs_assets.validators.errors import ConfigError
from tests.dagster_helpers import persistent_instance, platform, put

JOBS = """
connections:
  crm: {type: s3, bucket: %(bucket)s}
jobs:
  companies:
    connection: crm
    source: {object: companies, prefix: crm/, file_name: "companies_*.csv", match: glob}
    destination: company
    identifiers: [external_id]
    schedule: {every: day, at: "05:00"}     # replaced by the chain's schedule
    prepare:
      derived:
        - {name: Company Name, expression: "trim(\\"Name\\")"}
      filter: "\\"Status\\" <> 'Deleted'"
    mappings:
      - {source: Account ID, target: external_id}
      - {source: Company Name, target: name}
  people:
    connection: crm
    source: {object: contacts, prefix: crm/, file_name: "contacts_*.csv", match: glob}
    destination: person
    identifiers: [email]
    prepare:
      derived:
        - {name: First Name, expression: "upper(left(trim(\\"First\\"), 1)) || lower(substr(trim(\\"First\\"), 2))"}
      filter: "\\"Email\\" IS NOT NULL AND \\"Email\\" <> ''"
    mappings:
      - {source: Email, target: email}
      - {source: First Name, target: first_name}
      - {source: Last, target: last_name}
  company_people:
    connection: crm
    source: {object: contacts, prefix: crm/, file_name: "contacts_*.csv", match: glob}
    destination: company_person
    identifiers: [person_id, company_id]
    prepare:
      derived:
        - {name: Role, expression: "CASE lower(\\"Title\\") WHEN 'cto' THEN 'Decision Maker' WHEN 'admin' THEN 'Admin' ELSE 'End User' END"}
      filter: "\\"Email\\" IS NOT NULL AND \\"Email\\" <> ''"
    mappings:
      - {source: Title, target: title}
      - {source: Role, target: role}
    lookups:
      - {target: company_id, object: company, match: [{source: Account ID, field: external_id}]}
      - {target: person_id, object: person, match: [{source: Email, field: email}]}
  usage:
    connection: crm
    source: {object: usage, prefix: usage/, file_name: "usage_{yyyy}-{MM}-{dd}.csv", match: date_pattern}
    destination: company_usage
    identifiers: [company_id, usage_date, feature]
    prepare:
      derived:
        - {name: Minutes, expression: "round(TRY_CAST(\\"Seconds\\" AS DOUBLE) / 60, 2)"}
      filter: "\\"Feature\\" <> 'internal_ping'"
    mappings:
      - {source: $file_date, target: usage_date}
      - {source: Feature, target: feature}
      - {source: Events, target: event_count}
      - {source: Minutes, target: minutes}
    lookups:
      - {target: company_id, object: company, match: [{source: Account ID, field: external_id}]}
chains:
  nightly:
    jobs: [companies, people, company_people, usage]
    schedule: {every: weekday, at: "02:30", timezone: America/New_York}
    on_failure: %(on_failure)s
"""

COMPANIES = "Account ID,Name,Status\nA1, Acme ,Active\nA2,Beta,Active\nA3,Gone,Deleted\n"
CONTACTS = ("Account ID,Email,First,Last,Title\nA1,ann@acme.io, ann,Lee,CTO\nA2,bob@beta.io,Bob,Ray,admin\n"
            "A1,,No,Email,intern\nA3,cy@gone.io,Cy,Gone,CEO\n")
USAGE = "Account ID,Feature,Events,Seconds\nA1,reports,10,600\nA2,reports,3,90\nA1,internal_ping,1,1\n"


def _files(s3_server, bucket, companies=COMPANIES):
    put(s3_server, bucket, "crm/companies_1.csv", companies)
    put(s3_server, bucket, "crm/contacts_1.csv", CONTACTS)
    put(s3_server, bucket, "usage/usage_2026-11-26.csv", USAGE)


def _run_chain(tmp_path, defs):
    instance = persistent_instance(tmp_path)
    schedule = defs.resolve_schedule_def("nightly_chain_schedule")
    ctx = dg.build_schedule_context(instance=instance, repository_def=defs.get_repository_def())
    (req,) = schedule.evaluate_tick(ctx).run_requests
    job = defs.resolve_job_def(req.job_name or schedule.job_name)
    return instance, job.execute_in_process(instance=instance, tags=req.tags, raise_on_error=False)


def test_scheduled_chain_loads_in_order_with_dataset_preparation(tmp_path, s3_server, bucket):
    _files(s3_server, bucket)
    cfg, defs = platform(tmp_path, JOBS % {"bucket": bucket, "on_failure": "stop"})
    schedule = defs.resolve_schedule_def("nightly_chain_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 2 * * 1-5", "America/New_York")
    # The chain's schedule replaces its members' own; the sensor leaves chain-only sources alone.
    assert not any(s.name == "companies_schedule" for s in defs.schedules)
    assert not any(s.name == "s3_files_sensor" for s in defs.sensors)

    instance, result = _run_chain(tmp_path, defs)
    assert result.success
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    runs = con.execute("SELECT job, status, rows_read, inserted, rejected, filtered FROM gs_ops.job_runs "
                       "ORDER BY started_at").fetchall()
    assert [r[0] for r in runs] == ["companies", "people", "company_people", "usage"]
    by_job = {r[0]: r[1:] for r in runs}
    assert by_job["companies"] == ("Success", 3, 2, 0, 1)
    assert by_job["people"] == ("Success", 4, 3, 0, 1)
    # cy@gone.io works at A3, which the companies filter removed: that link is rejected, not lost.
    assert by_job["company_people"] == ("Partial Success", 4, 2, 1, 1)
    assert by_job["usage"] == ("Success", 3, 2, 0, 1)
    assert con.execute("SELECT c.name, p.first_name || ' ' || p.last_name, cp.role FROM gs.company_person cp JOIN gs.company c ON c.gsid = cp.company_id "
                       "JOIN gs.person p ON p.gsid = cp.person_id ORDER BY 1").fetchall() == [
        ("Acme", "Ann Lee", "Decision Maker"), ("Beta", "Bob Ray", "Admin")]
    assert con.execute("SELECT c.external_id, u.usage_date::VARCHAR, u.minutes FROM gs.company_usage u "
                       "JOIN gs.company c ON c.gsid = u.company_id ORDER BY 1").fetchall() == [
        ("A1", "2026-11-26", 10.0), ("A2", "2026-11-26", 1.5)]
    # The chain's run records what it loaded on the asset pages.
    for key in (["gs", "company"], ["gs", "company_person"], ["gs", "company_usage"]):
        assert instance.get_latest_materialization_event(dg.AssetKey(key)) is not None
    assert instance.get_dynamic_partitions("files__crm__companies") == ["crm/companies_1.csv"]
    # Files were archived after their loads committed.
    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert "crm/archive/companies_1.csv" in keys and "crm/companies_1.csv" not in keys


@pytest.mark.parametrize("on_failure, later_runs", [("stop", []), ("continue", ["people", "company_people", "usage"])])
def test_a_failed_member_stops_the_chain_unless_told_to_continue(tmp_path, s3_server, bucket, on_failure, later_runs):
    _files(s3_server, bucket, companies="Account,Name,Status\nA1,Acme,Active\n")  # lacks the mapped 'Account ID'
    _, defs = platform(tmp_path, JOBS % {"bucket": bucket, "on_failure": on_failure})
    _, result = _run_chain(tmp_path, defs)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "companies" in failure.event_specific_data.error.message and "Account ID" in failure.event_specific_data.error.message
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    runs = [r[0] for r in con.execute("SELECT job FROM gs_ops.job_runs WHERE job <> 'companies' ORDER BY started_at").fetchall()]
    assert runs == later_runs


@pytest.mark.parametrize("chain, key, message", [
    ("{jobs: [usage, companies]}", "chains.bad.jobs[0]", "put 'companies' before 'usage'"),
    ("{jobs: [companies, nope]}", "chains.bad.jobs[1]", "unknown job 'nope'"),
    ("{jobs: [companies, companies]}", "chains.bad.jobs[1]", "twice"),
    ("{jobs: [companies], schedule: {every: week}}", "chains.bad.schedule", "needs 'day'"),
])
def test_bad_chains_fail_at_load_with_file_and_key(tmp_path, chain, key, message):
    text = (JOBS % {"bucket": "bkt", "on_failure": "stop"}).split("chains:")[0] + f"chains:\n  bad: {chain}\n"
    with pytest.raises(ConfigError) as e:
        platform(tmp_path, text)
    assert key in str(e.value) and message in str(e.value)


AGG_JOBS = """
connections:
  crm: {type: s3, bucket: %(bucket)s}
jobs:
  companies:
    connection: crm
    source: {object: companies, prefix: crm/, file_name: "companies_*.csv", match: glob}
    destination: company
    identifiers: [external_id]
    mappings:
      - {source: Account ID, target: external_id}
      - {source: Name, target: name}
      - {source: Industry, target: industry, default: Other}
  usage:
    connection: crm
    source: {object: usage, prefix: usage/, file_name: "usage_{yyyy}-{MM}-{dd}.csv", match: date_pattern}
    destination: company_usage
    identifiers: [company_id, usage_date, feature]
    prepare:
      aggregate:
        group_by: [Account ID, Feature]
        measures: [{name: Events, function: count}]
    mappings:
      - {source: $file_date, target: usage_date}
      - {source: Feature, target: feature}
      - {source: Events, target: event_count}
    lookups:
      - {target: company_id, object: company, match: [{source: Account ID, field: external_id}]}
chains:
  nightly: {jobs: [companies, usage], schedule: {every: day, at: "02:30"}}
"""


def test_chain_metadata_counts_aggregated_and_defaulted_rows(tmp_path, s3_server, bucket):
    put(s3_server, bucket, "crm/companies_1.csv", "Account ID,Name,Industry\nA1,Acme,Retail\nA2,Beta,Bakery\nA3,Gamma,\n")
    put(s3_server, bucket, "usage/usage_2026-11-26.csv",
        "Account ID,Feature\nA1,reports\nA1,reports\nA1,reports\nA2,reports\nA2,export\n")
    _, defs = platform(tmp_path, AGG_JOBS % {"bucket": bucket})
    instance, result = _run_chain(tmp_path, defs)
    assert result.success

    def meta(obj):
        md = instance.get_latest_materialization_event(dg.AssetKey(["gs", obj])).asset_materialization.metadata
        return {k: md[k].value for k in ("rows_read", "inserted", "aggregated", "defaulted")}

    assert meta("company") == {"rows_read": 3, "inserted": 3, "aggregated": 0, "defaulted": 2}
    assert meta("company_usage") == {"rows_read": 5, "inserted": 3, "aggregated": 2, "defaulted": 0}
