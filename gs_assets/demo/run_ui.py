"""Start the Dagster UI over the demo: local S3 (with the sample files) + `dagster dev`, and the
Bulk API service beside it (http://127.0.0.1:8080, OpenAPI at /docs), and the Salesforce and HubSpot
fakes on 127.0.0.1 (gs_assets/demo/api_fakes.py) so the API connections' source assets can be
materialized from the UI: the latest partition syncs now, an earlier one re-syncs its window.

The local S3 server keeps nothing between starts, so the sample files are put back where the demo
left them: a file the warehouse's ledger holds as loaded and moved (same content) goes to its
archive (or error) key, the others to the inbound prefix. The sensor then finds only files that
were never loaded, and the UI does not start with a run per file that would do nothing.

SIGTERM and SIGINT (Ctrl-C) stop everything it started: `dagster dev` and the Bulk API each run in
their own process group, which gets SIGTERM (so the webserver, the daemon, the code servers and
any run they started stop too), then SIGKILL for whatever is left after GRACE_SECONDS; then the
S3 server and the API fakes. No process is left holding a port or ticking a sensor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from gs_assets.demo.run_demo import ROOT, prepare_env, upload_sample

GRACE_SECONDS = 30  # per process tree, between SIGTERM and SIGKILL


class _Stop(BaseException):  # like KeyboardInterrupt: no `except Exception` swallows it
    """SIGTERM or SIGINT arrived: stop every process this launcher started."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, _frame) -> None:
    # The first signal starts the shutdown; a second one must not interrupt it half-way.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise _Stop(signum)


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every process (Linux /proc; `ps` elsewhere)."""
    out: dict[int, tuple[int, str]] = {}
    proc = Path("/proc")
    if proc.is_dir():
        for d in proc.iterdir():
            if d.name.isdigit():
                try:
                    fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue  # ended meanwhile
                out[int(d.name)] = (int(fields[1]), fields[19])
        return out
    for line in subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True).stdout.splitlines():
        pid, ppid = line.split()
        out[int(pid)] = (int(ppid), "")
    return out


def descendants(pid: int) -> dict[int, str]:
    """Every process below `pid` now: pid -> start time (so a reused pid is never signalled)."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for p, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(p)
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in found:
                found[c] = table[c][1]
                todo.append(c)
    return found


def _alive(tree: dict[int, str]) -> dict[int, str]:
    table = _processes()
    return {p: t for p, t in tree.items() if p in table and table[p][1] == t}


def _signal_all(proc: subprocess.Popen, tree: dict[int, str], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # its own process group (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass
    for p in _alive(tree):  # and any that left the group
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop_tree(proc: Optional[subprocess.Popen], name: str, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM `proc`'s process group and every descendant, wait up to `grace` seconds for all of
    them to end, then SIGKILL what is left."""
    if proc is None:
        return
    tree = descendants(proc.pid)
    if proc.poll() is None:
        tree[proc.pid] = _processes().get(proc.pid, (0, ""))[1]
    _signal_all(proc, tree, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()  # reap it, so it does not linger as a zombie
        if not _alive(tree) and proc.returncode is not None:
            return
        time.sleep(0.2)
    left = _alive(tree)
    print(f"{name}: {len(left)} process(es) still running {grace:.0f} s after SIGTERM; killing them", file=sys.stderr)
    _signal_all(proc, tree, signal.SIGKILL)
    proc.wait()


def _spawn(args: list[str]) -> subprocess.Popen:
    # Its own session: a terminal's Ctrl-C reaches only this launcher, which stops the tree in order.
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, start_new_session=True)


def restore_sample(client, bucket: str, sample_dir, warehouse_path: str) -> list[str]:
    """Upload the sample files and move each one the ledger holds as loaded and moved elsewhere
    (same key, same ETag) to where it was moved; returns the keys left in the inbound prefix."""
    keys = upload_sample(client, bucket, sample_dir)
    moved: dict[tuple[str, str], str] = {}
    if os.path.exists(warehouse_path):
        import duckdb

        from gs_assets.engine import ledger
        from resources.warehouse import Warehouse
        try:
            with Warehouse(database=warehouse_path).read(wait_seconds=30) as con:
                rows = ledger.moved_loads(con)
        except duckdb.CatalogException:  # a warehouse without loads yet
            rows = []
        moved = {(r.source_file, r.etag): r.archived_to for r in rows}
    left = []
    for key in keys:
        etag = (client.head_object(Bucket=bucket, Key=key).get("ETag") or "").strip('"')
        target = moved.get((f"s3://{bucket}/{key}", etag))
        if target is None or not target.startswith(f"s3://{bucket}/"):
            left.append(key)
            continue
        client.copy_object(Bucket=bucket, Key=target[len(f"s3://{bucket}/"):], CopySource={"Bucket": bucket, "Key": key})
        client.delete_object(Bucket=bucket, Key=key)
    return left


def main() -> int:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    s3 = bulk = dev = fakes = None
    try:
        prepare_env()
        import gs_assets.connectors.registry  # noqa: F401  (registers the connector kinds the config names)
        from gs_assets.config.loader import load_platform_config
        from gs_assets.demo.local_s3 import LocalS3
        from gs_assets.demo.sample_data import generate

        sample = ROOT / "data" / "sample"
        if not sample.exists():
            generate(sample)
        s3 = LocalS3(int(os.environ.get("GSDP_DEMO_S3_PORT", "9555")))
        try:
            s3.start()
            os.environ.update(s3.env())
            cfg = load_platform_config()
            restore_sample(s3.client(), cfg.connections["demo_s3"].bucket, sample, os.environ["GSDP_WAREHOUSE"])
            print(f"local S3 on {s3.endpoint}; warehouse {os.environ['GSDP_WAREHOUSE']}; "
                  f"Dagster home {os.environ['DAGSTER_HOME']}")
            from gs_assets.demo import api_fakes
            fakes = api_fakes.start()
            os.environ.update(fakes.env)  # inherited by `dagster dev` and its runs only
            for line in api_fakes.describe(fakes):
                print(line)
            print("  materialize source/sfdc/* or source/hubspot/* in the UI: the latest partition syncs now, "
                  "an earlier one re-syncs that window")
            bulk_port = os.environ.setdefault("GSDP_BULK_PORT", "8080")
            bulk = _spawn(["gs_assets.connectors.bulk_upload.app"])
            print(f"Bulk API: http://127.0.0.1:{bulk_port}/docs  (create a key: .venv/bin/gsdp keys create --name me)")
            ui_port = os.environ.get("GSDP_UI_PORT", "3000")
            print(f"Dagster UI: http://127.0.0.1:{ui_port}  (Ctrl-C to stop)", flush=True)
            dev = _spawn(["dagster", "dev", "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", ui_port])
            return dev.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):  # the shutdown is bounded; let it finish
                signal.signal(sig, signal.SIG_IGN)
            stop_tree(dev, "dagster dev")
            stop_tree(bulk, "Bulk API")
            s3.stop()  # terminate, then kill after 10 s
            if fakes is not None:
                fakes.stop()
    except _Stop as e:
        print(f"{e}: stopped the Dagster UI, the daemon, the Bulk API, the S3 server and the API fakes", file=sys.stderr)
        return 128 + e.signum


if __name__ == "__main__":
    sys.exit(main())
