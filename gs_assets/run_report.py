"""What a Dagster run launched in process (by `gsdp run`, chains from the CLI, the demo) printed
for a person: Dagster's console stays quiet and this says what failed, one paragraph for an
expected failure (dg.Failure), the stack trace only for a bug."""

from __future__ import annotations

import sys

# Dagster's console logger prints a failed step's error with its whole stack trace, twice (step
# and run failure). `gsdp run` keeps it quiet and says itself what failed: one paragraph for an
# expected failure (dg.Failure), the stack trace only for a bug. The run and its events are still
# stored in the instance, so the UI shows everything.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def report_run(instance, res) -> list[str]:
    """Print what the quiet console did not: warnings and errors the run logged, and the stack
    trace of any step that failed on an unexpected exception. Returns the descriptions of the
    expected failures (dg.Failure) for the caller to put in its own words."""
    expected: list[str] = []
    for entry in instance.all_logs(res.run_id):
        event = entry.dagster_event
        if event is None:
            # What a step logged for the user at WARNING or above (not Dagster's note that a step
            # after a failed one did not run: the failure itself is reported below).
            if entry.level >= 30 and not entry.user_message.startswith("Dependencies for step "):
                print(f"{'warning' if entry.level < 40 else 'error'}: {entry.user_message}", file=sys.stderr)
            continue
        if event.event_type_value != "STEP_FAILURE":
            continue
        data = event.event_specific_data
        if data.user_failure_data is not None or data.error.cls_name == "Failure":
            expected.append((data.user_failure_data.description if data.user_failure_data else None)
                            or data.error.message.split(": ", 1)[-1].strip())
        else:
            print(f"step {event.step_key} failed on an unexpected error (a bug; the run {res.run_id} keeps it):\n"
                  f"{data.error.to_string()}", file=sys.stderr)
    return expected
