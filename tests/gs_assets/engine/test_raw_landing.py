"""Landing files as they came: malformed rows kept with lines, header problems stop the load."""

import pytest

from gs_assets.config.jobs import FileSource
from gs_assets.engine.raw_landing import FileFormatError, land_file, raw_rows_sql

import duckdb


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
