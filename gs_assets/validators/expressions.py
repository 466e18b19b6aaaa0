"""Formula expressions in job config (filters, derived fields), checked to be pure expressions.

Users write DuckDB SQL expressions (`lower("Name")`, `TRY_CAST("Minutes" AS DOUBLE) * 60`,
`"Status" IN ('Active', 'Trial') AND "Date" >= today() - INTERVAL 30 DAY`). An expression is
spliced into the engine's SQL, so it must be nothing more than an expression: DuckDB's own
parser turns `SELECT <expr>` into a syntax tree (`json_serialize_sql`), and every node must be a
constant, a column, an operator, CASE, CAST or a call of an allowed scalar function. Subqueries,
table functions (`read_csv`, ...), `*`, window functions, aggregates and anything that reads
files or the network are refused when the config loads, naming the file and key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

import duckdb

ALLOWED_CLASSES = {"CONSTANT", "COLUMN_REF", "FUNCTION", "OPERATOR", "COMPARISON", "CONJUNCTION", "CASE",
                   "CAST", "BETWEEN", "TYPE"}
TYPES = {"varchar", "text", "string", "double", "float", "real", "decimal", "numeric", "bigint", "integer", "int",
         "smallint", "hugeint", "boolean", "bool", "date", "timestamp", "time", "interval", "uuid"}
OPERATORS = {"+", "-", "*", "/", "//", "%", "**", "^", "||", "~~", "!~~", "~~*", "!~~*", "~~~", "@", "&", "|",
             "<<", ">>", "xor"}
# Scalar functions by family. Anything not listed is refused (add here, with a test, to allow more).
FUNCTIONS = OPERATORS | {
    # strings
    "lower", "upper", "trim", "ltrim", "rtrim", "concat", "concat_ws", "substr", "substring", "left", "right",
    "length", "strlen", "replace", "reverse", "lpad", "rpad", "repeat", "split_part", "contains", "starts_with",
    "ends_with", "prefix", "suffix", "instr", "strpos", "position", "regexp_matches", "regexp_replace",
    "regexp_extract", "like_escape", "ilike_escape", "format", "printf", "md5", "nullif", "coalesce",
    "ifnull", "if", "greatest", "least", "string_split", "array_extract", "list_extract", "list_contains",
    # numbers
    "abs", "round", "floor", "ceil", "ceiling", "trunc", "sign", "sqrt", "pow", "power", "ln", "log", "log10",
    "log2", "exp", "mod", "isnan", "isfinite", "try_cast",
    # dates and times
    "today", "current_date", "now", "current_timestamp", "date_diff", "datediff", "date_sub", "date_add",
    "date_part", "datepart", "date_trunc", "datetrunc", "year", "month", "day", "dayofweek", "dayofyear",
    "week", "weekofyear", "quarter", "hour", "minute", "second", "last_day", "make_date", "make_timestamp",
    "strftime", "strptime", "try_strptime", "epoch", "to_days", "to_months", "to_years", "to_hours",
    "to_minutes", "to_seconds", "age", "dayname", "monthname", "isodow",
}
SPECIAL_NAMES = {"current_date", "current_timestamp", "today"}  # parse as column names without ()
# Functions whose result can be far larger than their arguments (`repeat('x', 200000000)`). DuckDB
# computes constant calls while it checks a formula (the optimizer folds them; LIKE, regexp and
# strftime evaluate a constant pattern or format while binding), so the type check replaces a
# constant call of one of these by a text NULL: same type, nothing computed.
AMPLIFIERS = {"repeat", "lpad", "rpad", "printf", "format", "replace", "regexp_replace"}
CHECK_MEMORY_LIMIT = "128MB"  # the type check reads no rows; a second guard for anything computed


class ExpressionError(ValueError):
    """Not a pure expression, or not one the engine allows; the message says what is wrong."""


@dataclass(frozen=True)
class CheckedExpression:
    sql: str
    columns: tuple[str, ...]  # column names it reads, as written
    check_sql: str = ""  # what the type check binds: `sql` with constant AMPLIFIERS calls as text NULLs


@lru_cache(maxsize=1024)
def check_expression(expr: str) -> CheckedExpression:
    """Parse `expr` with DuckDB and accept it only if it is one pure scalar expression."""
    if not isinstance(expr, str) or not expr.strip():
        raise ExpressionError("an expression is required")
    con = duckdb.connect()
    try:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [f"SELECT ({expr})"]).fetchone()[0])
        statements = tree.get("statements", [])
        if tree.get("error") or len(statements) != 1:
            _refuse_statements(con, expr)
    finally:
        con.close()
    if tree.get("error"):
        raise ExpressionError(f"not an expression: {tree.get('error_message', 'cannot be parsed')}")
    if len(statements) != 1:
        raise ExpressionError("one expression only (no ';')")
    node = statements[0]["node"]
    if (node.get("type") != "SELECT_NODE" or len(node.get("select_list", [])) != 1
            or node.get("from_table", {}).get("type") != "EMPTY" or node.get("where_clause")
            or node.get("group_expressions") or node.get("having") or node.get("qualify")
            or node.get("modifiers") or node.get("cte_map", {}).get("map")):
        raise ExpressionError("one expression only: no SELECT, FROM, WHERE, GROUP BY or WITH")
    columns: list[str] = []
    _walk(node["select_list"][0], columns)
    return CheckedExpression(sql=f"({expr})", columns=tuple(dict.fromkeys(columns)),
                             check_sql=_without_constant_amplifiers(expr, node["select_list"][0]))


def _refuse_statements(con, expr: str) -> None:
    """If `expr` (as written, or spliced into `SELECT (...)` as the engine would) parses as SQL
    statements, say so in plain words. Parsing only; nothing runs."""
    for text in (expr, f"SELECT ({expr})"):
        try:
            kinds = [st.type.name.removesuffix("_STATEMENT") for st in con.extract_statements(text)]
        except duckdb.Error:
            continue
        if len(kinds) > 1:
            found = f"these are {len(kinds)} statements ({', '.join(kinds)})"
        elif kinds and text == expr and kinds[0] != "SELECT":
            found = f"this is {'an' if kinds[0][0] in 'AEIOU' else 'a'} {kinds[0]} statement"
        else:
            continue
        raise ExpressionError(f"not an expression: {found}; a filter or derived field is one expression "
                              f"over the source columns (for example \"Status\" <> 'Churned'), not a statement")


def _without_constant_amplifiers(expr: str, tree: dict) -> str:
    """`(expr)` with every outermost call of an AMPLIFIERS function that reads no column replaced by
    `CAST(NULL AS VARCHAR)` (they all return text), found by the parser's positions in
    `SELECT (expr)`; a position that does not hold that call is left alone."""
    raw = f"SELECT ({expr})".encode()  # the parser's positions count bytes
    spans: list[tuple[int, int]] = []
    _amplifier_spans(tree, raw, spans)
    for loc, length in sorted(spans, reverse=True):
        raw = raw[:loc] + b"CAST(NULL AS VARCHAR)" + raw[loc + length:]
    text = raw.decode()
    if spans:  # the replaced text must still be one expression
        con = duckdb.connect()
        try:
            parsed = json.loads(con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()[0])
        finally:
            con.close()
        if parsed.get("error") or len(parsed.get("statements", [])) != 1:
            return f"({expr})"
    return text[len("SELECT "):]


def _amplifier_spans(n, raw: bytes, spans: list[tuple[int, int]]) -> None:
    if isinstance(n, list):
        for x in n:
            _amplifier_spans(x, raw, spans)
        return
    if not isinstance(n, dict):
        return
    name = str(n.get("function_name", "")).lower()
    if n.get("class") == "FUNCTION" and name in AMPLIFIERS and not n.get("is_operator") and not _reads_a_column(n):
        loc, length = n.get("query_location"), n.get("query_location_length")
        if isinstance(loc, int) and isinstance(length, int) and re.fullmatch(
                rb"%s\s*\(.*\)" % re.escape(name.encode()), raw[loc:loc + length], re.IGNORECASE | re.DOTALL):
            spans.append((loc, length))
            return
    for k, v in n.items():
        _amplifier_spans(v, raw, spans)


def _reads_a_column(n) -> bool:
    if isinstance(n, list):
        return any(_reads_a_column(x) for x in n)
    if not isinstance(n, dict):
        return False
    if n.get("class") == "COLUMN_REF" and str((n.get("column_names") or [""])[-1]).lower() not in SPECIAL_NAMES:
        return True
    return any(_reads_a_column(v) for v in n.values())


def _walk(n, columns: list[str]) -> None:
    if isinstance(n, list):
        for x in n:
            _walk(x, columns)
        return
    if not isinstance(n, dict):
        return
    cls = n.get("class")
    if cls is not None:
        if cls not in ALLOWED_CLASSES:
            what = {"SUBQUERY": "a subquery", "STAR": "*", "WINDOW": "a window function",
                    "LAMBDA": "a lambda", "PARAMETER": "a parameter"}.get(cls, cls.lower())
            raise ExpressionError(f"{what} is not allowed in an expression")
        if cls == "COLUMN_REF":
            names = n.get("column_names", [])
            if len(names) != 1:
                raise ExpressionError(f"column {'.'.join(names)!r}: name a column of the source, without a table")
            if names[0].lower() not in SPECIAL_NAMES:
                columns.append(names[0])
        if cls == "TYPE" and (str(n.get("type_name", "")).lower() not in TYPES or n.get("schema") or n.get("catalog")):
            raise ExpressionError(f"type {n.get('type_name')!r} is not allowed; use one of {', '.join(sorted(TYPES))}")
        if cls == "FUNCTION":
            name = str(n.get("function_name", "")).lower()
            if n.get("schema") or n.get("catalog"):
                raise ExpressionError(f"function {name!r}: qualified names are not allowed")
            if name not in FUNCTIONS:
                raise ExpressionError(f"function {name!r} is not allowed in an expression; allowed: "
                                      f"{', '.join(sorted(f for f in FUNCTIONS if f.isidentifier()))}")
            if n.get("distinct") or n.get("filter") or (n.get("order_bys") or {}).get("orders"):
                raise ExpressionError(f"function {name!r}: DISTINCT, FILTER and ORDER BY are for aggregates, "
                                      f"which expressions cannot use")
    for k, v in n.items():
        if k in ("query_location", "query_location_length"):
            continue
        _walk(v, columns)


def prepared_select(source: str, derived: list[tuple[str, str]], header: list[str], *, check: bool = False) -> str:
    """SELECT over `source` (text columns) adding derived fields as text, so they flow through
    the same type conversion as file columns. Each derived field may use the ones before it (one
    nested SELECT per field); one named like an existing column replaces it, computed from the
    old value. `check`: the formulas as the type check binds them (CheckedExpression.check_sql)."""
    present = {h.lower() for h in header}
    sql = f"SELECT * FROM {source}"
    for n, e in derived:
        ce = check_expression(e)
        value = f"CAST({ce.check_sql if check else ce.sql} AS VARCHAR) AS {_ident(n)}"
        sql = f"SELECT * REPLACE ({value}) FROM ({sql})" if n.lower() in present else f"SELECT *, {value} FROM ({sql})"
        present.add(n.lower())
    return sql


def bind_errors(derived: list[tuple[str, str]], filter_expr: str | None, columns: list[str]) -> list[tuple[str, str]]:
    """Type-check the formulas against text columns of these names (no rows read): returns
    (where, message) for each formula DuckDB cannot bind, e.g. arithmetic on text without a cast.
    Nothing is computed: the optimizer (which folds constants) is off on this connection, constant
    calls of AMPLIFIERS are bound as text NULLs, and the connection has a small memory limit."""
    errors: list[tuple[str, str]] = []
    con = duckdb.connect(config={"threads": 1, "memory_limit": CHECK_MEMORY_LIMIT})
    try:
        con.execute("PRAGMA disable_optimizer")
        src = "(SELECT " + (", ".join(f"CAST(NULL AS VARCHAR) AS {_ident(c)}" for c in columns) or "1 AS _none") + " WHERE false)"
        good: list[tuple[str, str]] = []
        for i, (n, e) in enumerate(derived):
            try:
                con.execute(f"SELECT * FROM ({prepared_select(src, good + [(n, e)], columns, check=True)})").fetchall()
                good.append((n, e))
            except duckdb.Error as ex:
                errors.append((f"derived[{i}].expression", _first_line(ex)))
        if filter_expr:
            try:
                con.execute(f"SELECT * FROM ({prepared_select(src, good, columns, check=True)}) s "
                            f"WHERE CAST({check_expression(filter_expr).check_sql} AS BOOLEAN)").fetchall()
            except duckdb.Error as ex:
                errors.append(("filter", _first_line(ex)))
    finally:
        con.close()
    return errors


def _first_line(ex: Exception) -> str:
    msg = str(ex).strip().splitlines()[0]
    if any(t in msg for t in ("No function matches", "Cannot compare", "implicit cast", "Could not convert")):
        msg += ' (source columns are text: use TRY_CAST("column" AS DOUBLE), TRY_CAST(... AS DATE), ... to compute on them)'
    return msg


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
