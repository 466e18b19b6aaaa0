"""One builder for the jobs.yaml that tests write: a connection and its jobs from a few arguments.

    config_yaml(bucket, {"companies": file_job("companies", "company", ["external_id"],
                                               {"Id": "external_id", "Name": "name"}, prefix="in/")})

gives the YAML text `platform()`, `harness()` and `write_config()` take. Anything the builder has no
argument for goes in as a keyword (`lookups=[...]`, `bulk_upload=True`, top-level `chains={...}`), in
the shape jobs.yaml has it."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

import yaml

Mappings = Union[Mapping[str, str], Sequence[Mapping[str, Any]]]


def file_job(source_object: str, destination: str, identifiers: Sequence[str], mappings: Mappings, *,
             connection: str = "files", operation: Optional[str] = None,
             source: Optional[Mapping[str, Any]] = None, **fields: Any) -> dict:
    """One job reading files of `source_object` into `destination`. `mappings` is {source column: target
    field} or jobs.yaml's list of mapping dicts (for defaults); `source` adds file source fields (prefix,
    file_name, match, ...); `operation` is left out unless given (the config default applies)."""
    job: dict = {"connection": connection, "source": {"object": source_object, **(source or {})},
                 "destination": destination}
    if operation is not None:
        job["operation"] = operation
    job["identifiers"] = list(identifiers)
    job.update(fields)
    job["mappings"] = [{"source": s, "target": t} for s, t in mappings.items()] if isinstance(mappings, Mapping) \
        else [dict(m) for m in mappings]
    return job


def config_yaml(bucket: str, jobs: Mapping[str, Mapping[str, Any]], *, connection: str = "files",
                connection_options: Optional[Mapping[str, Any]] = None, **top: Any) -> str:
    """jobs.yaml text: one S3 connection named `connection` on `bucket`, the given jobs, and any other
    top-level sections (`chains`, `notifications`, `bulk_api`) as keywords."""
    doc: dict = {"connections": {connection: {"type": "s3", "bucket": bucket, **(connection_options or {})}},
                 "jobs": {name: dict(job) for name, job in jobs.items()}}
    doc.update(top)
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)
