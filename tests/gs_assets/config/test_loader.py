"""Job config is checked against the data model when definitions load; errors name file and key."""

import textwrap

import pytest

from gs_assets.config.errors import ConfigError
from gs_assets.config.loader import load_platform_config
from tests.memory import run_and_measure

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


# Item 6: a formula is type-checked when the config loads, without computing its constants.
_LOAD = "import sys; from gs_assets.config.loader import load_platform_config; load_platform_config(sys.argv[1])"


@pytest.mark.parametrize("where, bomb", [
    # DuckDB's optimizer folds constants: this filter was computed (100 MB) at every config load.
    ("filter", "repeat('x', {n}) = 'a'"),
    # Functions whose pattern/format is constant evaluate it while binding (LIKE, regexp, strftime).
    ("derived", "CASE WHEN \\\"Name\\\" LIKE lpad('%', {n}, '%') THEN 'y' END"),
    ("derived", "strftime(TRY_CAST(\\\"Name\\\" AS DATE), repeat('%d', {n} // 50))"),
])
def test_a_huge_constant_in_a_formula_is_not_computed_when_the_config_loads(tmp_path, where, bomb):
    def config(n: int) -> str:
        expr = bomb.format(n=n)
        prepare = (f'      filter: "{expr}"\n' if where == "filter"
                   else f'      derived:\n        - {{name: Extra, expression: "{expr}"}}\n')
        return GOOD.replace("    mappings:", "    prepare:\n" + prepare + "    mappings:", 1)
    small, big = tmp_path / "small", tmp_path / "big"
    for folder, n in ((small, 3), (big, 100_000_000)):
        folder.mkdir()
        (folder / "jobs.yaml").write_text(textwrap.dedent(config(n)))
    assert load_platform_config(small).jobs["companies"].prepare  # a valid config
    # The check of a 100 MB constant costs (almost) nothing over the check of a 3-byte one.
    grown = run_and_measure(_LOAD, str(big))[1] - run_and_measure(_LOAD, str(small))[1]
    assert grown < 50, f"checking the config took {grown:.0f} MiB more"
