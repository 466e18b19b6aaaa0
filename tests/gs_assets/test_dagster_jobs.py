"""Dagster job names come from one module (gs_assets/dagster_jobs.py): every job the Definitions hold
is named by it, and no other module spells a job name by hand."""

import re

from tests.conftest import REPO


def test_every_job_in_the_definitions_is_named_by_dagster_jobs():
    from gs_assets.config.loader import load_platform_config
    from gs_assets.dagster_jobs import APPLY_OBJECTS_JOB, chain_job_name, job_asset_job_name, source_job_name
    from gs_assets.definitions import build_definitions

    cfg = load_platform_config()
    defs = build_definitions(cfg)
    expected = ({job_asset_job_name(j.name) for j in cfg.jobs.values()}
                | {source_job_name(j.connection, j.source.object) for j in cfg.jobs.values()}
                | {chain_job_name(c) for c in cfg.chains})
    if any(j.retry_unmatched_lookups is not None for j in cfg.jobs.values()):
        expected.add(APPLY_OBJECTS_JOB)
    assert {j.name for j in defs.jobs} == expected
    assert source_job_name("demo_s3", "companies") == "load_demo_s3__companies_job"
    assert job_asset_job_name("crm_companies") == "crm_companies_job"
    assert chain_job_name("nightly") == "nightly_chain_job"


def test_no_module_spells_a_job_name_by_hand():
    spelled = re.compile(r"""\}(_chain)?_job["']|["']apply_objects_job["']""")  # f"{x}_job", f"{x}_chain_job"
    offenders = []
    for folder in ("gs_assets", "sensors", "schedules", "resources"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if path.name == "dagster_jobs.py":
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if spelled.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
