"""Type conversion per field type, run in DuckDB exactly as the engine runs it."""

import datetime as dt

import duckdb
import pytest

from gs_assets.connectors.s3_files.config import FileSource
from gs_assets.engine.sql_convert import convert_expr, mapped_value, q
from gs_assets.model.field_types import FieldType
from gs_assets.model.objects import FieldDef

SRC = FileSource(object="x")


def conv(ftype: str, value, **kw):
    f = FieldDef(type=FieldType(ftype), **kw)
    lit = "NULL" if value is None else q(value)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    expr = convert_expr(f"NULLIF(trim({lit}), '')", f, SRC)
    return con.execute(f"SELECT {expr}").fetchone()[0]


@pytest.mark.parametrize("ftype,value,expected", [
    ("string", "  hello ", "hello"),
    ("number", "1,234.567", 1234.57),
    ("number", "-3", -3.0),
    ("number", "abc", None),
    ("number", "NaN", None),
    ("currency", "$1,200.50", 1200.5),
    ("percentage", "45.5%", 45.5),
    ("boolean", "Yes", True),
    ("boolean", "0", False),
    ("boolean", "maybe", None),
    ("date", "2025-01-31", dt.date(2025, 1, 31)),
    ("date", "01/31/2025", dt.date(2025, 1, 31)),
    ("date", "2025-13-01", None),
    ("datetime", "2025-01-31 10:11:12", dt.datetime(2025, 1, 31, 10, 11, 12)),
    ("datetime", "2025-01-31T10:11:12+02:00", dt.datetime(2025, 1, 31, 8, 11, 12)),
    ("datetime", "yesterday", None),
    ("email", "Ann@Example.COM", "ann@example.com"),
    ("url", "https://x.io", "https://x.io"),
    ("string", "", None),
    ("number", None, None),
])
def test_conversion_per_type(ftype, value, expected):
    assert conv(ftype, value) == expected


def test_decimals_round_to_the_field_definition():
    assert conv("number", "2.71828", decimals=3) == 2.718
    assert conv("number", "2.5", decimals=0) == 3.0  # half away from zero


def test_dropdown_matches_case_insensitively_and_keeps_unknown_values_for_validation():
    assert conv("dropdown", "active", values=["Active", "Inactive"]) == "Active"
    assert conv("dropdown", "Bogus", values=["Active", "Inactive"]) == "Bogus"


def test_multi_select_canonicalises_each_item():
    assert conv("multi_select", "red; GREEN ;red", values=["Red", "Green", "Blue"]) == "Red;Green"


def test_default_applies_when_the_value_is_missing_or_invalid():
    f = FieldDef(type=FieldType.DROPDOWN, values=["Active", "Inactive"])
    con = duckdb.connect()
    value, failed = mapped_value(f, SRC, "s", None, "Active")
    assert failed is None
    rows = con.execute(f"SELECT {value} FROM (VALUES ('inactive'), ('Bogus'), (NULL)) t(s)").fetchall()
    assert [r[0] for r in rows] == ["Inactive", "Active", "Active"]
