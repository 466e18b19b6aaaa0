"""A real local Dagster deployment for tests: the webserver and the daemon as subprocesses on
127.0.0.1 (what `dagster dev` starts), over the project's workspace.yaml, an instance made by the
project's own instance config, a config folder, a warehouse file and the loopback S3 server.

They are started one after the other so a test can set sensor states through the webserver's
GraphQL API before the daemon ticks them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gs_assets.instance_config import write_instance_config
from tests.conftest import REPO
from tests.dagster_helpers import free_port

LOCATION = "gs_assets.definitions"
REPOSITORY = "__repository__"


class DagsterDeployment:
    def __init__(self, tmp_path: Path, *, config_dir: Path, warehouse: Path, s3_env: dict,
                 max_concurrent_runs: int = 4):
        self.home = tmp_path / "dagster_home"
        write_instance_config(self.home, max_concurrent_runs=max_concurrent_runs)
        self.env = {**os.environ, **s3_env, "DAGSTER_HOME": str(self.home), "GSDP_CONFIG_DIR": str(config_dir),
                    "GSDP_WAREHOUSE": str(warehouse)}
        self.logs = tmp_path / "logs"
        self.logs.mkdir(exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        out = open(self.logs / f"{name}.log", "wb")
        p = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=self.env, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def start_webserver(self, timeout: float = 180) -> "DagsterDeployment":
        proc = self._spawn("webserver", ["dagster_webserver", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1",
                                         "-p", str(self.port)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the webserver exited ({proc.returncode}): "
                                   f"{(self.logs / 'webserver.log').read_text()[-3000:]}")
            try:
                data = self.graphql("{ workspaceOrError { ... on Workspace { locationEntries { name "
                                    "locationOrLoadError { __typename ... on PythonError { message } } } } } }")
                entries = data["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"]:
                    kind = entries[0]["locationOrLoadError"]["__typename"]
                    assert kind == "RepositoryLocation", entries[0]["locationOrLoadError"]
                    return self
            except (httpx.HTTPError, KeyError, TypeError):
                pass
            time.sleep(1)
        raise TimeoutError(f"webserver did not load the code location; see {self.logs / 'webserver.log'}")

    def start_daemon(self) -> "DagsterDeployment":
        self._spawn("daemon", ["dagster._daemon", "run", "-w", str(REPO / "workspace.yaml")])
        return self

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        r = httpx.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
        r.raise_for_status()
        body = r.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def stop_sensor(self, name: str) -> None:
        data = self.graphql(
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename "
            "... on Sensor { sensorState { id selectorId status } } } }",
            {"s": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": name}})
        state = data["sensorOrError"]["sensorState"]
        if state["status"] != "STOPPED":
            res = self.graphql("mutation($id: String!) { stopSensor(id: $id) "
                               "{ __typename ... on StopSensorMutationResult { instigationState { status } } "
                               "... on PythonError { message } } }", {"id": state["id"]})
            assert res["stopSensor"]["instigationState"]["status"] == "STOPPED", res

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
