"""The `gsdp` command against a moto S3 server and a DuckDB warehouse file: the installed command run
as a user runs it (a subprocess) where that is the point, the rest through `gs_assets.cli.main` in
process (what the installed command calls), with the same environment, output and exit code."""

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import write_config

GSDP = Path(sys.executable).parent / "gsdp"

JOBS = """
connections:
  crm: {type: s3, bucket: %(bucket)s}
jobs:
  companies:
    connection: crm
    source: {object: companies, prefix: in/, file_name: "companies*.csv", archive_prefix: ""}
    destination: company
    operation: upsert
    identifiers: [external_id]
    prepare:
      derived:
        - {name: Clean Name, expression: "trim(\\"Name\\")"}
      filter: "coalesce(\\"Status\\", '') <> 'Deleted'"
    mappings:
      - {source: Id, target: external_id}
      - {source: Clean Name, target: name}
      - {source: Stage, target: stage}
chains:
  daily: {jobs: [companies], schedule: {every: day, at: "06:00"}}
"""

COMPANIES = "Id,Name,Stage,Status\nA1, Acme ,Adopting,Active\nA2,Beta,Onboarding,Active\nA3,Gone,Adopting,Deleted\n"


@pytest.fixture
def env(tmp_path, s3_server, bucket):
    cfg = write_config(tmp_path / "config", JOBS % {"bucket": bucket})
    e = {**os.environ, **s3_server.env(), "GSDP_CONFIG_DIR": str(cfg), "GSDP_WAREHOUSE": str(tmp_path / "wh.duckdb"),
         "DAGSTER_HOME": ""}
    e.pop("DAGSTER_HOME")
    return e


def gsdp(env, *args, ok=True, process=False):
    """`gsdp args` with environment `env`: the installed command in a subprocess (process=True), else
    gs_assets.cli.main in process under the same environment, its stdout, stderr and exit code."""
    if process:
        p = subprocess.run([str(GSDP), *args], env=env, capture_output=True, text=True, timeout=300)
    else:
        p = _in_process(env, list(args))
    if ok:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def _in_process(env, args):
    from gs_assets.cli import main
    saved = dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(args)
            except SystemExit as e:  # argparse, as the installed command exits
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(["gsdp", *args], rc or 0, out.getvalue(), err.getvalue())


def test_gsdp_is_installed():
    assert GSDP.exists(), "gsdp is installed by `uv sync` ([project.scripts])"


@pytest.mark.slow  # `gsdp validate` in subprocesses
def test_validate_and_config_errors_name_file_and_key(env, tmp_path):
    assert "OK: 1 connection(s), 1 job(s)" in gsdp(env, "validate", process=True).stdout  # the installed command
    bad = Path(env["GSDP_CONFIG_DIR"]) / "jobs.yaml"
    bad.write_text(bad.read_text().replace("trim(", "read_text("))
    p = gsdp(env, "validate", ok=False, process=True)
    assert p.returncode == 2
    assert "jobs.yaml" in p.stderr and "jobs.companies.prepare.derived[0].expression" in p.stderr
    assert "read_text" in p.stderr


def test_schema_and_jobs(env, tmp_path):
    schema = json.loads(gsdp(env, "schema").stdout)
    assert "jobs" in schema["properties"] and "Prepare" in schema["$defs"]
    out = gsdp(env, "jobs").stdout
    assert "companies" in out and "company" in out and "upsert" in out and "chain daily (step 1 of 1)" in out
    assert "every day at 06:00 UTC" in out


def test_test_run_shows_preview_and_rejects_and_writes_nothing(env, tmp_path):
    f = tmp_path / "companies.csv"
    f.write_text(COMPANIES)
    p = gsdp(env, "test-run", "companies", "--file", str(f), ok=False)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    assert "nothing was written" in out and "Partial Success" in out
    assert "read 3" in out and "would insert 1" in out and "reject 1" in out and "filter 1" in out
    assert "Acme" in out and "insert" in out
    assert "line 3: stage dropdown_value" in out
    con = duckdb.connect(env["GSDP_WAREHOUSE"], read_only=True)
    assert con.execute("SELECT count(*) FROM information_schema.tables").fetchone()[0] == 0  # not even a schema


def test_run_imports_now_then_activity_and_rejects(env, s3_server, bucket, tmp_path):
    s3_server.client().put_object(Bucket=bucket, Key="in/companies_1.csv", Body=COMPANIES.encode())
    out = gsdp(env, "run", "companies").stdout
    assert "companies_1.csv" in out and "Partial Success" in out
    assert gsdp(env, "run", "companies").stdout.strip().endswith("already loaded")
    act = gsdp(env, "activity").stdout
    assert "companies" in act and "Partial Success" in act and "gsdp rejects" in act
    run_id = act.split("gsdp rejects ")[1].split()[0]
    rows = list(csv.DictReader(io.StringIO(gsdp(env, "rejects", run_id[:12]).stdout)))
    assert [(r["line_number"], r["Id"], r["Stage"]) for r in rows] == [("3", "A2", "Onboarding")]
    assert "Onboarding" in rows[0]["reasons"]
    # The same rows as they were sent, to fix and send again: the file's columns only.
    again = gsdp(env, "rejects", run_id[:12], "--resend")
    header = COMPANIES.splitlines()[0].split(",")
    resend = list(csv.reader(io.StringIO(again.stdout)))
    assert resend[0] == header and len(resend) == 2 and resend[1][header.index("Stage")] == "Onboarding"
    assert "1 rejected row(s) as sent" in again.stderr
    # A dry run on a warehouse with data changes none of it.
    state = "SELECT (SELECT count(*) FROM gs.company), (SELECT max(modified_at) FROM gs.company), " \
            "(SELECT count(*) FROM gs_ops.loads), (SELECT count(*) FROM gs_ops.rejects), " \
            "(SELECT count(*) FROM gs_ops.job_runs), (SELECT count(*) FROM information_schema.tables)"
    with duckdb.connect(env["GSDP_WAREHOUSE"], read_only=True) as con:
        before = con.execute(state).fetchone()
    f = tmp_path / "update.csv"
    f.write_text("Id,Name,Stage,Status\nA1,Acme Renamed,Launched,Active\nA9,New,Launched,Active\n")
    out = gsdp(env, "test-run", "companies", "--file", str(f)).stdout
    assert "would insert 1   update 1" in out and "Acme Renamed" in out
    with duckdb.connect(env["GSDP_WAREHOUSE"], read_only=True) as con:
        assert con.execute(state).fetchone() == before
        assert con.execute("SELECT name FROM gs.company").fetchall() == [("Acme",)]
    gsdp(env, "activity", "--csv", str(tmp_path / "activity.csv"))
    log = list(csv.DictReader(open(tmp_path / "activity.csv")))
    assert [(r["job"], r["status"], r["rows_read"], r["inserted"], r["rejected"], r["filtered"], r["defaulted"],
             r["retry_of"]) for r in log] == [("companies", "Partial Success", "3", "1", "1", "1", "0", "")]
    assert "dflt" in act and "retry of" in act


def test_unknown_job_and_run_id_are_clear_errors(env):
    p = gsdp(env, "run", "nope", ok=False)
    assert p.returncode == 2 and "unknown job 'nope'" in p.stderr and "companies" in p.stderr
    p = gsdp(env, "rejects", "0000", ok=False)
    assert p.returncode == 2 and "no job run" in p.stderr


def test_shipped_json_schema_is_current():
    """config/gsdp-config.schema.json (for editors) is what `gsdp schema` prints today."""
    from gs_assets.config.jobs import job_json_schema
    shipped = json.loads((Path(__file__).resolve().parents[2] / "config" / "gsdp-config.schema.json").read_text())
    assert shipped == job_json_schema(), "run: .venv/bin/gsdp schema --out config/gsdp-config.schema.json"


def test_run_a_chain(env, s3_server, bucket):
    s3_server.client().put_object(Bucket=bucket, Key="in/companies_2.csv", Body=COMPANIES.encode())
    p = gsdp(env, "run", "daily")
    assert "companies_2.csv" in p.stdout and "Partial Success" in p.stdout
    with duckdb.connect(env["GSDP_WAREHOUSE"], read_only=True) as con:
        assert con.execute("SELECT external_id FROM gs.company").fetchall() == [("A1",)]


def test_example_configs_in_docs_are_valid():
    from gs_assets.config.loader import load_platform_config
    root = Path(__file__).resolve().parents[2] / "docs" / "examples"
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        cfg = load_platform_config(folder)
        assert cfg.jobs, folder
