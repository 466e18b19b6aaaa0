"""pandera schemas generated from object definitions; their failures become reject reasons.

Every mapped batch is validated lazily (all failures at once) before anything is written.
"""

from __future__ import annotations

import functools
import re

import pandas as pd
import pandera.pandas as pa

from gs_assets.model.field_types import GSID_LENGTH, MULTI_SELECT_SEPARATOR, FieldType
from gs_assets.model.objects import FieldDef, ObjectDef

EMAIL_RE = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
URL_RE = r"^(https?://)?([A-Za-z0-9-]+\.)+[A-Za-z]{2,}(:\d+)?(/\S*)?$"

PANDAS_DTYPES = {
    FieldType.NUMBER: "float64",
    FieldType.CURRENCY: "float64",
    FieldType.PERCENTAGE: "float64",
    FieldType.BOOLEAN: "boolean",
}


def _multi_select_check(values: list[str]) -> pa.Check:
    allowed = set(values)

    def ok(s: pd.Series) -> pd.Series:
        return s.map(lambda v: all(i in allowed for i in v.split(MULTI_SELECT_SEPARATOR)) if isinstance(v, str) else True)

    return pa.Check(ok, element_wise=False, name="multi_select_values",
                    error=f"every item must be one of {values}")


def column_for(f: FieldDef) -> pa.Column:
    checks: list[pa.Check] = []
    t = f.type
    if t == FieldType.EMAIL:
        checks.append(pa.Check.str_matches(EMAIL_RE, name="email_format", error="not a valid email address"))
    elif t == FieldType.URL:
        checks.append(pa.Check.str_matches(URL_RE, name="url_format", error="not a valid URL"))
    elif t == FieldType.DROPDOWN:
        checks.append(pa.Check.isin(f.values, name="dropdown_value", error=f"not one of {f.values}"))
    elif t == FieldType.MULTI_SELECT:
        checks.append(_multi_select_check(f.values))
    elif t == FieldType.GSID:
        checks.append(pa.Check.str_length(GSID_LENGTH, GSID_LENGTH, name="gsid_length", error="a GSID has 36 characters"))
    if t.is_text and t != FieldType.GSID and f.effective_max_length:
        checks.append(pa.Check.str_length(max_value=f.effective_max_length, name="max_length",
                                          error=f"longer than {f.effective_max_length} characters"))
    if f.min is not None:
        checks.append(pa.Check.ge(f.min, name="min_value", error=f"less than {f.min:g}"))
    if f.max is not None:
        checks.append(pa.Check.le(f.max, name="max_value", error=f"greater than {f.max:g}"))
    return pa.Column(PANDAS_DTYPES.get(t), checks=checks, nullable=not f.required, required=False,
                     title=f.label, description=f"{t.value}{' (required)' if f.required else ''}")


@functools.lru_cache(maxsize=256)
def _schema_cached(obj_json: str) -> pa.DataFrameSchema:
    obj = ObjectDef.model_validate_json(obj_json)
    return pa.DataFrameSchema(
        {f.name: column_for(f) for f in obj.data_fields},
        name=obj.name,
        strict=False,
        coerce=False,
    )


def schema_for(obj: ObjectDef) -> pa.DataFrameSchema:
    """The pandera schema of an object's data fields (system fields are set by the engine)."""
    return _schema_cached(obj.model_dump_json())


RULE_NAMES = {"not_nullable": "required", "dtype": "type"}


def validation_failures(obj: ObjectDef, frame: pd.DataFrame, fields: list[str]) -> pd.DataFrame:
    """Validate `frame` (index = row id) on the mapped `fields`; one row per (row id, field, rule)."""
    schema = schema_for(obj)
    schema = schema.select_columns([c for c in fields if c in schema.columns])
    cols = [c for c in fields if c in schema.columns]
    frame = frame[cols].copy()
    for c in cols:
        t = obj.fields[c].type
        if t == FieldType.BOOLEAN:
            frame[c] = frame[c].astype("boolean")
        elif t.is_numeric:
            frame[c] = frame[c].astype("float64")
    empty = pd.DataFrame({"row_id": pd.Series(dtype="int64"), "field": pd.Series(dtype="str"),
                          "rule": pd.Series(dtype="str"), "value": pd.Series(dtype="str"),
                          "message": pd.Series(dtype="str")})
    try:
        schema.validate(frame, lazy=True)
        return empty
    except pa.errors.SchemaErrors as err:
        fc = err.failure_cases
    rows = []
    for rec in fc.to_dict("records"):
        idx = rec.get("index")
        col = rec.get("column")
        check = str(rec.get("check"))
        if idx is None or (isinstance(idx, float) and pd.isna(idx)):
            raise RuntimeError(f"schema failure not tied to a row on {obj.name}.{col}: {check} {rec.get('failure_case')}")
        name = re.sub(r"\(.*$", "", check)
        rule = RULE_NAMES.get(name, name)
        f = obj.fields.get(col)
        if rule == "required":
            msg = "required field is empty"
        else:
            rule, msg = _rule_and_message(f, name, check)
        val = rec.get("failure_case")
        rows.append({"row_id": int(idx), "field": col, "rule": rule,
                     "value": None if val is None or (not isinstance(val, str) and pd.isna(val)) else str(val),
                     "message": msg})
    return pd.DataFrame(rows) if rows else empty


def _rule_and_message(f: FieldDef | None, name: str, check: str) -> tuple[str, str]:
    """pandera reports a check by its error text when it has one; give back (rule name, message)."""
    if f is not None:
        for c in column_for(f).checks:
            if check in (c.error, c.name) or name == c.name:
                return c.name, c.error or check
    return name, check
