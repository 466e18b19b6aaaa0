"""Job config is checked against the data model when definitions load; errors name file and key."""

import textwrap

import pytest

from gs_assets.config.errors import ConfigError
from gs_assets.config.loader import load_platform_config

GOOD = """
connections:
  files: {type: s3, bucket: test-bucket}
jobs:
  companies:
    connection: files
    source: {object: companies, prefix: in/, file_name: "companies*.csv", delimiter: pipe}
    destination: company
    operation: upsert
    identifiers: [external_id]
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
    lookups:
      - {target: csm, object: user, match: [{source: CSM, field: email}], on_none: empty}
"""


def load(tmp_path, text):
    (tmp_path / "jobs.yaml").write_text(textwrap.dedent(text))
    return load_platform_config(tmp_path)


def test_a_good_config_loads(tmp_path):
    cfg = load(tmp_path, GOOD)
    job = cfg.jobs["companies"]
    assert job.source.delimiter == "|" and job.mapped_source_columns == ["Id", "Name", "CSM"]


@pytest.mark.parametrize("old,new,key,text", [
    ("destination: company", "destination: compnay", "jobs.companies.destination", "unknown object 'compnay'"),
    ("target: name}", "target: nmae}", "jobs.companies.mappings[1].target", "unknown field 'nmae' on object 'company'"),
    ("connection: files", "connection: nope", "jobs.companies.connection", "unknown connection 'nope'"),
    ("identifiers: [external_id]", "identifiers: []", "jobs.companies.identifiers", "upsert needs at least one identifier"),
    ("- {source: Name, target: name}", "- {source: Name, target: website}", "jobs.companies.mappings", "required field 'name'"),
    ("object: user, match", "object: person, match", "jobs.companies.lookups[0].object", "points at 'user'"),
    ("field: email}]", "field: mail}]", "jobs.companies.lookups[0].match[0].field", "unknown field 'mail' on object 'user'"),
    ("on_none: empty", "on_none: sometimes", "companies.lookups.0.on_none", "Input should be"),
    ("delimiter: pipe", "delimiter: '#'", "companies.source.delimiter", "delimiter must be one of"),
    ("operation: upsert", "operation: merge", "companies.operation", "Input should be"),
])
def test_broken_job_config_fails_at_load_naming_file_and_key(tmp_path, old, new, key, text):
    assert old in GOOD
    with pytest.raises(ConfigError) as e:
        load(tmp_path, GOOD.replace(old, new))
    msg = str(e.value)
    assert str(tmp_path / "jobs.yaml") in msg and key in msg and text in msg, msg


def test_invalid_yaml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(tmp_path, "jobs: [\n")


def test_the_shipped_config_is_valid():
    cfg = load_platform_config()
    assert {"crm_users", "crm_companies", "crm_people", "crm_company_people", "product_usage", "support_cases"} <= set(cfg.jobs)


def test_a_schedule_with_sqs_listing_is_refused_at_load(tmp_path):
    jobs = """
connections:
  files: {type: s3, bucket: bkt}
jobs:
  nightly:
    connection: files
    source: {object: companies, prefix: in/, listing: sqs, sqs_queue_url: "http://127.0.0.1:1/q"}
    destination: company
    identifiers: [external_id]
    schedule: {every: day, at: "02:00"}
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
"""
    with pytest.raises(ConfigError) as e:
        load(tmp_path, jobs)
    msg = str(e.value)
    assert "jobs.yaml" in msg and "jobs.nightly.source.listing" in msg
    assert "schedule" in msg and "listing: full" in msg


def test_reapplying_identical_files_needs_upsert_or_update(tmp_path):
    jobs = GOOD.replace('delimiter: pipe}', 'delimiter: pipe, on_identical_file: reapply}').replace(
        "operation: upsert", "operation: insert")
    with pytest.raises(ConfigError) as e:
        load(tmp_path, jobs)
    assert "jobs.companies.source.on_identical_file" in str(e.value) and "upsert" in str(e.value)
    assert load(tmp_path, GOOD.replace('delimiter: pipe}', 'delimiter: pipe, on_identical_file: reapply}'))
