"""The layer contract in pyproject.toml ([tool.importlinter]) holds: no module imports a layer above it.

Layers, bottom to top: validators -> model -> config -> resources -> engine -> dagster_jobs -> connectors ->
assets/sensors/schedules -> definitions -> cli/demo. No exceptions or ignored imports.
"""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_layer_contract_has_no_exceptions():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    for contract in cfg["contracts"]:
        assert not contract.get("ignore_imports"), contract["name"]
        assert not contract.get("unmatched_ignore_imports_alerting"), contract["name"]
    assert any(c["type"] == "layers" for c in cfg["contracts"])


def test_lint_imports_keeps_the_layers():
    exe = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
