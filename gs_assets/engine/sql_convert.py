"""Type conversion from source text to each field type, as DuckDB SQL expressions.

Conversion runs vectorised inside DuckDB. For every mapped field the engine gets two
expressions: the converted value, and a test that is true when a non-empty source value could
not be converted (that row is rejected with the value and the reason, unless a default applies).
"""

from __future__ import annotations

from typing import Any, Optional, Protocol

from gs_assets.model.field_types import MULTI_SELECT_SEPARATOR, FieldType
from gs_assets.model.objects import FieldDef

class ValueFormats(Protocol):
    """The date and datetime formats a source's text values are read with (its source config gives them)."""
    date_formats: list[str]
    datetime_formats: list[str]


TRUE_WORDS = ("true", "t", "yes", "y", "1")
FALSE_WORDS = ("false", "f", "no", "n", "0")


def q(v: str) -> str:
    """SQL string literal."""
    return "'" + str(v).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _list(values) -> str:
    return "[" + ", ".join(q(v) for v in values) + "]"


def _canonical_choice(expr: str, values: list[str], strict: bool = False) -> str:
    """Match a picklist item case-insensitively and write it as defined. Unknown items pass through
    unchanged so validation can reject them with the value the user sent; when `strict` (a default
    value is configured) they become NULL so the default applies."""
    cases = " ".join(f"WHEN {q(v.lower())} THEN {q(v)}" for v in values)
    return f"(CASE lower({expr}) {cases} ELSE {'NULL' if strict else expr} END)"


def convert_expr(clean: str, f: FieldDef, src: ValueFormats, strict: bool = False) -> str:
    """SQL turning `clean` (trimmed text, NULL when empty) into the field's type; NULL if it cannot.

    `strict` also turns values outside a picklist into NULL (used when a default is configured)."""
    t = f.type
    if t in (FieldType.STRING, FieldType.URL, FieldType.GSID):
        return clean
    if t == FieldType.EMAIL:
        return f"lower({clean})"
    if t.is_numeric:
        # Accept thousands separators, currency symbols and a trailing percent sign.
        strip = "[,\\s$€£¥]" if t == FieldType.CURRENCY else ("[,\\s%]" if t == FieldType.PERCENTAGE else "[,\\s]")
        # Plain numbers cast directly; only values that do not take the regex clean-up.
        num = f"COALESCE(TRY_CAST({clean} AS DOUBLE), TRY_CAST(regexp_replace({clean}, {q(strip)}, '', 'g') AS DOUBLE))"
        num = f"(CASE WHEN isfinite({num}) THEN {num} END)"
        d = f.effective_decimals
        return f"round({num}, {d})" if d is not None else num
    if t == FieldType.BOOLEAN:
        return (f"(CASE WHEN lower({clean}) IN ({', '.join(q(w) for w in TRUE_WORDS)}) THEN true "
                f"WHEN lower({clean}) IN ({', '.join(q(w) for w in FALSE_WORDS)}) THEN false END)")
    if t == FieldType.DATE:
        return (f"COALESCE(TRY_CAST({clean} AS DATE), "
                f"TRY_CAST(try_strptime({clean}, {_list(src.date_formats)}) AS DATE))")
    if t == FieldType.DATETIME:
        return (f"COALESCE(try_strptime({clean}, {_list(src.datetime_formats)}), "
                f"TRY_CAST(TRY_CAST({clean} AS TIMESTAMPTZ) AS TIMESTAMP), "
                f"TRY_CAST(try_strptime({clean}, {_list(src.date_formats)}) AS TIMESTAMP))")
    if t == FieldType.DROPDOWN:
        return _canonical_choice(clean, f.values, strict)
    if t == FieldType.MULTI_SELECT:
        # Items are stored once each, in the picklist's order; unknown items follow (for validation).
        items = f"list_filter(list_transform(string_split({clean}, {q(MULTI_SELECT_SEPARATOR)}), lambda x: trim(x)), lambda x: x <> '')"
        canon = f"list_transform({items}, lambda x: {_canonical_choice('x', f.values)})"
        allowed = "[" + ", ".join(q(v) for v in f.values) + "]"
        known = f"list_filter({allowed}, lambda v: list_contains({canon}, v))"
        unknown = f"list_sort(list_distinct(list_filter({canon}, lambda x: NOT list_contains({allowed}, x))))"
        joined = f"array_to_string(list_concat({known}, {unknown}), {q(MULTI_SELECT_SEPARATOR)})"
        if strict:
            return f"(CASE WHEN len({unknown}) = 0 THEN {joined} END)"
        return joined
    raise AssertionError(f"no conversion for {t}")


def literal_expr(value: Any, f: FieldDef, src: ValueFormats) -> str:
    """A constant or default from config, converted like a source value."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return convert_expr(f"NULLIF(trim({q(str(value))}), '')", f, src)


def clean_expr(column: str) -> str:
    return f"NULLIF(trim({ident(column)}), '')"


def type_error_message(f: FieldDef, src: ValueFormats) -> str:
    t = f.type
    if t == FieldType.DATE:
        return f"not a date in any of the formats {src.date_formats} or ISO 8601"
    if t == FieldType.DATETIME:
        return f"not a datetime in any of the formats {src.datetime_formats} or ISO 8601"
    if t == FieldType.BOOLEAN:
        return f"not a boolean; use one of {list(TRUE_WORDS)} or {list(FALSE_WORDS)}"
    if t.is_numeric:
        return f"not a {t.value}"
    return f"not a valid {t.value}"


def mapped_value(f: FieldDef, src: ValueFormats, source: Optional[str], constant: Any, default: Any,
                 clean: Optional[str] = None) -> tuple[str, Optional[str]]:
    """(value expression, conversion-failed test or None) for one field mapping.

    `clean` overrides the cleaned source expression (for values taken from the file, not a column)."""
    if constant is not None:
        return literal_expr(constant, f, src), None
    dflt = literal_expr(default, f, src) if default is not None else None
    if source is None:
        return dflt or "NULL", None
    clean = clean or clean_expr(source)
    conv = convert_expr(clean, f, src, strict=dflt is not None)
    value = f"COALESCE({conv}, {dflt})" if dflt else conv
    failed = None if dflt else f"({clean} IS NOT NULL AND {conv} IS NULL)"
    return value, failed


def defaulted_expr(f: FieldDef, src: ValueFormats, source: Optional[str], constant: Any, default: Any,
                   clean: Optional[str] = None) -> Optional[str]:
    """For a mapping whose `default` can replace its source value: SQL that is NULL when the value
    was kept, '' when the default replaced an empty (missing) value, and the value as sent (trimmed)
    when the default replaced a value that did not convert (invalid). None: the mapping has no
    source value to replace (no default, a constant, or only a default)."""
    if constant is not None or default is None or source is None:
        return None
    clean = clean or clean_expr(source)
    return f"(CASE WHEN {convert_expr(clean, f, src, strict=True)} IS NULL THEN coalesce({clean}, '') END)"
