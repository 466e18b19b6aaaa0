"""Landing files as they came: malformed rows kept with lines, header problems stop the load."""

import pytest

from gs_assets.connectors.s3_files.config import FileSource
from gs_assets.engine.raw_landing import FileFormatError, land_file, raw_rows_sql

import duckdb

from tests.config_builder import config_yaml, file_job


def land(tmp_path, text: str, required=("a",), **src):
    p = tmp_path / "f.csv"
    p.write_bytes(text.encode(src.pop("encoding_bytes", "utf-8")))
    con = duckdb.connect()
    lf = land_file(con, path=str(p), file_label="f.csv", connection="c", source_object="o",
                   src=FileSource(object="o", **src), required_columns=list(required), jobs=["j"])
    rows = f'SELECT _line, _parse_error IS NOT NULL, _raw_text, "a" FROM {raw_rows_sql(con, lf.raw_table, lf.load_id)} ORDER BY _line'
    return lf, con.execute(rows).fetchall()


def test_rows_keep_their_line_numbers_and_malformed_rows_are_kept(tmp_path):
    lf, rows = land(tmp_path, 'a,b,c\n1,2,3\n4,5\n"multi\nline",7,8\n9,10,11,12\n13,14,15\n')
    assert (lf.rows_read, lf.malformed_rows) == (5, 2)
    assert rows == [(2, False, None, "1"), (3, True, "4,5", None), (4, False, None, "multi\nline"),
                    (5, True, "9,10,11,12", None), (6, False, None, "13")]


def test_quoted_delimiters_quotes_and_crlf(tmp_path):
    _, rows = land(tmp_path, 'a,b\r\n"x, ""y""",2\r\n')
    assert rows == [(2, False, None, 'x, "y"')]


def test_tab_and_pipe_delimiters(tmp_path):
    _, rows = land(tmp_path, "a\tb\nv\tw\n", delimiter="tab")
    assert rows[0][3] == "v"
    _, rows = land(tmp_path, "a|b\nv|w\n", delimiter="pipe")
    assert rows[0][3] == "v"


def test_bom_is_not_part_of_the_first_column_name(tmp_path):
    lf, rows = land(tmp_path, "\ufeffa,b\n1,2\n")
    assert lf.header == ["a", "b"] and rows[0][3] == "1"


@pytest.mark.parametrize("text,message", [
    ("", "the file is empty"),
    ("a,,c\n1,2,3\n", "blank column name"),
    ("a,b,A\n1,2,3\n", "duplicate column 'A' (same as 'a' ignoring case)"),
    ("x,y\n1,2\n", "header lacks mapped column(s) ['a']"),
])
def test_header_problems_are_clear_errors(tmp_path, text, message):
    with pytest.raises(FileFormatError, match=None) as e:
        land(tmp_path, text)
    assert message in str(e.value) and "f.csv" in str(e.value)


def test_header_only_file_lands_no_rows(tmp_path):
    lf, rows = land(tmp_path, "a,b\n")
    assert lf.rows_read == 0 and rows == []


def test_header_is_case_sensitive_for_mapped_columns(tmp_path):
    with pytest.raises(FileFormatError, match="header lacks mapped column"):
        land(tmp_path, "A,b\n1,2\n", required=("a",))




def test_each_load_has_its_own_table_and_lines_survive_commit_and_reopen(tmp_path):
    """Lines of good records come from rowids: they must hold after the landing transaction
    commits and the warehouse file is opened again, with and without malformed records."""
    db = str(tmp_path / "wh.duckdb")
    files = {"clean": "a,b\n1,2\n3,4\n5,6\n", "ragged": 'a,b\n1,2\n3\n"x\ny",4\n5,6,7\n8,9\n'}
    landed = {}
    con = duckdb.connect(db)
    for name, text in files.items():
        p = tmp_path / f"{name}.csv"
        p.write_text(text)
        con.execute("BEGIN")
        landed[name] = land_file(con, path=str(p), file_label=p.name, connection="c", source_object="o",
                                 src=FileSource(object="o"), required_columns=["a"], jobs=["j"])
        con.execute("COMMIT")
    con.close()
    assert landed["clean"].raw_table != landed["ragged"].raw_table
    con = duckdb.connect(db)
    lines = {n: con.execute(f'SELECT _line, "a", _parse_error IS NOT NULL FROM {raw_rows_sql(con, lf.raw_table, lf.load_id)} '
                            f"ORDER BY _line").fetchall() for n, lf in landed.items()}
    assert lines["clean"] == [(2, "1", False), (3, "3", False), (4, "5", False)]
    assert lines["ragged"] == [(2, "1", False), (3, None, True), (4, "x\ny", False), (5, None, True), (6, "8", False)]


def test_a_malformed_row_states_its_real_field_count(tmp_path):
    text = 'a,b,c,d,e,f,g\n1,2,3,4,5,6,7\n1,2,3,4,5,6,7,8,9\n1,2\n"x,y",2,3,4,5,6,7,"8\n8"\n' + "1," * 9000 + "1\n"
    p = tmp_path / "f.csv"
    p.write_text(text)
    con = duckdb.connect()
    lf = land_file(con, path=str(p), file_label="f.csv", connection="c", source_object="o",
                   src=FileSource(object="o"), required_columns=["a"], jobs=["j"])
    errors = dict(con.execute(f"SELECT _line, _parse_error FROM {raw_rows_sql(con, lf.raw_table, lf.load_id)} "
                              f"WHERE _parse_error IS NOT NULL ORDER BY _line").fetchall())
    assert errors == {3: "row has 9 fields, the header has 7", 4: "row has 2 fields, the header has 7",
                      5: "row has 8 fields, the header has 7", 6: "row has 9001 fields, the header has 7"}


JOB = config_yaml("test-bucket", {"companies": file_job(
    "companies", "company", ["external_id"], {"Id": "external_id", "Name": "name", "Employees": "employees"},
    operation="upsert")})


@pytest.mark.parametrize("quoted", [False, True])
def test_a_record_over_the_record_size_limit_is_rejected_at_its_line_and_later_lines_stay_exact(harness, quoted):
    h = harness(JOB)
    big = "x" * (70 << 20)
    text = ("Id,Name,Employees\nA1,One,1\nA2," + (f'"{big}"' if quoted else big) + ",2\nA3,Three,3\n"
            "A4,Short\nA5,Five,many\nA6,Six,6\n")
    landed, run = h.load("companies", text)
    del big, text
    assert (landed.rows_read, landed.malformed_rows) == (6, 2)
    assert run.rejected == 3 and run.inserted == 3
    rejects = {line: [(r["rule"], r["message"]) for r in reasons] for line, reasons in h.rejects(run.job_run_id)}
    assert sorted(rejects) == [3, 5, 6]
    ((rule, message),) = rejects[3]
    assert rule == "malformed_row" and "record is 70 MiB, over the 16 MiB limit of one record" in message
    assert rejects[5] == [("malformed_row", "row could not be parsed: row has 2 fields, the header has 3")]
    assert rejects[6][0][0] != "malformed_row"
    (raw,) = h.rows(f"SELECT original_values FROM gs_ops.rejects WHERE job_run_id = '{run.job_run_id}' AND line_number = 3")[0]
    assert len(raw) < 2000, "the reject keeps the record's start, not 70 MiB"
    assert h.rows("SELECT external_id FROM gs.company ORDER BY 1") == [("A1",), ("A3",), ("A6",)]


def prepared_land(tmp_path, data: bytes, **src):
    from gs_assets.connectors.s3_files.reader import prepared_copy
    source = FileSource(object="o", **src)
    con = duckdb.connect()
    with prepared_copy([data], name="f.csv", label="f.csv", src=source) as path:
        lf = land_file(con, path=path, file_label="f.csv", connection="c", source_object="o", src=source,
                       required_columns=["Id"], jobs=["j"])
    return lf, con.execute(f'SELECT _line, "Id", _parse_error, left(_raw_text, 20) FROM '
                           f"{raw_rows_sql(con, lf.raw_table, lf.load_id)} ORDER BY _line").fetchall()


def test_long_records_in_tab_separated_crlf_files_and_inside_multi_line_quoted_values(tmp_path):
    big = b"y" * (17 << 20)
    lf, rows = prepared_land(tmp_path, b"Id\tName\r\nA1\tOne\r\nA2\t" + big + b"\r\nA3\tThree\r\nA4\r\n", delimiter="tab")
    assert (lf.rows_read, lf.malformed_rows) == (4, 2)
    assert rows == [(2, "A1", None, None), (3, None, "record is 17 MiB, over the 16 MiB limit of one record", "A2\tyyyyyyyyyyyyyyyyy"),
                    (4, "A3", None, None), (5, None, "row has 1 field, the header has 2", "A4")]
    lf, rows = prepared_land(tmp_path, b'Id,Name\nA1,One\nA2,"first line\n' + big + b'\nlast line"\nA3,Three\nA4\n')
    assert (lf.rows_read, lf.malformed_rows) == (4, 2)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (2, "A1", None), (3, None, "record is 17 MiB, over the 16 MiB limit of one record"), (4, "A3", None),
        (5, None, "row has 1 field, the header has 2")]
