"""Out-of-the-box jobs: a connection to a known system brings its default jobs, which config can
switch off, adjust or replace; they load HubSpot-style exports end to end."""

import pytest

from gs_assets.validators.errors import ConfigError
from gs_assets.engine.pipeline import apply_pending

CONN = """
connections:
  hs:
    type: s3
    bucket: crm-exports
    system: hubspot_crm
    prefix: hubspot/
    %s
"""


def test_a_known_system_brings_its_default_jobs(harness):
    cfg = harness(CONN % "").cfg
    assert sorted(cfg.jobs) == ["hs_companies", "hs_contact_companies", "hs_contacts", "hs_owners"]
    job = cfg.jobs["hs_companies"]
    assert (job.connection, job.destination, job.source.prefix, job.source.file_name) == (
        "hs", "company", "hubspot/", "companies*.csv")


def test_default_jobs_can_be_switched_off_adjusted_or_replaced(harness):
    cfg = harness(CONN % """default_jobs:
      owners: false
      companies: {schedule: {every: day, at: "03:00"}, source: {file_name: "accounts*.csv", match: glob}}
jobs:
  hs_contacts:
    connection: hs
    source: {object: people, prefix: other/}
    destination: person
    identifiers: [email]
    mappings: [{source: Mail, target: email}]
""").cfg
    assert "hs_owners" not in cfg.jobs
    companies = cfg.jobs["hs_companies"]
    assert companies.schedule.cron_expression() == "0 3 * * *"
    assert (companies.source.file_name, companies.source.prefix) == ("accounts*.csv", "hubspot/")
    assert cfg.jobs["hs_contacts"].source.object == "people"  # the user's own job replaced the default


@pytest.mark.parametrize("extra, key, message", [
    ("", "connections.hs.system", "unknown system 'salesforce_crm'; known systems: hubspot_crm"),
    ("default_jobs: {deals: false}", "connections.hs.default_jobs.deals", "no default job 'deals'"),
    ("default_jobs: {companies: {mappings: [{source: X, target: nope}]}}", "connections.hs.default_jobs.companies",
     "unknown field 'nope'"),
])
def test_bad_default_job_config_names_the_connection_key(harness, extra, key, message):
    text = CONN % extra
    if "salesforce" in message:
        text = text.replace("hubspot_crm", "salesforce_crm")
    with pytest.raises(ConfigError) as e:
        harness(text)
    assert key in str(e.value) and message in str(e.value)


OWNERS = """
Owner ID,First Name,Last Name,Email
11,Cara,Mills,cara@vendor.io
12,,,
"""
COMPANIES = """
Record ID,Company name,Industry,Number of Employees,Annual Revenue,Website URL,Country/Region,Company owner
501,Acme Corp,Software,"1,200","$250,000",https://acme.example,Germany,cara@vendor.io
502,Beta LLC,Crypto,40,,,France,
"""
CONTACTS = """
Record ID,First Name,Last Name,Email,Phone Number,City,Country/Region,Job Title,Associated Company ID
901,Ann,Lee,ann@acme.example,+49 1,Berlin,Germany,CTO,501
902,Bob,Ray,bob@beta.example,,Paris,France,Admin,502
903,No,Mail,,,,,Intern,501
"""


def test_default_jobs_load_hubspot_exports(harness):
    h = harness(CONN % "")
    _, owners = h.load("hs_owners", OWNERS)
    assert (owners.inserted, owners.filtered) == (1, 1)
    _, companies = h.load("hs_companies", COMPANIES)
    assert (companies.inserted, companies.rejected) == (2, 0)
    assert h.rows("SELECT c.external_id, c.industry, c.employees, c.arr, u.name FROM gs.company c "
                  "LEFT JOIN gs.user u ON u.gsid = c.csm ORDER BY 1") == [
        ("501", "Software", 1200.0, 250000.0, "Cara Mills"), ("502", "Other", 40.0, None, None)]
    # One contacts file feeds two default jobs: Person, then Company Person (lookups to both).
    _, contacts = h.load("hs_contacts", CONTACTS)
    assert h.rows("SELECT count(*) FROM gs.person") == [(2,)]
    (links,) = apply_pending(h.warehouse, h.cfg, "company_person")
    assert (links.job, links.inserted, links.filtered) == ("hs_contact_companies", 2, 1)
    assert h.rows("SELECT p.email, c.name, cp.title FROM gs.company_person cp JOIN gs.person p ON p.gsid = cp.person_id "
                  "JOIN gs.company c ON c.gsid = cp.company_id ORDER BY 1") == [
        ("ann@acme.example", "Acme Corp", "CTO"), ("bob@beta.example", "Beta LLC", "Admin")]
