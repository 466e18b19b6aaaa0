"""`gsdp`: the platform from a terminal (installed with the package).

    gsdp validate                 check the config folder (exit 2 with file, key and what to do)
    gsdp schema [--out FILE]      JSON Schema of the connections/jobs YAML, for editors
    gsdp jobs                     the configured jobs
    gsdp run JOB [--file KEY] [--reapply]   import now: every matching file in the bucket (or one), through
                                  Dagster; --reapply applies versions that were already loaded again
    gsdp run CHAIN                run a job chain now (its members in order)
    gsdp test-run JOB --file F    dry run: read, prepare, map, look up, validate; preview and would-be
                                  rejects; nothing is written (F is a local path or an S3 key)
    gsdp activity [--job J] [--csv FILE]    every job run, newest first
    gsdp rejects JOB_RUN_ID [--out FILE] [--resend]   the error file of one job run (CSV); --resend: its
                                  rejected rows as sent, to fix and send again
    gsdp keys create --name N [--jobs a,b] | list | rotate ID | revoke ID   Bulk API access keys
    gsdp connections              the configured connections (type, system, environment)
    gsdp connections test NAME    authorize a REST API connection and make one call: system, environment,
                                  hosts, org/portal id, API usage (never a secret); exit 1 when it fails

Config from GSDP_CONFIG_DIR (default config/), warehouse from GSDP_WAREHOUSE, S3 from the
GSDP_S3_* / AWS_* variables, Dagster runs into DAGSTER_HOME when set (so the UI shows them).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from gs_assets.run_report import QUIET_CONSOLE
from gs_assets.run_report import report_run as _report_run

ACTIVITY_COLUMNS = ["job_run_id", "job", "connection", "destination", "source_file", "etag", "status", "started_at",
                    "ended_at", "rows_read", "inserted", "updated", "unchanged", "rejected", "filtered", "superseded",
                    "aggregated", "deleted", "deletes_applied", "defaulted", "retry_of", "error", "dagster_run_id"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="gsdp", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--config", help="config folder (default: $GSDP_CONFIG_DIR or config/)")
    ap.add_argument("--warehouse", help="DuckDB file (default: $GSDP_WAREHOUSE or data/warehouse.duckdb)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("validate", help="check the config")
    p = sub.add_parser("schema", help="JSON Schema of the config files")
    p.add_argument("--out")
    sub.add_parser("jobs", help="list jobs")
    p = sub.add_parser("run", help="import now")
    p.add_argument("job")
    p.add_argument("--file", help="one S3 key (default: every matching file in the bucket)")
    p.add_argument("--reapply", action="store_true", help=(
        "apply file versions that were already loaded again (also from the archive when the file has moved)"))
    p = sub.add_parser("test-run", help="dry run of one file; writes nothing")
    p.add_argument("job")
    p.add_argument("--file", required=True, help="local path or S3 key")
    p.add_argument("--rows", type=int, default=10, help="preview rows to show")
    p = sub.add_parser("activity", help="job runs, newest first")
    p.add_argument("--job")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--csv", help="write every matching run to this CSV file")
    p = sub.add_parser("keys", help="Bulk API access keys")
    ks = p.add_subparsers(dest="keys_cmd", required=True)
    k = ks.add_parser("create", help="a new key (shown once)")
    k.add_argument("--name", required=True, help="who or what uses it")
    k.add_argument("--jobs", help="comma-separated jobs it may upload to (default: every job)")
    ks.add_parser("list", help="keys (ids, names, jobs; never secrets)")
    k = ks.add_parser("rotate", help="a new secret for a key; the old one stops working")
    k.add_argument("key_id")
    k = ks.add_parser("revoke", help="switch a key off")
    k.add_argument("key_id")
    p = sub.add_parser("connections", help="list connections; `connections test NAME` tests one")
    p.add_argument("action", nargs="?", choices=["test"], help="test: authorize and make one call")
    p.add_argument("name", nargs="?", help="the connection to test")
    p = sub.add_parser("rejects", help="error file of a job run")
    p.add_argument("job_run_id")
    p.add_argument("--out", help="CSV path (default: stdout)")
    p.add_argument("--resend", action="store_true", help=(
        "write the rejected rows as the file was sent (its columns, values exactly as sent, no line numbers "
        "or reasons), to fix and send again; not neutralised for spreadsheets"))
    a = ap.parse_args(argv)
    if a.config:
        os.environ["GSDP_CONFIG_DIR"] = a.config
    if a.warehouse:
        os.environ["GSDP_WAREHOUSE"] = a.warehouse

    from gs_assets.validators.errors import ConfigError
    from gs_assets.settings import SettingsError
    try:
        return COMMANDS[a.cmd](a)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except SettingsError as e:
        print(f"settings error: {e}", file=sys.stderr)
        return 2
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


class UserError(Exception):
    """Wrong arguments or state; printed as one line, exit status 2."""


def _cfg():
    import gs_assets.connectors.registry  # noqa: F401 (the connector kinds register their config models)
    from gs_assets.config.loader import load_platform_config
    return load_platform_config()


def _job(cfg, name: str):
    if name not in cfg.jobs:
        raise UserError(f"unknown job {name!r}; jobs: {', '.join(sorted(cfg.jobs)) or '(none)'} (see `gsdp jobs`)")
    return cfg.jobs[name]


def _warehouse():
    from gs_assets.definitions import warehouse_from_env
    return warehouse_from_env()


def _read_warehouse():
    """The warehouse for read-only commands: no config, no definitions (a broken config does not
    stop `activity` or `rejects`), opened read-only; a clear error when the file is not there."""
    from resources.warehouse import Warehouse
    from gs_assets.settings import Settings
    path = Settings.from_env().warehouse
    if not Path(path).is_file():
        raise UserError(f"no warehouse at {path}: nothing has been loaded into it yet, or it is elsewhere "
                        f"(set GSDP_WAREHOUSE or --warehouse to the DuckDB file the loads write to)")
    return Warehouse(database=path)


def _without_file(error, source_file) -> str:
    """An error without its leading "<file>: " (the file is shown beside it)."""
    error = str(error or "")
    return error[len(source_file) + 2:] if source_file and error.startswith(f"{source_file}: ") else error


def _short(text, width: int = 70) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_validate(a) -> int:
    from gs_assets.config.loader import config_dir
    cfg = _cfg()
    custom = [o for o in cfg.model.objects.values() if o.custom]
    print(f"{config_dir()}: OK: {len(cfg.connections)} connection(s), {len(cfg.jobs)} job(s), "
          f"{len(cfg.model.objects)} object(s) ({len(custom)} custom)")
    return 0


def cmd_schema(a) -> int:
    import gs_assets.connectors.registry  # noqa: F401 (the connector kinds register their config models)
    from gs_assets.config.jobs import job_json_schema
    text = json.dumps(job_json_schema(), indent=2) + "\n"
    if a.out:
        Path(a.out).write_text(text)
        print(f"wrote {a.out}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_jobs(a) -> int:
    cfg = _cfg()
    def when(j) -> str:
        chain = cfg.chain_of(j.name)
        if chain is not None:
            return f"chain {chain.name} (step {chain.jobs.index(j.name) + 1} of {len(chain.jobs)})"
        if j.schedule:
            return f"{j.schedule.describe()} {j.schedule_timezone}"
        files = cfg.connections[j.connection].type == "s3"  # a sensor runs file jobs; API and SQL syncs run when asked
        return "on new files / on demand" if files else "on demand"

    rows = [(j.name, j.connection, f"{j.source.object} ({j.source.summary})" if j.source.summary else j.source.object,
             j.destination, j.operation.value,
             when(j)) for j in sorted(cfg.jobs.values(), key=lambda j: j.name)]
    _print_table(["job", "connection", "source", "destination", "operation", "runs"], rows)
    if cfg.chains:
        print()
        _print_table(["chain", "jobs, in order", "schedule", "on failure"], [
            (c.name, " -> ".join(c.jobs), f"{c.schedule.describe()} {c.schedule_timezone}" if c.schedule else "on demand",
             c.on_failure) for c in sorted(cfg.chains.values(), key=lambda c: c.name)])
    return 0


def cmd_activity(a) -> int:
    from gs_assets.engine import ledger
    wh = _read_warehouse()
    with wh.read() as con:
        if not ledger.job_runs_columns(con):
            print(f"no job runs yet in {wh.database}")
            return 0
        if a.csv:
            rows = ledger.activity(con, a.job or None)
            with open(a.csv, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(ACTIVITY_COLUMNS)
                w.writerows([getattr(r, c) for c in ACTIVITY_COLUMNS] for r in rows)
            print(f"wrote {len(rows)} job run(s) to {a.csv}")
            return 0
        rows = ledger.activity(con, a.job or None, limit=a.limit)
    shown = [(r.job_run_id[:8], r.job, os.path.basename(r.source_file or ""), r.status, str(r.started_at)[:19],
              r.rows_read, r.inserted, r.updated, r.unchanged, r.rejected, r.filtered, r.superseded, r.deleted, r.defaulted,
              (r.retry_of or "")[:8], f"gsdp rejects {r.job_run_id}" if r.rejected or r.status == "Failed" else "",
              _short(_without_file(r.error, r.source_file)))
             for r in rows]
    _print_table(["run", "job", "file", "status", "started", "read", "ins", "upd", "same", "rej", "filt", "sup",
                  "del", "dflt", "retry of", "rejects", "error (whole: --csv)"], shown)
    return 0


def cmd_rejects(a) -> int:
    """The error file of a job run. A run that failed before any row was checked (an unreadable
    file, a header lacking a mapped column, a systemic error) has no rejects: its error file is
    then the failure reason as its one row, the same file that is written beside a failed file in
    the error prefix (error_files.write_failure_file)."""
    from gs_assets.engine import ledger
    from gs_assets.engine.error_files import write_error_file, write_failure_file, write_resend_file
    try:
        wh = _read_warehouse()
    except UserError as e:
        raise UserError(f"no job run {a.job_run_id!r}: {e}") from None
    with wh.read() as con:
        run = ledger.runs_matching(con, a.job_run_id) if ledger.job_runs_columns(con) else []
        if not run:
            raise UserError(f"no job run {a.job_run_id!r}; see `gsdp activity`")
        if len(run) > 1:
            raise UserError(f"{a.job_run_id!r} matches {len(run)} job runs; give more of the id")
        found, ld = run[0]
        run_id, status = found.job_run_id, found.status
        header = (ld.header if ld else None) or []
        error = found.error if found.error is not None else (ld.error if ld else None)
        with tempfile.TemporaryDirectory() as tmp:
            path = a.out or os.path.join(tmp, "errors.csv")
            if a.resend:
                n, left_out = write_resend_file(con, run_id, header, path)
                if not a.out:
                    sys.stdout.write(Path(path).read_text(encoding="utf-8"))
                print(f"{n} rejected row(s) as sent{f' to {a.out}' if a.out else ''}"
                      + (f"; {left_out} row(s) that could not be parsed are left out (see the error file for "
                         f"their text)" if left_out else ""), file=sys.stderr)
                return 0
            n = write_error_file(con, run_id, header, path)
            failed_whole = n == 0 and status == "Failed"
            if failed_whole:
                write_failure_file(path, error or "the job run failed (no reason was recorded)")
            if not a.out:
                sys.stdout.write(Path(path).read_text(encoding="utf-8"))
            elif failed_whole:
                print(f"job run {run_id} failed before any row was checked; wrote its reason to {a.out}",
                      file=sys.stderr)
            else:
                print(f"wrote {n} rejected row(s) to {a.out}", file=sys.stderr)
    return 0


def cmd_run(a) -> int:
    """Import now: the same Dagster job the sensor would run, once per unit (file), in order."""
    from gs_assets.connectors.registry import kind_of_job
    from gs_assets.dagster_jobs import job_asset_job_name
    from gs_assets.definitions import build_definitions

    cfg = _cfg()
    if a.job in cfg.chains:
        return _run_chain(cfg, a.job)
    job = _job(cfg, a.job)
    defs = build_definitions(cfg)
    kind = kind_of_job(cfg, job)
    if a.file:
        keys = [a.file]
    else:  # every unit its source holds now (for files: those directly under the prefix, by name)
        with _kind_resources(kind) as resources:
            keys = kind.discover(cfg, job, resources)
    if not keys:
        print(f"{job.name}: {kind.nothing_to_load(cfg, job)}")
        return 0
    instance = _instance()
    from gs_assets.dynamic_partitions import add_partitions
    # a key another run just added is fine
    partitions = kind.partitions_name(job.connection, job.source.object)
    if partitions:  # dynamic partitions (files); None: the kind's partitions are fixed (time windows)
        add_partitions(instance, partitions, keys)
    dagster_job = defs.resolve_job_def(job_asset_job_name(job.name))
    failed = 0
    runs = []  # (key, run id, expected failure descriptions)
    for key in keys:
        res = dagster_job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False,
                                             run_config=QUIET_CONSOLE,
                                             tags={"gsdp/trigger": "cli",
                                                   **({"gsdp/reapply": "true"} if a.reapply else {})})
        runs.append((key, res.run_id, _report_run(instance, res)))
        failed += not res.success
    from gs_assets.engine import ledger
    run_ids = [r[1] for r in runs]
    with _warehouse().read() as con:
        rows = ledger.job_runs_of(con, run_ids, job=job.name)
        failures = ledger.failed_runs_of(con, job.name, run_ids)
    _print_table(["file", "status", "read", "ins", "upd", "same", "rej", "filt", "sup", "del", "error", "job run"],
                 [(os.path.basename(r.source_file), r.status, r.rows_read, r.inserted, r.updated, r.unchanged,
                   r.rejected, r.filtered, r.superseded, r.deleted, _short(_without_file(r.error or "", r.source_file), 80),
                   r.job_run_id) for r in rows])
    if not rows and not failed:
        with _warehouse().read() as con:
            notes = ledger.identical_loads(con, run_ids)
        for ld in notes:
            print(f"{os.path.basename(ld.source_file)}: {ld.note}")
        if notes:
            print("(`--reapply` applies them again)")
        print("no new loads: these file versions were already loaded")
    for key, run_id, expected in runs:
        mine = [f for f in failures if f.run.dagster_run_id == run_id]
        for f in mine:
            r, ld = f.run, f.load
            error = r.error if r.error is not None else (ld.error if ld and ld.error is not None else "")
            print(_failure_paragraph(job.name, r.source_file, r.job_run_id, error, r.rejected, r.destination,
                                     ld.archived_to if ld else None, ld.error_files if ld else None),
                  file=sys.stderr)
        if not mine:
            for description in expected:
                print(f"{key}: not loaded by job {job.name}: {description} (the Dagster run {run_id} shows it in "
                      f"the UI; `gsdp activity --job {job.name}` lists the job's runs)", file=sys.stderr)
    return 1 if failed or failures else 0






def _failure_paragraph(job: str, source_file: str, job_run_id: str, error: str, rejected, destination: str,
                       moved_to, error_files) -> str:
    """One paragraph for a file a job run failed on: why, that nothing was written, where the file
    went, how to see the reasons again."""
    name = os.path.basename(source_file or "") or source_file
    where = (f"The file was moved to {moved_to}" if moved_to and moved_to != source_file
             else f"The file stays at {source_file}")
    files = error_files or []
    if files:
        where += f"; error file: {', '.join(files)}"
    see = f"`gsdp rejects {job_run_id}`" + (" lists its rejected rows" if rejected else " repeats the reason")
    error = _without_file(error, source_file).strip().rstrip(".")
    return (f"{name}: Failed (job {job}, job run {job_run_id}): {error}. Nothing was written to gs.{destination}. "
            f"{where}. {see}; `gsdp activity --job {job}` lists the job's runs.")


def _kind_resources(kind):
    """A connector kind's resources outside a Dagster run (built from the environment, EnvVars resolved)."""
    import contextlib

    import dagster as dg

    @contextlib.contextmanager
    def opened():
        with dg.build_resources(kind.resources()) as res:
            yield {key: getattr(res, key) for key in kind.resource_keys}
    return opened()


def _instance():
    import dagster as dg
    from gs_assets.settings import Settings
    return dg.DagsterInstance.get() if Settings.from_env().dagster_home else dg.DagsterInstance.ephemeral()


def _run_chain(cfg, name: str) -> int:
    from gs_assets.dagster_jobs import chain_job_name
    from gs_assets.definitions import build_definitions
    chain = cfg.chains[name]
    instance = _instance()
    res = build_definitions(cfg).resolve_job_def(chain_job_name(chain.name)).execute_in_process(
        instance=instance, raise_on_error=False, tags={"gsdp/trigger": "cli"}, run_config=QUIET_CONSOLE)
    _report_run(instance, res)
    from gs_assets.engine import ledger
    with _warehouse().read() as con:
        rows = ledger.job_runs_of(con, [res.run_id])
    _print_table(["job", "file", "status", "read", "ins", "upd", "same", "rej", "filt", "sup", "del", "error"],
                 [(r.job, os.path.basename(r.source_file), r.status, r.rows_read, r.inserted, r.updated, r.unchanged,
                   r.rejected, r.filtered, r.superseded, r.deleted, (r.error or "")[:80]) for r in rows])
    if not res.success:
        failure = next((e for e in res.all_events if e.event_type_value == "STEP_FAILURE"), None)
        print(f"chain {name} failed: {failure.event_specific_data.error.message.strip() if failure else 'see the run'}",
              file=sys.stderr)
    return 0 if res.success else 1


def cmd_test_run(a) -> int:
    from gs_assets.connectors.kind import UnitNotFound
    from gs_assets.connectors.registry import kind_of_job
    cfg = _cfg()
    job = _job(cfg, a.job)
    kind = kind_of_job(cfg, job)
    if kind.dry_run is None:
        raise UserError(f"test-run is not offered for jobs on connections of type {kind.type!r} ({kind.description})")
    try:
        with _kind_resources(kind) as resources:
            out = kind.dry_run(_warehouse(), cfg, job, resources, a.file, preview_rows=a.rows)
    except UnitNotFound as e:
        raise UserError(str(e)) from None
    print(out.render())
    return 0 if out.ok else 1


def cmd_keys(a) -> int:
    from gs_assets.connectors.bulk_upload import access_keys as ak
    con = ak.connect()
    try:
        if a.keys_cmd == "create":
            jobs = [j.strip() for j in a.jobs.split(",") if j.strip()] if a.jobs else None
            if jobs:
                cfg = _cfg()
                for j in jobs:
                    _job(cfg, j)
            key, full = ak.create_key(con, a.name, jobs)
            print(f"created key {key.key_id} ({key.name}) for {', '.join(jobs) if jobs else 'every job'}:")
            print(full)
            print("store it now: it is not shown again (only its hash is kept). Send it as the accessKey header.",
                  file=sys.stderr)
        elif a.keys_cmd == "rotate":
            key, full = ak.rotate_key(con, a.key_id)
            print(f"rotated key {key.key_id} ({key.name}); the old secret no longer works:")
            print(full)
        elif a.keys_cmd == "revoke":
            key = ak.revoke_key(con, a.key_id)
            print(f"revoked key {key.key_id} ({key.name}) at {key.revoked_at}")
        else:
            _print_table(["key id", "name", "jobs", "created", "rotated", "revoked"],
                         [(k.key_id, k.name, ", ".join(k.jobs) if k.jobs else "(every job)", k.created_at,
                           k.rotated_at or "", k.revoked_at or "") for k in ak.list_keys(con)])
    except ak.AccessKeyError as e:
        raise UserError(str(e)) from None
    finally:
        con.close()
    return 0


def cmd_connections(a) -> int:
    """`gsdp connections`: the configured connections; `gsdp connections test NAME`: Connectors 2.0's
    "test connection" for a REST API connection (one paragraph and exit 1 when it fails)."""
    cfg = _cfg()
    if a.action is None:
        if a.name:
            raise UserError(f"`gsdp connections {a.name}`: to test a connection run `gsdp connections test {a.name}`")
        rows = []
        for name, conn in sorted(cfg.connections.items()):
            env = getattr(conn, "environment_name", None)
            domain = getattr(conn, "domain", None)
            rows.append((name, conn.type, getattr(conn, "system", None) or "",
                         (env or "") + (f" (domain {domain})" if domain else ""),
                         getattr(getattr(conn, "auth", None), "method", "") or ""))
        _print_table(["connection", "type", "system", "environment", "auth"], rows)
        return 0
    if not a.name:
        raise UserError("`gsdp connections test` needs the connection's name (see `gsdp connections`)")
    if a.name not in cfg.connections:
        raise UserError(f"unknown connection {a.name!r}; connections: {', '.join(sorted(cfg.connections)) or '(none)'} "
                        f"(see `gsdp connections`)")
    conn = cfg.connections[a.name]
    from gs_assets.connectors.registry import kind_of
    kind = kind_of(conn)
    if kind.test_connection is None:
        raise UserError(f"connection {a.name} is of type {conn.type}, which has no connection test: a {conn.type} "
                        f"connection is checked by its jobs' runs")
    t = kind.test_connection(cfg, a.name)
    if not t.ok:
        print(f"{t.summary} failed its test: {t.error}", file=sys.stderr)
        return 1
    print(f"connection {a.name}: OK")
    width = max(len(k) for k, _ in t.lines)
    for k, v in t.lines:
        print(f"  {k.ljust(width)}  {v}")
    return 0


def _print_table(header: list[str], rows: list[tuple]) -> None:
    cells = [[str(h) for h in header]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    buf = io.StringIO()
    for r in cells:
        buf.write("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() + "\n")
    sys.stdout.write(buf.getvalue())


COMMANDS = {"validate": cmd_validate, "schema": cmd_schema, "jobs": cmd_jobs, "run": cmd_run,
            "test-run": cmd_test_run, "activity": cmd_activity, "rejects": cmd_rejects, "keys": cmd_keys,
            "connections": cmd_connections}

if __name__ == "__main__":
    sys.exit(main())
