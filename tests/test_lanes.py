"""The test lanes: `./dev test` runs everything (what CI runs), `./dev test --fast` the fast lane
(no drills, no tests marked slow), both markers registered; and the shared jobs.yaml builder gives
the config a hand-written jobs.yaml gives."""

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from gs_assets.config.loader import load_platform_config
from tests.config_builder import config_yaml, file_job
from tests.conftest import REPO, write_config


def test_drill_and_slow_markers_are_registered():
    markers = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert {m.split(":")[0] for m in markers} >= {"drill", "slow"}


def _dev(tmp_path, *args):
    """Runs a copy of ./dev whose uv and python only print what they were asked to run."""
    shutil.copy(REPO / "dev", tmp_path / "dev")
    for tool in (".tools/bin/uv", ".venv/bin/python"):
        path = tmp_path / tool
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$(basename "$0")" "$@"\n')
        path.chmod(0o755)
    p = subprocess.run(["bash", str(tmp_path / "dev"), *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def test_dev_test_fast_deselects_drills_and_slow_tests_and_passes_other_arguments(tmp_path):
    out = _dev(tmp_path, "test", "--fast", "-q", "tests/gs_assets")
    assert out[out.index("python"):] == ["python", "-m", "pytest", "-m", "not drill and not slow", "-n", "2",
                                         "--dist", "loadfile", "-q", "tests/gs_assets"]


def test_dev_test_without_fast_runs_everything(tmp_path):
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("./dev test would install chromium first")
    out = _dev(tmp_path, "test", "-q")  # with arguments: one pytest with them
    assert out[out.index("python"):] == ["python", "-m", "pytest", "-q"]
    out = _dev(tmp_path, "test")  # CI: every test but the drills on two workers, then the drills alone
    assert out[out.index("python"):] == ["python", "-m", "pytest", "-m", "not drill", "-n", "2", "--dist", "loadfile",
                                         "python", "-m", "pytest", "-m", "drill"]


def test_config_builder_gives_the_config_of_the_hand_written_yaml(tmp_path):
    built = config_yaml("bkt", {"companies": file_job(
        "companies", "company", ["external_id"], {"Id": "external_id", "Name": "name"}, connection="crm",
        operation="upsert", source={"prefix": "in/", "file_name": "companies*.csv", "match": "glob"}, bulk_upload=True,
        lookups=[{"target": "csm", "object": "user", "match": [{"source": "CSM", "field": "email"}]}])},
        connection="crm", connection_options={"backfill_files_per_run": 5}, bulk_api={"max_upload_mb": 8})
    by_hand = """
connections:
  crm: {type: s3, bucket: bkt, backfill_files_per_run: 5}
jobs:
  companies:
    connection: crm
    source: {object: companies, prefix: in/, file_name: "companies*.csv", match: glob}
    destination: company
    operation: upsert
    identifiers: [external_id]
    bulk_upload: true
    mappings:
      - {source: Id, target: external_id}
      - {source: Name, target: name}
    lookups:
      - {target: csm, object: user, match: [{source: CSM, field: email}]}
bulk_api: {max_upload_mb: 8}
"""
    assert yaml.safe_load(built) == yaml.safe_load(by_hand)
    a = load_platform_config(write_config(tmp_path / "a", built))
    b = load_platform_config(write_config(tmp_path / "b", by_hand))
    assert a.jobs["companies"] == b.jobs["companies"] and a.connections == b.connections and a.bulk_api == b.bulk_api
