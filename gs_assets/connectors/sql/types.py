"""Which source column types may fill which matrix field types.

A column's category (systems/base.py) decides what it may fill; a value that does not convert
(text `abc` into a number) is a reject with its key and column, like any source. A category that
cannot fill the field at all (binary into a string, an array into a number) is a config error the
sync reports before it lands anything.
"""

from __future__ import annotations

from gs_assets.connectors.sql.systems.base import (BINARY, BOOLEAN, DATE, DATETIME, DATETIME_TZ, DECIMAL, FLOAT,
                                                   INTEGER, JSON, OTHER, TEXT)
from gs_assets.model.field_types import FieldType

_TEXTUAL = {TEXT, INTEGER, DECIMAL, FLOAT, BOOLEAN, DATE, DATETIME, DATETIME_TZ, JSON}
_NUMERIC = {INTEGER, DECIMAL, FLOAT, TEXT}
FILLS: dict[FieldType, set[str]] = {
    FieldType.STRING: _TEXTUAL,
    FieldType.EMAIL: {TEXT},
    FieldType.URL: {TEXT},
    FieldType.DROPDOWN: {TEXT, INTEGER, BOOLEAN},
    FieldType.MULTI_SELECT: {TEXT},  # items separated by ';' (a JSON array lands as JSON text: cast it in a query)
    FieldType.GSID: {TEXT},
    FieldType.NUMBER: _NUMERIC,
    FieldType.CURRENCY: _NUMERIC,
    FieldType.PERCENTAGE: _NUMERIC,
    FieldType.BOOLEAN: {BOOLEAN, INTEGER, TEXT},
    FieldType.DATE: {DATE, DATETIME, DATETIME_TZ, TEXT},
    FieldType.DATETIME: {DATETIME, DATETIME_TZ, DATE, TEXT},
}
UNSUPPORTED = {BINARY, OTHER}  # never landed: binary data, arrays, spatial and unknown types


def fits(category: str, field_type: FieldType) -> bool:
    return category in FILLS.get(field_type, _TEXTUAL)
