"""Out-of-the-box jobs: a connection to a known system comes with that system's default jobs.

A system is a spec file in `specs/` (`<system>.yaml`: a label and job templates without a
connection). For a connection with `system: <name>` each template becomes a job named
`<connection>_<key>`, reading under the connection's `prefix`. The connection's `default_jobs`
switches a template off (`false`) or replaces some of its keys (a dict; `source` keys merge into
the template's source); a job of the same name in `jobs:` replaces the default entirely. A new
system (or a new connector type, like the API connectors) is a new spec file, not code.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from gs_assets.validators.errors import ConfigError
from gs_assets.model.objects import read_yaml_mapping

SPECS_DIR = Path(__file__).resolve().parents[1] / "connectors" / "specs"


def known_systems() -> list[str]:
    return sorted(p.stem for p in SPECS_DIR.glob("*.yaml"))


def _templates(conn, file: str, key: str) -> tuple[str, dict]:
    """(the spec file, its job templates) of the connection's system: a connection model that
    knows its system's spec (`default_job_templates`, e.g. a REST API system) says; otherwise the
    system is a spec file in `specs/`."""
    own = getattr(conn, "default_job_templates", None)
    if own is not None:
        return own()
    if conn.system not in known_systems():
        raise ConfigError(file, f"{key}.system",
                          f"unknown system {conn.system!r}; known systems: {', '.join(known_systems())}")
    spec_path = SPECS_DIR / f"{conn.system}.yaml"
    return str(spec_path), read_yaml_mapping(spec_path).get("jobs") or {}


def default_job_dicts(conn_name: str, conn, file: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """{job name: (config key to blame, job dict)} for one connection's system."""
    key = f"connections.{conn_name}"
    _spec_file, templates = _templates(conn, file, key)
    unknown = sorted(set(conn.default_jobs) - set(templates))
    if unknown:
        raise ConfigError(file, f"{key}.default_jobs.{unknown[0]}",
                          f"{conn.system} has no default job {unknown[0]!r}; its default jobs: {', '.join(templates)}")
    prefix = getattr(conn, "prefix", None)  # file systems: the templates read under the connection's prefix
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, template in templates.items():
        override = conn.default_jobs.get(name, True)
        if override is False:
            continue
        job = copy.deepcopy(template)
        job["connection"] = conn_name
        source = dict(job.get("source") or {})
        if prefix is not None:
            source["prefix"] = prefix + source.get("prefix", "")
        if isinstance(override, dict):
            override = copy.deepcopy(override)
            source.update(override.pop("source", {}) or {})
            job.update(override)
        job["source"] = source
        job.setdefault("description", f"default job of {conn.system}")
        out[f"{conn_name}_{name}"] = (f"{key}.default_jobs.{name}", job)
    return out
