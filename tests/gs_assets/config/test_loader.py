"""Job config is checked against the data model when definitions load; errors name file and key."""

import textwrap

import pytest

from gs_assets.validators.errors import ConfigError
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
_LOAD = ("import sys; import gs_assets.connectors.registry; from gs_assets.config.loader import load_platform_config; "
         "load_platform_config(sys.argv[1])")


@pytest.mark.slow  # each case loads the config in a subprocess with a time limit
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


# Item 13: config errors a person can act on.
def test_a_duplicate_key_is_refused_naming_file_key_and_both_lines(tmp_path):
    text = GOOD.replace("    destination: company\n", "    destination: company\n    destination: person\n")
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    msg, lines = str(e.value), textwrap.dedent(text).splitlines()
    first, second = (i + 1 for i, line in enumerate(lines) if line.strip().startswith("destination:"))
    assert str(tmp_path / "jobs.yaml") in msg and "jobs.companies.destination" in msg, msg
    assert f"lines {first} and {second}" in msg and "twice" in msg, msg


@pytest.mark.parametrize("old, new, key", [
    ("jobs:\n", "jobs: {}\njobs:\n", "jobs"),                                   # top level
    ("{source: Id, target: external_id}", "{source: Id, target: external_id, source: Name}",
     "jobs.companies.mappings[0].source"),                                      # in a list item, flow style
    ("on_none: empty}", "on_none: empty, match: []}", "jobs.companies.lookups[0].match"),
])
def test_duplicate_keys_are_refused_at_any_depth(tmp_path, old, new, key):
    assert old in GOOD
    with pytest.raises(ConfigError) as e:
        load(tmp_path, GOOD.replace(old, new, 1))
    assert f"{tmp_path / 'jobs.yaml'}: {key}: " in str(e.value) and "twice" in str(e.value), str(e.value)


def test_a_duplicate_key_in_objects_yaml_is_refused(tmp_path):
    (tmp_path / "objects.yaml").write_text("custom_fields:\n  company:\n    tier__gc: {type: string}\n"
                                           "    tier__gc: {type: number}\n")
    with pytest.raises(ConfigError) as e:
        load(tmp_path, GOOD)
    msg = str(e.value)
    assert str(tmp_path / "objects.yaml") in msg and "custom_fields.company.tier__gc" in msg and "lines 3 and 4" in msg, msg


CYCLE = GOOD + """
  users:
    connection: files
    source: {object: users, prefix: in/, file_name: "users*.csv"}
    destination: user
    identifiers: [email]
    mappings:
      - {source: Email, target: email}
      - {source: Name, target: name}
    lookups:
      - {target: home_company__gc, object: company, match: [{source: Company, field: external_id}], on_none: empty}
"""
CYCLE_OBJECTS = """
custom_fields:
  user:
    home_company__gc: {type: gsid, lookup: company}
    buddy__gc: {type: gsid, lookup: person}
  person:
    employer__gc: {type: gsid, lookup: company}
"""


def test_a_chain_whose_lookups_go_round_names_the_cycle_and_gives_advice_that_can_be_followed(tmp_path):
    (tmp_path / "objects.yaml").write_text(CYCLE_OBJECTS)
    for order in ("[companies, users]", "[users, companies]"):
        with pytest.raises(ConfigError) as e:
            load(tmp_path, CYCLE + f"chains:\n  nightly: {{jobs: {order}}}\n")
        msg = str(e.value)
        assert str(tmp_path / "jobs.yaml") in msg and "chains.nightly.jobs" in msg, msg
        assert "companies -> users -> companies" in msg or "users -> companies -> users" in msg, msg
        assert "companies looks up 'user', which users loads" in msg and "users looks up 'company', which companies loads" in msg, msg
        assert "before" not in msg and "separate chains" in msg, msg  # no order can work: no "put X before Y"


def test_a_longer_lookup_cycle_is_named_in_full(tmp_path):
    (tmp_path / "objects.yaml").write_text(CYCLE_OBJECTS)
    text = CYCLE.replace("home_company__gc, object: company, match: [{source: Company, field: external_id}]",
                         "buddy__gc, object: person, match: [{source: Buddy, field: email}]") + """
  people:
    connection: files
    source: {object: people, prefix: in/, file_name: "people*.csv"}
    destination: person
    identifiers: [email]
    mappings:
      - {source: Email, target: email}
    lookups:
      - {target: employer__gc, object: company, match: [{source: Company, field: external_id}], on_none: empty}
chains:
  nightly: {jobs: [people, users, companies]}
"""
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    msg = str(e.value)
    assert "people -> companies -> users -> people" in msg and "before" not in msg, msg


def test_a_chain_in_the_wrong_order_without_a_cycle_says_which_order_works(tmp_path):
    (tmp_path / "objects.yaml").write_text(CYCLE_OBJECTS)
    text = CYCLE.replace("home_company__gc, object: company, match: [{source: Company, field: external_id}]",
                         "buddy__gc, object: person, match: [{source: Buddy, field: email}]") + """
  people:
    connection: files
    source: {object: people, prefix: in/, file_name: "people*.csv"}
    destination: person
    identifiers: [email]
    mappings:
      - {source: Email, target: email}
chains:
  nightly: {jobs: [companies, users, people]}
"""
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    msg = str(e.value)
    assert "chains.nightly.jobs[0]" in msg and "put 'users' before 'companies'" in msg, msg
    assert "jobs: [people, users, companies]" in msg, msg  # an order that satisfies every lookup


@pytest.mark.parametrize("old, new, key, allowed, closest", [
    ("destination: company", "destinaton: company", "jobs.companies.destinaton",
     "connection, source, destination", "destination"),
    ("{source: Name, target: name}", "{source: Name, tagret: name, target: name}", "jobs.companies.mappings.1.tagret",
     "source, constant, target, default", "target"),
    ("field: email}]", "field: email, case: true}]", "jobs.companies.lookups.0.match.0.case", "source, field", None),
    ("    mappings:", "    schedule: {evry: day}\n    mappings:", "jobs.companies.schedule.evry",
     "every, at, day, cron, timezone", "every"),
    ("connections:", "connection:", "connection", "connections, jobs, chains, notifications, bulk_api", "connections"),
    ("bucket: test-bucket}", "bucket: test-bucket, buckit: x}", "connections.files.buckit", "type, bucket", "bucket"),
])
def test_an_unknown_key_lists_the_allowed_keys_and_the_closest(tmp_path, old, new, key, allowed, closest):
    assert old in GOOD
    with pytest.raises(ConfigError) as e:
        load(tmp_path, GOOD.replace(old, new, 1))
    msg = str(e.value)
    unknown = key.rsplit(".", 1)[-1]
    assert f"{tmp_path / 'jobs.yaml'}: {key}: unknown key {unknown!r}" in msg, msg
    assert "allowed keys: " in msg and all(k in msg.split("allowed keys: ", 1)[1] for k in allowed.split(", ")), msg
    assert (f"did you mean {closest!r}" in msg) if closest else ("did you mean" not in msg), msg
    assert "Extra inputs are not permitted" not in msg and "function-after" not in msg, msg


def test_an_unknown_key_in_objects_yaml_lists_the_field_keys(tmp_path):
    (tmp_path / "objects.yaml").write_text("custom_fields:\n  company:\n    tier__gc: {type: string, requird: true}\n")
    with pytest.raises(ConfigError) as e:
        load(tmp_path, GOOD)
    msg = str(e.value)
    assert "custom_fields.company.tier__gc.requird: unknown key 'requird' (did you mean 'required'?)" in msg, msg
    assert "allowed keys: " in msg and "max_length" in msg, msg


def test_several_errors_name_each_key_once(tmp_path):
    text = GOOD.replace("delimiter: pipe}", "delimiter: pipe, bogus: 1}").replace("operation: upsert", "operation: merge")
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    msg = str(e.value)
    for key in ("jobs.companies.source.bogus", "jobs.companies.operation"):
        assert msg.count(key) == 1, msg
    single = GOOD.replace("operation: upsert", "operation: merge")
    with pytest.raises(ConfigError) as e:
        load(tmp_path, single)
    assert str(e.value).count("jobs.companies.operation") == 1 and e.value.key == "jobs.companies.operation", str(e.value)


@pytest.mark.parametrize("statement, found", [
    ("DELETE FROM gs.company", "DELETE"),
    ("SELECT 1; DROP TABLE x", "SELECT, DROP"),
    ("CREATE TABLE t AS SELECT 1", "CREATE"),
])
def test_a_statement_in_a_filter_is_refused_in_plain_words(tmp_path, statement, found):
    text = GOOD.replace("    mappings:", f'    prepare:\n      filter: "{statement}"\n    mappings:', 1)
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    msg = str(e.value)
    assert f"{tmp_path / 'jobs.yaml'}: jobs.companies.prepare.filter: " in msg and found in msg, msg
    assert "one expression" in msg and "not a statement" in msg and "serialized to json" not in msg, msg


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
