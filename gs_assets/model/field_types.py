"""The field types of the matrix data model and how each is stored in the warehouse."""

from __future__ import annotations

from enum import Enum


class FieldType(str, Enum):
    STRING = "string"
    NUMBER = "number"
    CURRENCY = "currency"
    PERCENTAGE = "percentage"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    EMAIL = "email"
    URL = "url"
    DROPDOWN = "dropdown"
    MULTI_SELECT = "multi_select"
    GSID = "gsid"  # a lookup: holds the GSID of a record of another (or the same) object

    @property
    def is_numeric(self) -> bool:
        return self in (FieldType.NUMBER, FieldType.CURRENCY, FieldType.PERCENTAGE)

    @property
    def is_text(self) -> bool:
        return self in (
            FieldType.STRING,
            FieldType.EMAIL,
            FieldType.URL,
            FieldType.DROPDOWN,
            FieldType.MULTI_SELECT,
            FieldType.GSID,
        )


# Warehouse column types. Numbers are DOUBLE rounded to the field's decimal places on load.
DUCKDB_TYPES: dict[FieldType, str] = {
    FieldType.STRING: "VARCHAR",
    FieldType.NUMBER: "DOUBLE",
    FieldType.CURRENCY: "DOUBLE",
    FieldType.PERCENTAGE: "DOUBLE",
    FieldType.BOOLEAN: "BOOLEAN",
    FieldType.DATE: "DATE",
    FieldType.DATETIME: "TIMESTAMP",
    FieldType.EMAIL: "VARCHAR",
    FieldType.URL: "VARCHAR",
    FieldType.DROPDOWN: "VARCHAR",
    FieldType.MULTI_SELECT: "VARCHAR",
    FieldType.GSID: "VARCHAR",
}

DEFAULT_DECIMALS: dict[FieldType, int] = {
    FieldType.NUMBER: 2,
    FieldType.CURRENCY: 2,
    FieldType.PERCENTAGE: 2,
}

GSID_LENGTH = 36
MULTI_SELECT_SEPARATOR = ";"
