"""Dataset preparation: derived fields and filters run in DuckDB before mapping; filtered rows
are counted, never lost; formulas are checked when the config loads."""

import json

import pytest

from gs_assets.validators.errors import ConfigError

JOBS = """
connections:
  files: {type: s3, bucket: test-bucket}
jobs:
  companies:
    connection: files
    source: {object: companies}
    destination: company
    operation: upsert
    identifiers: [external_id]
    prepare:
      derived:
        - {name: Full Name, expression: "concat_ws(' ', trim(\\"Name\\"), '(' || upper(\\"Region\\") || ')')"}
        - {name: ARR, expression: "TRY_CAST(\\"MRR\\" AS DOUBLE) * 12"}
        - {name: Tier, expression: "CASE WHEN TRY_CAST(ARR AS DOUBLE) >= 100000 THEN 'Enterprise' ELSE 'SMB' END"}
      filter: "\\"Status\\" <> 'Churned' AND TRY_CAST(\\"MRR\\" AS DOUBLE) > 0"
    mappings:
      - {source: Id, target: external_id}
      - {source: Full Name, target: name}
      - {source: ARR, target: arr}
      - {source: Tier, target: tier__gc}
"""

OBJECTS = """
custom_fields:
  company:
    tier__gc: {type: dropdown, values: [SMB, Enterprise]}
"""

CSV = """
Id,Name,Region,MRR,Status
A1,Acme,emea,10000,Active
A2,Beta,us,500,Churned
A3,Gamma,apac,x,Active
A4,Delta,us,0,Active
A5,"Eps, Inc",us,900,Active
"""


def test_derived_fields_and_filter_with_filtered_rows_counted(harness):
    h = harness(JOBS, OBJECTS)
    _, res = h.load("companies", CSV)
    assert (res.rows_read, res.inserted, res.filtered, res.rejected) == (5, 2, 3, 0)
    assert res.conserved
    assert h.rows("SELECT external_id, name, arr, tier__gc FROM gs.company ORDER BY external_id") == [
        ("A1", "Acme (EMEA)", 120000.0, "Enterprise"), ("A5", "Eps, Inc (US)", 10800.0, "SMB")]
    assert h.rows("SELECT filtered FROM gs_ops.job_runs") == [(3,)]


def test_a_derived_value_that_fails_its_field_is_rejected_with_the_value(harness):
    h = harness(JOBS.replace('"TRY_CAST(\\"MRR\\" AS DOUBLE) * 12"', "\"'about ' || \\\"MRR\\\"\""), OBJECTS)
    _, res = h.load("companies", CSV)
    assert (res.rejected, res.filtered) == (2, 3)
    reasons = h.rejects(res.job_run_id)
    assert reasons[0][0] == 2 and reasons[0][1][0]["value"] == "about 10000" and reasons[0][1][0]["rule"] == "type"


@pytest.mark.parametrize("old, new, key, message", [
    ('filter: "\\"Status\\" <> \'Churned\' AND TRY_CAST(\\"MRR\\" AS DOUBLE) > 0"',
     "filter: \"(SELECT count(*) FROM gs.company) > 0\"", "jobs.companies.prepare.filter", "subquery"),
    ("TRY_CAST(\\\"MRR\\\" AS DOUBLE) * 12", "read_csv('/etc/passwd')",
     "jobs.companies.prepare.derived[1].expression", "read_csv"),
    ("TRY_CAST(\\\"MRR\\\" AS DOUBLE) * 12", "\\\"MRR\\\" * 12",
     "jobs.companies.prepare.derived[1].expression", "TRY_CAST"),
    ("{name: Tier,", "{name: Full Name,", "jobs.companies.prepare.derived[2].name", "defined twice"),
])
def test_bad_formulas_fail_at_load_with_file_and_key(harness, old, new, key, message):
    bad = JOBS.replace(old, new)
    assert bad != JOBS
    with pytest.raises(ConfigError) as e:
        harness(bad, OBJECTS)
    assert key in str(e.value) and message in str(e.value) and "jobs.yaml" in str(e.value)


MERGE_JOBS = """
connections:
  files: {type: s3, bucket: test-bucket}
jobs:
  accounts:
    connection: files
    source: {object: accounts}
    destination: company
    identifiers: [external_id]
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
  people:
    connection: files
    source: {object: contacts}
    destination: person
    identifiers: [email]
    prepare:
      merge:
        - {dataset: %(dataset)s, how: %(how)s, keys: [{left: Account, right: Id}], columns: [Country], prefix: acct_}
      derived:
        - {name: Where, expression: "upper(acct_Country)"}
    mappings:
      - {source: Email, target: email}
      - {source: Where, target: country}
"""

ACCOUNTS = "Id,Name,Country\nA1,Acme,de\nA2,Beta,fr\nA1,Acme,at\n"
CONTACTS = "Email,Account\na@x.io,A1\nb@x.io, A2\nc@x.io,A9\nd@x.io,\n"


@pytest.mark.parametrize("how, people, filtered", [
    ("inner", [("a@x.io", "AT"), ("b@x.io", "FR")], 2),
    ("left", [("a@x.io", "AT"), ("b@x.io", "FR"), ("c@x.io", None), ("d@x.io", None)], 0),
])
def test_merge_adds_columns_of_the_latest_file_of_another_dataset(harness, how, people, filtered):
    from gs_assets.engine.pipeline import LoadError, apply_pending
    h = harness(MERGE_JOBS % {"dataset": "accounts", "how": how})
    # Before any accounts file: the load fails clearly and stays pending.
    with pytest.raises(LoadError, match="no file of it has been loaded yet"):
        h.load("people", CONTACTS)
    h.load("accounts", ACCOUNTS)
    (res,) = apply_pending(h.warehouse, h.cfg, "person")
    assert (res.rows_read, res.inserted, res.filtered, res.rejected) == (4, len(people), filtered, 0)
    assert h.rows("SELECT email, country FROM gs.person ORDER BY email") == people


def test_merge_of_an_unknown_dataset_fails_at_load(harness):
    with pytest.raises(ConfigError) as e:
        harness(MERGE_JOBS % {"dataset": "acounts", "how": "left"})
    assert "jobs.people.prepare.merge[0].dataset" in str(e.value) and "unknown dataset 'acounts'" in str(e.value)


AGG_JOBS = """
connections:
  files: {type: s3, bucket: test-bucket}
jobs:
  companies:
    connection: files
    source: {object: companies}
    destination: company
    identifiers: [external_id]
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
  daily_usage:
    connection: files
    source: {object: events}
    destination: company_usage
    identifiers: [company_id, usage_date, feature]
    prepare:
      derived:
        - {name: Day, expression: "left(\\"Timestamp\\", 10)"}
      filter: "\\"Event\\" <> 'heartbeat'"
      aggregate:
        group_by: [Account, Day, Feature]
        measures:
          - {name: Events, function: count}
          - {name: Minutes, function: sum, column: Seconds}
          - {name: Users, function: count_distinct, column: User}
    mappings:
      - {source: Day, target: usage_date}
      - {source: Feature, target: feature}
      - {source: Events, target: event_count}
      - {source: Minutes, target: minutes}
      - {source: Users, target: unique_users}
    lookups:
      - {target: company_id, object: company, match: [{source: Account, field: external_id}]}
"""

EVENTS = """Account,User,Timestamp,Feature,Event,Seconds
A1,u1,2026-11-26T09:00:00,reports,view,30
A1,u2,2026-11-26T10:00:00,reports,view,90
A1,u1,2026-11-26T11:00:00,reports,export,60
A1,u1,2026-11-26T11:05:00,reports,heartbeat,1
A1,u1,2026-11-27T08:00:00,reports,view,15
A9,u7,2026-11-26T09:00:00,reports,view,10
A1,u3,2026-11-26T12:00:00,reports,view
"""


def test_aggregation_groups_rows_and_accounts_for_every_input_row(harness):
    h = harness(AGG_JOBS)
    h.load("companies", "Id,Name\nA1,Acme\n")
    _, res = h.load("daily_usage", EVENTS)
    # 7 rows: one malformed (short row) is rejected as is, one heartbeat filtered, the other 5 make
    # 3 groups (A1 26th: 3 rows, A1 27th: 1, A9 26th: 1 -> its company does not exist: rejected);
    # 2 rows were folded into their group's row (aggregated).
    assert (res.rows_read, res.inserted, res.rejected, res.filtered, res.aggregated) == (7, 2, 2, 1, 2)
    assert res.conserved
    rows = h.rows("SELECT usage_date::VARCHAR, event_count, minutes, unique_users FROM gs.company_usage ORDER BY 1")
    assert rows == [("2026-11-26", 3.0, 180.0, 2.0), ("2026-11-27", 1.0, 15.0, 1.0)]
    assert h.rows("SELECT aggregated FROM gs_ops.job_runs WHERE job = 'daily_usage'") == [(2,)]
    # The rejected group is reported at its first line, with the reason.
    assert [(line, [r["rule"] for r in reasons]) for line, reasons in h.rejects(res.job_run_id)] == [
        (7, ["lookup_no_match"]), (8, ["malformed_row"])]


def test_aggregation_only_exposes_groups_and_measures(harness):
    with pytest.raises(ConfigError) as e:
        harness(AGG_JOBS.replace("{source: Feature, target: feature}", "{source: Event, target: feature}"))
    assert "jobs.daily_usage.mappings[1].source" in str(e.value) and "only the group_by columns and measures" in str(e.value)


def test_full_merge_brings_rows_only_in_the_dataset_reported_with_its_file_and_line(harness):
    from gs_assets.engine.pipeline import apply_pending
    h = harness(MERGE_JOBS % {"dataset": "accounts", "how": "full"})
    h.load("accounts", ACCOUNTS + "A3,Gamma,es\n")
    _, res = h.load("people", CONTACTS)
    # 4 contact rows + account A3, which no contact has; its row has no email, so it is rejected,
    # and the reject points at the accounts file, line 5.
    assert (res.rows_read, res.inserted, res.rejected, res.filtered) == (5, 4, 1, 0) and res.conserved
    (row,) = h.rows(f"SELECT source_file, line_number, original_values, reasons FROM gs_ops.rejects "
                    f"WHERE job_run_id = '{res.job_run_id}'")
    assert row[0].endswith("file1.csv") and row[1] == 5
    assert json.loads(row[2]) == {"Id": "A3", "Name": "Gamma", "Country": "es"}
    assert {r["field"] for r in json.loads(row[3])} >= {"email"}


def test_only_one_full_merge_per_job(harness):
    two = MERGE_JOBS.replace("      derived:", "        - {dataset: accounts, how: full, keys: [{left: Email, right: Id}], columns: [Name]}\n      derived:")
    with pytest.raises(ConfigError) as e:
        harness(two % {"dataset": "accounts", "how": "full"})
    assert "jobs.people.prepare.merge[1].how" in str(e.value)
