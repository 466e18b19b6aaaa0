"""The Dagster instance settings the platform relies on (written to $DAGSTER_HOME/dagster.yaml).

DuckDB allows one writing process at a time. Every step that writes to the warehouse declares the
`warehouse` pool; the instance gives that pool one slot, so steps of concurrent runs and backfills
wait for it instead of failing on DuckDB's file lock. Runs themselves go through the run queue
(several at once: downloads, startup and checks overlap), and run monitoring frees the slot of a
run that ended without releasing it. A run whose process was killed is failed by
`run_recovery_sensor`, after which its slot is freed too.
"""

from __future__ import annotations

from pathlib import Path

MARKER = "# Written by gs-data-platform"
_OLD_MARKER = "# Local Dagster instance for gs-data-platform."
DEFAULT_MAX_CONCURRENT_RUNS = 4

DAGSTER_YAML = """\
{marker} (./dev). Remove this line to keep your own edits; otherwise it is rewritten when it changes.
concurrency:
  runs:
    # Runs in progress at once; more wait in the run queue (Overview > Runs > Queued).
    max_concurrent_runs: {max_runs}
  pools:
    # `warehouse`: every step that writes to DuckDB. One writer at a time, the others wait in the
    # pool (Deployment > Concurrency shows who holds it) instead of failing on the file lock.
    default_limit: 1
    granularity: op
    # Runs the queue starts although their first step must wait for the pool: they import, read
    # config and download while another run writes.
    op_granularity_run_buffer: {buffer}
run_monitoring:
  enabled: true
  poll_interval_seconds: 5
  # A run that ended without releasing its pool slot (its process was killed) gives it back.
  free_slots_after_run_end_seconds: 5
telemetry:
  enabled: false
"""


def dagster_yaml(max_concurrent_runs: int = DEFAULT_MAX_CONCURRENT_RUNS) -> str:
    return DAGSTER_YAML.format(marker=MARKER, max_runs=max_concurrent_runs, buffer=max(max_concurrent_runs - 1, 0))


def write_instance_config(home: Path, max_concurrent_runs: int = DEFAULT_MAX_CONCURRENT_RUNS) -> Path:
    """Write dagster.yaml under `home` unless the user took it over (removed the marker line)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    text = dagster_yaml(max_concurrent_runs)
    if path.exists():
        current = path.read_text()
        if current == text or not (current.startswith(MARKER) or current.startswith(_OLD_MARKER)):
            return path
    path.write_text(text)
    return path
