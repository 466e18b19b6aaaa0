"""The one Definitions object: loads through workspace.yaml, names things as DESIGN.md says,
and a broken config fails at load time naming the file and key."""

import os
import subprocess
import sys

import dagster as dg
import pytest

from tests.conftest import REPO


def test_definitions_load_with_the_expected_assets_jobs_sensor():
    from gs_assets.definitions import defs

    keys = {a.key.to_user_string() for a in defs.assets}
    assert {"gs/company", "gs/company_person", "gs/company_usage", "gs/health_score__gc",
            "source/demo_s3/companies", "source/demo_s3/contacts"} <= keys
    company = next(a for a in defs.assets if a.key == dg.AssetKey(["gs", "company"]))
    deps = {k.to_user_string() for k in company.asset_deps[company.key]}
    # (the shipped config's API connections feed Company too: Salesforce accounts, HubSpot companies)
    assert deps == {"source/demo_s3/companies", "source/sfdc/account", "source/hubspot/companies", "gs/user"}, \
        "lookups become asset dependencies"
    cp = next(a for a in defs.assets if a.key == dg.AssetKey(["gs", "company_person"]))
    assert {"gs/person", "gs/company"} <= {k.to_user_string() for k in cp.asset_deps[cp.key]}
    # support_cases accepts Bulk API uploads: its sensors come with it (no notifications configured).
    assert {s.name for s in defs.sensors} == {"s3_files_sensor", "bulk_uploads_sensor", "bulk_status_success_sensor",
                                              "bulk_status_failure_sensor", "run_recovery_sensor"}
    assert all(j.name.endswith("_job") for j in defs.jobs)
    assert {c.name for c in company.check_specs} == {"schema", "conservation", "lookups_resolve"}


@pytest.mark.slow  # Dagster's CLI in a subprocess
def test_dagster_definitions_validate_passes_on_the_workspace():
    proc = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DAGSTER_HOME": ""})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All code locations passed validation" in proc.stdout + proc.stderr


@pytest.mark.slow  # a fresh interpreter importing the definitions
def test_a_broken_config_fails_when_definitions_load(tmp_path):
    import shutil
    from gs_assets.config.loader import DEFAULT_CONFIG_DIR
    cfg = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, cfg)
    crm = cfg / "jobs" / "crm.yaml"
    crm.write_text(crm.read_text().replace("target: billing_country", "target: billing_countyr"))
    proc = subprocess.run([sys.executable, "-c", "import gs_assets.definitions"], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "GSDP_CONFIG_DIR": str(cfg)}, timeout=300)
    assert proc.returncode != 0
    assert f"{crm}: jobs.crm_companies.mappings[11].target: unknown field 'billing_countyr' on object 'company'" in proc.stderr
