"""`gsdp` on expected failures: read-only commands (activity, rejects) work on the warehouse alone,
even with a broken config; a file that fails gives one clear paragraph (no Dagster stack trace) and
exit 1, while a bug still shows its stack trace; activity shows why a run failed; rejects of a run
that failed before any row was checked gives the reason as the error file's one row.

Runs `main([...])` in-process (as the installed `gsdp` does) and captures what it prints."""

import csv
import io
import os
from pathlib import Path

import dagster as dg
import pytest

from gs_assets.cli import main
from tests.conftest import write_config
from tests.gs_assets.test_cli import COMPANIES, JOBS

BAD = "Id,Nome,Stage,Status\nA1,Acme,Adopting,Active\n"  # 'Name' is mapped, the file has 'Nome'


@pytest.fixture
def cli(tmp_path, s3_server, bucket, monkeypatch, capfd):
    cfg = write_config(tmp_path / "config", JOBS % {"bucket": bucket})
    for k, v in {**s3_server.env(), "GSDP_CONFIG_DIR": str(cfg), "GSDP_WAREHOUSE": str(tmp_path / "wh.duckdb"),
                 "DAGSTER_HOME": str(tmp_path / "dagster_home")}.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    def run(*args):
        capfd.readouterr()
        rc = main(list(args))
        out, err = capfd.readouterr()
        return rc, out, err

    def put(key, body):
        s3_server.client().put_object(Bucket=bucket, Key=key, Body=body.encode())

    return {"run": run, "put": put, "cfg": cfg, "tmp": tmp_path, "s3": s3_server.client(), "bucket": bucket}


def _run_id(activity_out: str, status: str) -> str:
    line = next(ln for ln in activity_out.splitlines() if status in ln)
    return line.split()[0]


def test_activity_and_rejects_read_the_warehouse_alone_with_a_broken_config(cli):
    cli["put"]("in/companies_1.csv", COMPANIES)
    rc, out, err = cli["run"]("run", "companies")
    assert rc == 0, out + err
    (Path(cli["cfg"]) / "jobs.yaml").write_text("jobs: [this is: not a config\n")
    rc, out, err = cli["run"]("activity")
    assert rc == 0, err
    assert "companies" in out and "Partial Success" in out and "config" not in err
    rc, out, err = cli["run"]("rejects", _run_id(out, "Partial Success"))
    assert rc == 0, err
    assert [(r["line_number"], r["Id"]) for r in csv.DictReader(io.StringIO(out))] == [("3", "A2")]
    rc, _, err = cli["run"]("activity", "--csv", str(cli["tmp"] / "a.csv"))
    assert rc == 0 and (cli["tmp"] / "a.csv").exists(), err


def test_read_only_commands_without_a_warehouse_say_so_and_create_nothing(cli, monkeypatch):
    missing = cli["tmp"] / "nowhere" / "wh.duckdb"
    monkeypatch.setenv("GSDP_WAREHOUSE", str(missing))
    for args in (["activity"], ["rejects", "1234"]):
        rc, out, err = cli["run"](*args)
        assert rc == 2 and f"no warehouse at {missing}" in err and "GSDP_WAREHOUSE" in err, err
        assert "Traceback" not in err
    assert not missing.exists() and not missing.parent.exists()


def test_a_failed_file_is_one_paragraph_and_exit_1_and_activity_and_rejects_say_why(cli):
    cli["put"]("in/companies_1.csv", BAD)
    rc, out, err = cli["run"]("run", "companies")
    assert rc == 1
    text = out + err
    assert "Traceback" not in text and "Stack Trace" not in text and "dagster._core" not in text, text
    assert "STEP_FAILURE" not in text and "RUN_FAILURE" not in text
    assert "companies_1.csv" in err and "header lacks mapped column(s) ['Name']" in err
    assert f"s3://{cli['bucket']}/in/error/companies_1.csv" in err  # where the file went
    assert "gsdp rejects" in err
    assert len(err.strip().splitlines()) <= 6, err
    # The run is kept in the Dagster instance for the UI, with its failure.
    runs = dg.DagsterInstance.get().get_runs()
    assert [r.status for r in runs] == [dg.DagsterRunStatus.FAILURE]
    # activity shows the reason, shortened in the table and whole in --csv.
    rc, out, err = cli["run"]("activity")
    assert rc == 0 and "Failed" in out and "header lacks mapped column" in out
    run_id = _run_id(out, "Failed")
    rc, _, _ = cli["run"]("activity", "--csv", str(cli["tmp"] / "a.csv"))
    (row,) = list(csv.DictReader(open(cli["tmp"] / "a.csv", encoding="utf-8")))
    assert row["status"] == "Failed" and "header lacks mapped column(s) ['Name']" in row["error"]
    assert "Fix the file's header" in row["error"]
    # rejects of a run that failed before any row was checked: the reason is the one row.
    rc, out, err = cli["run"]("rejects", run_id)
    assert rc == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["line_number", "reasons"] and len(rows) == 2 and rows[1][0] == ""
    assert "header lacks mapped column(s) ['Name']" in rows[1][1]
    rc, _, err = cli["run"]("rejects", run_id, "--out", str(cli["tmp"] / "e.csv"))
    assert rc == 0 and "failed" in err and "header lacks" in (cli["tmp"] / "e.csv").read_text()


def test_a_bug_still_shows_its_stack_trace(cli, monkeypatch):
    import gs_assets.connectors.s3_files.assets as fs

    def broken(*_a, **_k):
        raise RuntimeError("a bug in landing")

    monkeypatch.setattr(fs, "land_s3_object", broken)
    cli["put"]("in/companies_1.csv", COMPANIES)
    rc, out, err = cli["run"]("run", "companies")
    assert rc == 1
    assert "RuntimeError: a bug in landing" in err and "s3_files/assets.py" in err, err


def test_a_job_run_failed_by_its_reject_threshold_is_reported_and_exits_1(cli):
    jobs = Path(cli["cfg"]) / "jobs.yaml"
    jobs.write_text(jobs.read_text().replace("    operation: upsert\n",
                                             "    operation: upsert\n    reject_threshold_percent: 10\n"))
    cli["put"]("in/companies_1.csv", COMPANIES)
    rc, out, err = cli["run"]("run", "companies")
    assert rc == 1 and "Failed" in out
    (para,) = [ln for ln in err.splitlines() if ln.strip()]
    assert para.startswith("companies_1.csv: Failed (job companies, job run ") and "lists its rejected rows" in para
    assert "Nothing was written to gs.company" in para and "Traceback" not in err
