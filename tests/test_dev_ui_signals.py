"""`./dev ui` (gs_assets.demo.run_ui) stops everything it started on SIGTERM and on SIGINT: the
Dagster webserver, daemon and code servers (under `dagster dev`), the Bulk API and the S3 server.
No process of its tree is left and its ports are free again.

A drill (it starts the real `dagster dev`): marked `drill` for the slow lane."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.dagster_helpers import free_port

START_DEADLINE = 600  # seconds: a loaded 2-core machine takes its time to load the code location
STOP_DEADLINE = 240


def _table() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, start time, state) from /proc (the test's own view, not run_ui's)."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(d.name)] = (int(fields[1]), fields[19], fields[0])
    return out


def _tree(pid: int) -> dict[int, str]:
    table = _table()
    found, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for p, (ppid, start, _) in table.items():
            if ppid == parent and p not in found:
                found[p] = start
                todo.append(p)
    return found


def _alive(tree: dict[int, str]) -> list[int]:
    table = _table()
    return [p for p, start in tree.items() if p in table and table[p][1] == start and table[p][2] != "Z"]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: only a listener blocks it
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.drill
@pytest.mark.timeout(2 * START_DEADLINE)
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_dev_ui_stops_its_whole_tree(tmp_path, sig):
    ports = {"GSDP_UI_PORT": free_port(), "GSDP_BULK_PORT": free_port(), "GSDP_DEMO_S3_PORT": free_port()}
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "DAGSTER_HOME": str(tmp_path / "dagster_home"),
           "GSDP_WAREHOUSE": str(tmp_path / "wh.duckdb"), "GSDP_BULK_DB": str(tmp_path / "bulk.sqlite")}
    for k in ("GSDP_S3_ENDPOINT_URL", "GSDP_CONFIG_DIR"):
        env.pop(k, None)
    log_path = tmp_path / "ui.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "gs_assets.demo.run_ui"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    tree: dict[int, str] = {}
    try:
        ui, bulk = f"http://127.0.0.1:{ports['GSDP_UI_PORT']}", f"http://127.0.0.1:{ports['GSDP_BULK_PORT']}"
        deadline = time.monotonic() + START_DEADLINE
        while True:
            assert proc.poll() is None, f"run_ui exited ({proc.returncode}): {log_path.read_text()[-3000:]}"
            tree = _tree(proc.pid)
            cmds = " | ".join(_cmdline(p) for p in tree)
            if (_answers(ui + "/server_info") and _answers(bulk + "/openapi.json") and "dagster._daemon" in cmds
                    and "dagster_webserver" in cmds and ("grpc" in cmds or "code-server" in cmds)):
                break
            assert time.monotonic() < deadline, f"./dev ui did not come up: {cmds}\n{log_path.read_text()[-3000:]}"
            time.sleep(1)
        tree = _tree(proc.pid)  # every process it started, now that all are up
        tree[proc.pid] = _table()[proc.pid][1]

        proc.send_signal(sig)
        assert proc.wait(timeout=STOP_DEADLINE) == 128 + sig, log_path.read_text()[-3000:]
        deadline = time.monotonic() + STOP_DEADLINE
        while _alive(tree) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = {p: _cmdline(p) for p in _alive(tree)}
        assert not left, f"still running after {sig.name}: {left}"
        busy = [name for name, port in ports.items() if not _port_free(port)]
        assert not busy, f"ports still held after {sig.name}: {busy}"
    finally:
        for p in _alive(tree):  # only what this test started
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
