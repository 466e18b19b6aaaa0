"""Field lineage in the UI: an object's materialization carries `dagster/column_lineage` (which
source column fills which field, through mappings, merges, derived fields, lookups and
aggregations, the union over the jobs that load it), and a source's materialization carries
`dagster/column_schema`: the columns of the file it landed, with the jobs that read each."""

import dagster as dg

from gs_assets.engine.lineage import field_lineage
from tests.dagster_helpers import persistent_instance, platform, put, run_requests, tick

JOBS = """
connections:
  files: {type: s3, bucket: %s}
jobs:
  accounts:
    connection: files
    source: {object: accounts, prefix: in/, file_name: "accounts_*.csv"}
    destination: company
    identifiers: [external_id]
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
      - {constant: Active, target: status}
  people:
    connection: files
    source: {object: contacts, prefix: in/, file_name: "contacts_*.csv"}
    destination: person
    identifiers: [email]
    prepare:
      merge:
        - {dataset: accounts, keys: [{left: Account, right: Id}], columns: [Country], prefix: acct_}
      derived:
        - {name: First Name, expression: "trim(\\"First\\")"}
        - {name: Where, expression: "upper(acct_Country)"}
    mappings:
      - {source: Email, target: email}
      - {source: First Name, target: first_name}
      - {source: Where, target: country}
      - {source: $file_name, target: external_id}
      - {constant: "n/a", target: phone}
    lookups:
      - {target: employer__gc, object: company, match: [{source: Account, field: external_id}]}
"""

OBJECTS = """
custom_fields:
  person:
    employer__gc: {type: gsid, lookup: company}
"""

ACCOUNTS = "Id,Name,Country\nA1,Acme,de\nA2,Beta,fr\n"
CONTACTS = "Email,First,Account,Shoe Size\na@x.io, Ann ,A1,38\nb@x.io,Bob,A2,44\n"

COMPANY, PERSON = dg.AssetKey(["gs", "company"]), dg.AssetKey(["gs", "person"])
ACC_SRC, CON_SRC = dg.AssetKey(["source", "files", "accounts"]), dg.AssetKey(["source", "files", "contacts"])


def deps(key, column):
    return dg.TableColumnDep(asset_key=key, column_name=column)


PERSON_LINEAGE = {
    "email": [deps(CON_SRC, "Email")],
    "first_name": [deps(CON_SRC, "First")],
    "country": [deps(ACC_SRC, "Country")],  # derived Where = upper(acct_Country), merged from accounts
    "external_id": [deps(CON_SRC, "$file_name")],
    "employer__gc": [deps(COMPANY, "external_id"), deps(CON_SRC, "Account")],
}
COMPANY_LINEAGE = {"external_id": [deps(ACC_SRC, "Id")], "name": [deps(ACC_SRC, "Name")]}


def latest(instance, key) -> dict:
    return instance.get_latest_materialization_event(key).asset_materialization.metadata


def as_dict(lineage: dg.TableColumnLineage) -> dict:
    return {c: list(d) for c, d in lineage.deps_by_column.items()}


def test_object_materializations_carry_field_lineage_and_sources_their_columns(tmp_path, s3_server, bucket):
    _, defs = platform(tmp_path, JOBS % bucket, OBJECTS)
    instance = persistent_instance(tmp_path)
    put(s3_server, bucket, "in/accounts_1.csv", ACCOUNTS)
    result = tick(defs, instance, None)
    assert all(r.success for r in run_requests(defs, instance, result))
    put(s3_server, bucket, "in/contacts_1.csv", CONTACTS)
    assert all(r.success for r in run_requests(defs, instance, tick(defs, instance, result.cursor)))

    person = latest(instance, PERSON)
    assert person["inserted"].value == 2
    # constants (phone) have no column they come from: no entry
    assert as_dict(person["dagster/column_lineage"].value) == PERSON_LINEAGE
    assert as_dict(latest(instance, COMPANY)["dagster/column_lineage"].value) == COMPANY_LINEAGE
    # ... and which job fills which field, in a table the open-source UI shows
    text = person["field_lineage"].value
    assert "| employer__gc | people | lookup company by external_id |" in text

    # The source's columns as its last file came, each with the jobs that read it.
    schema = latest(instance, CON_SRC)["dagster/column_schema"].value
    assert [(c.name, c.type, c.description) for c in schema.columns] == [
        ("Email", "VARCHAR", "read by: people"),
        ("First", "VARCHAR", "read by: people"),
        ("Account", "VARCHAR", "read by: people"),
        ("Shoe Size", "VARCHAR", "read by no job"),
        ("$file_name", "VARCHAR", "from the file's name (not a column of the file); read by: people"),
    ]
    schema = latest(instance, ACC_SRC)["dagster/column_schema"].value
    assert [(c.name, c.description) for c in schema.columns] == [
        ("Id", "read by: accounts, people (merge key)"), ("Name", "read by: accounts"),
        ("Country", "read by: people (merge)")]


def test_the_object_definition_carries_the_same_lineage(tmp_path):
    _, defs = platform(tmp_path, JOBS % "some-bucket", OBJECTS)
    meta = defs.get_assets_def(PERSON).specs_by_key[PERSON].metadata
    assert as_dict(meta["dagster/column_lineage"]) == PERSON_LINEAGE
    # a merged dataset is upstream of the object, as its columns are
    assert ACC_SRC in defs.get_assets_def(PERSON).asset_deps[PERSON]


CHAIN = JOBS + """
chains:
  nightly:
    jobs: [accounts, people]
"""


def test_a_chain_member_object_materialization_carries_the_lineage(tmp_path, s3_server, bucket):
    _, defs = platform(tmp_path, CHAIN % bucket, OBJECTS)
    instance = persistent_instance(tmp_path)
    put(s3_server, bucket, "in/accounts_1.csv", ACCOUNTS)
    put(s3_server, bucket, "in/contacts_1.csv", CONTACTS)
    assert defs.resolve_job_def("nightly_chain_job").execute_in_process(instance=instance).success
    assert as_dict(latest(instance, PERSON)["dagster/column_lineage"].value) == PERSON_LINEAGE
    assert [c.name for c in latest(instance, CON_SRC)["dagster/column_schema"].value.columns][:4] == [
        "Email", "First", "Account", "Shoe Size"]


AGG = """
connections:
  files: {type: s3, bucket: b-bucket}
jobs:
  usage:
    connection: files
    source: {object: events, file_name: "events_{yyyy}-{MM}-{dd}.csv", match: date_pattern}
    destination: company_usage
    identifiers: [company_id, usage_date, feature]
    prepare:
      derived:
        - {name: Minutes, expression: "TRY_CAST(\\"Seconds\\" AS DOUBLE) / 60"}
      aggregate:
        group_by: [Account, Feature]
        measures:
          - {name: Events, function: count}
          - {name: Total Minutes, function: sum, column: Minutes}
          - {name: Users, function: count_distinct, column: User}
    mappings:
      - {source: $file_date, target: usage_date}
      - {source: Feature, target: feature}
      - {source: Events, target: event_count}
      - {source: Total Minutes, target: minutes}
      - {source: Users, target: unique_users}
    lookups:
      - {target: company_id, object: company, match: [{source: Account, field: external_id}]}
  usage_extra:
    connection: files
    source: {object: extra}
    destination: company_usage
    identifiers: [company_id, usage_date, feature]
    mappings:
      - {source: Day, target: usage_date}
      - {source: Feature, target: feature}
    lookups:
      - {target: company_id, object: company, match: [{source: Company, field: name}, {source: Domain, field: website}]}
"""


def test_aggregations_and_several_jobs_into_one_object(tmp_path):
    cfg, _ = platform(tmp_path, AGG)
    ev, ex, co = ["source", "files", "events"], ["source", "files", "extra"], ["gs", "company"]
    got = {f: sorted((tuple(k), c) for k, c in d) for f, d in field_lineage(cfg, "company_usage").deps.items()}
    assert got == {
        "usage_date": [(tuple(ev), "$file_date"), (tuple(ex), "Day")],
        "feature": [(tuple(ev), "Feature"), (tuple(ex), "Feature")],
        "event_count": [],  # count(*) reads no column
        "minutes": [(tuple(ev), "Seconds")],
        "unique_users": [(tuple(ev), "User")],
        "company_id": [(tuple(co), "external_id"), (tuple(co), "name"), (tuple(co), "website"),
                       (tuple(ev), "Account"), (tuple(ex), "Company"), (tuple(ex), "Domain")],
    }


FULL = """
connections:
  files: {type: s3, bucket: f-bucket}
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
        - {dataset: accounts, how: full, keys: [{left: Account, right: Id}], columns: [Name]}
      derived:
        - {name: Mail, expression: "lower(\\"Email\\")"}
        - {name: Clean Mail, expression: "trim(Mail) || coalesce(Name, '')"}
        - {name: Tag, expression: "'imported'"}
    mappings:
      - {source: Clean Mail, target: email}
      - {source: Account, target: external_id}
      - {source: Name, target: city}
      - {source: Tag, target: country}
"""


def test_full_merge_keys_chained_formulas_and_constant_formulas(tmp_path):
    cfg, _ = platform(tmp_path, FULL)
    acc, con = ("source", "files", "accounts"), ("source", "files", "contacts")
    got = {f: sorted(d) for f, d in field_lineage(cfg, "person").deps.items()}
    assert got == {
        "email": [(acc, "Name"), (con, "Email")],  # a formula over a formula and a merged column
        "external_id": [(acc, "Id"), (con, "Account")],  # a full merge's rows only in accounts take its Id
        "city": [(acc, "Name")],
        "country": [],  # a formula of constants reads no column
    }
