"""Helpers to drive the real Dagster definitions in tests: sensor ticks and runs in one instance."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import dagster as dg

from gs_assets.config.loader import load_platform_config
from gs_assets.definitions import build_definitions


def platform(tmp_path: Path, jobs_yaml: str, objects_yaml: str | None = None):
    cfg_dir = tmp_path / "config"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    (cfg_dir / "jobs.yaml").write_text(textwrap.dedent(jobs_yaml))
    if objects_yaml:
        (cfg_dir / "objects.yaml").write_text(textwrap.dedent(objects_yaml))
    cfg = load_platform_config(cfg_dir)
    defs = build_definitions(cfg, warehouse=str(tmp_path / "wh.duckdb"))
    return cfg, defs


_INSTANCES: list = []


def persistent_instance(tmp_path: Path) -> dg.DagsterInstance:
    """A local Dagster instance under tmp_path, kept alive for the session: schedule and run-status
    contexts need an instance with a ref, and Dagster keeps only a weak reference to it."""
    folder = tmp_path / "dagster"
    folder.mkdir(exist_ok=True)
    instance = dg.DagsterInstance.local_temp(str(folder))
    _INSTANCES.append(instance)
    return instance


def free_port() -> int:
    """A TCP port free on 127.0.0.1 (for the local servers tests start)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    sensor = defs.resolve_sensor_def("s3_files_sensor")
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"s3": defs.resources["s3"],
                                                                                "sqs": defs.resources["sqs"]})
    return sensor(ctx)


def run_requests(defs, instance, result, raise_on_error=False):
    for req in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    out = []
    for rr in result.run_requests or []:
        out.append(defs.resolve_job_def(rr.job_name).execute_in_process(
            partition_key=rr.partition_key, instance=instance, tags=rr.tags, raise_on_error=raise_on_error))
    return out


def cursor_keys(cursor: str) -> dict:
    return json.loads(cursor)


def put(s3_server, bucket: str, key: str, body: str) -> None:
    """Upload through boto3 to the moto S3 server, like an upstream system would."""
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=body.encode())
