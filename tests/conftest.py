"""Shared fixtures: a real S3-protocol server (moto) on loopback, temp warehouses, config folders."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

import gs_assets.connectors.registry  # noqa: F401 (the connector kinds register their config models)
from gs_assets.config.loader import load_platform_config
from gs_assets.demo.local_s3 import LocalS3
from gs_assets.connectors.s3_files.reader import file_chunks
from gs_assets.connectors.s3_files.reader import land
from gs_assets.engine.pipeline import apply_pending
from gs_assets.engine.warehouse_setup import sync_object_tables
from resources.warehouse import Warehouse

REPO = Path(__file__).resolve().parents[1]

# postgres_server / mariadb_server (per session) and pg_database / mariadb_database (per test):
# real PostgreSQL 15 and MariaDB on 127.0.0.1 (tests/sql_servers.py)
pytest_plugins = ["tests.sql_servers"]


@pytest.fixture(scope="session")
def s3_server():
    """moto in server mode on 127.0.0.1, reached through boto3 like real S3."""
    server = LocalS3().start()
    old = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    yield server
    server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def bucket(s3_server, request):
    """A fresh, empty bucket per test."""
    name = ("t-" + request.node.name.lower().replace("_", "-"))[:50].strip("-").replace("[", "-").replace("]", "")
    client = s3_server.client()
    try:
        client.create_bucket(Bucket=name)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    for obj in client.list_objects_v2(Bucket=name).get("Contents", []):
        client.delete_object(Bucket=name, Key=obj["Key"])
    return name


_HOLD = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'ro'); "
         "print('held', flush=True); time.sleep(float(sys.argv[3])); print('releasing', flush=True); c.close()")


def released(holder) -> bool:
    """Whether a hold_warehouse process has said it is letting go of the lock (it says so just
    before it closes the file, so whoever got the lock after it finds the line already there)."""
    import select
    return bool(select.select([holder.stdout], [], [], 0)[0]) and holder.stdout.readline().strip() == "releasing"


def hold_warehouse(path, *, read_only: bool = False, seconds: float = 5):
    """Another process that holds DuckDB's lock on `path` (as a writer, or a reader) for `seconds`;
    returns once it holds it. Wait on or kill the returned process."""
    import subprocess
    import sys
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), "ro" if read_only else "rw", str(seconds)],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def write_config(folder: Path, jobs_yaml: str, objects_yaml: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "jobs.yaml").write_text(textwrap.dedent(jobs_yaml))
    if objects_yaml is not None:
        (folder / "objects.yaml").write_text(textwrap.dedent(objects_yaml))
    return folder


class Harness:
    """Runs jobs on CSV text through the engine's public entry points (land + apply_pending)."""

    def __init__(self, tmp_path: Path, jobs_yaml: str, objects_yaml: str | None = None):
        self.tmp = tmp_path
        self.cfg = load_platform_config(write_config(tmp_path / "config", jobs_yaml, objects_yaml))
        self.warehouse = Warehouse(database=str(tmp_path / "wh.duckdb"))
        with self.warehouse.connect() as con:
            sync_object_tables(con, self.cfg.model)
        self.n = 0

    def load(self, job: str, csv_text: str, name: str | None = None, etag: str | None = None):
        j = self.cfg.jobs[job]
        self.n += 1
        path = self.tmp / (name or f"file{self.n}.csv")
        path.write_text(textwrap.dedent(csv_text).lstrip("\n"), encoding="utf-8")
        landed = land(self.warehouse, self.cfg, connection=j.connection, source_object=j.source.object,
                      chunks=file_chunks(str(path)), name=path.name, source_file=str(path),
                      etag=etag or f"etag{self.n}")
        results = apply_pending(self.warehouse, self.cfg, j.destination) if landed.status == "landed" else []
        mine = [r for r in results if r.job == job]
        return landed, (mine[0] if mine else None)

    def rows(self, sql: str):
        with self.warehouse.connect() as con:
            return con.execute(sql).fetchall()

    def rejects(self, job_run_id: str):
        import json
        return [(line, json.loads(reasons)) for line, reasons in self.rows(
            f"SELECT line_number, reasons FROM gs_ops.rejects WHERE job_run_id = '{job_run_id}' ORDER BY line_number")]


@pytest.fixture
def harness(tmp_path):
    def make(jobs_yaml: str, objects_yaml: str | None = None) -> Harness:
        return Harness(tmp_path, jobs_yaml, objects_yaml)
    return make
