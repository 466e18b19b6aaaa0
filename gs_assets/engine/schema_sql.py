"""Run an object's pandera schema inside DuckDB: its checks compiled to SQL predicates.

The pandera schema (schema_checks.schema_for) stays the single statement of what a valid record
is. Its built-in checks (nullable, isin, str_matches, str_length, ge, le) are compiled here to SQL
so a batch of millions of rows is validated in one vectorised scan, not in pandas; checks that
have no SQL form (custom functions) run through pandera itself, in bounded chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pandera.pandas as pa

from gs_assets.engine.sql_convert import ident, q


@dataclass(frozen=True)
class CompiledCheck:
    column: str
    rule: str
    fails: str  # SQL that is true when a non-null value breaks the check
    message: str
    value: str  # SQL for the offending value as text


def _check_sql(col: str, check: pa.Check) -> Optional[str]:
    fn = getattr(getattr(check, "_check_fn", None), "__name__", "")
    st = check.statistics or {}
    c = ident(col)
    if fn == "isin":
        return f"{c} NOT IN ({', '.join(q(v) for v in st['allowed_values'])})"
    if fn == "str_matches":
        return f"NOT regexp_full_match({c}, {q(st['pattern'])})"
    if fn == "str_length":
        parts = []
        if st.get("exact_value") is not None:
            parts.append(f"length({c}) <> {int(st['exact_value'])}")
        if st.get("min_value") is not None:
            parts.append(f"length({c}) < {int(st['min_value'])}")
        if st.get("max_value") is not None:
            parts.append(f"length({c}) > {int(st['max_value'])}")
        return " OR ".join(parts) or None
    if fn == "greater_than_or_equal_to":
        return f"{c} < {float(st['min_value'])!r}"
    if fn == "less_than_or_equal_to":
        return f"{c} > {float(st['max_value'])!r}"
    return None


def compile_schema(schema: pa.DataFrameSchema, columns: list[str]) -> tuple[list[CompiledCheck], list[str]]:
    """SQL checks for `columns`, and the columns with checks that must run in pandera."""
    out: list[CompiledCheck] = []
    fallback: list[str] = []
    for name in columns:
        col = schema.columns.get(name)
        if col is None:
            continue
        c = ident(name)
        if not col.nullable:
            out.append(CompiledCheck(name, "required", f"{c} IS NULL", "required field is empty", "NULL"))
        for check in col.checks:
            sql = _check_sql(name, check)
            if sql is None:
                if name not in fallback:
                    fallback.append(name)
                continue
            out.append(CompiledCheck(name, check.name or "check", f"({c} IS NOT NULL AND ({sql}))",
                                     check.error or str(check), f"CAST({c} AS VARCHAR)"))
    return out, fallback


def failures_select(checks: list[CompiledCheck], table: str, where: str = "true", rid: str = "_rid") -> str:
    """One scan of `table` yielding (rid, field, rule, value, message) for every failed check."""
    items = ", ".join(
        f"CASE WHEN {ch.fails} THEN {{'field': {q(ch.column)}, 'rule': {q(ch.rule)}, "
        f"'value': left({ch.value}, 1000), 'message': {q(ch.message)}}} END"
        for ch in checks)
    return (f"SELECT rid, r.field, r.rule, r.value, r.message FROM ("
            f"SELECT {rid} AS rid, unnest(list_filter([{items}], lambda x: x IS NOT NULL)) AS r "
            f"FROM {table} WHERE {where})")
