"""The SQL a sync sends, and the check that a user's query is one read-only SELECT.

The check parses the query with sqlglot in the connection's dialect and refuses anything but a
single SELECT (or UNION of SELECTs, with CTEs): no second statement, no INSERT/UPDATE/DELETE/MERGE
or DDL anywhere (a data-modifying CTE included), no SELECT ... INTO, no FOR UPDATE. The sync also
runs it in a read-only transaction where the system has one; the connection's role should only be
allowed to read in any case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

_WRITES = tuple(getattr(exp, n) for n in ("Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter",
                                         "Command", "Into", "Lock", "TruncateTable", "Copy", "Grant", "Set", "Use")
                if hasattr(exp, n))


class QueryRefused(ValueError):
    """A source query that is not one read-only SELECT."""


def check_select(sql: str, dialect: str) -> None:
    """Raise QueryRefused unless `sql` is a single read-only SELECT in `dialect`."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise QueryRefused("the query is empty; write one SELECT")
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except ParseError as e:
        first = e.errors[0] if e.errors else {}
        where = f" (line {first.get('line')}, column {first.get('col')})" if first else ""
        raise QueryRefused(f"the query is not valid {dialect} SQL{where}: "
                           f"{first.get('description') or str(e).splitlines()[0]}. Write one SELECT.") from None
    if len(statements) != 1:
        raise QueryRefused(f"the query holds {len(statements)} statements; a source query is exactly one SELECT "
                           "(no second statement after a semicolon)")
    stmt = statements[0]
    if not isinstance(stmt, (exp.Select, exp.SetOperation)) and not (
            isinstance(stmt, exp.Subquery) and isinstance(stmt.unnest(), (exp.Select, exp.SetOperation))):
        if isinstance(stmt, _WRITES) or isinstance(stmt, (exp.DDL, exp.DML)):
            raise QueryRefused(f"the query is not a SELECT but {stmt.key.upper()}; a source query is one read-only "
                               "SELECT")
        # an expression that is no statement (`SELEC id` reads as a column SELEC named id)
        raise QueryRefused("the query is not a SELECT statement (it does not begin with SELECT, or WITH ... SELECT); "
                           "a source query is one read-only SELECT")
    for node in stmt.walk():
        if isinstance(node, _WRITES):
            raise QueryRefused(f"the query contains {node.key.upper()} ({node.sql(dialect=dialect)[:80]}); a source "
                               "query only reads: one SELECT without INTO, FOR UPDATE or data-modifying parts")


@dataclass(frozen=True)
class ReadPlan:
    """The rows a sync reads: the columns (as the source names them -> as landed), the bounds of the
    cursor and the order."""
    dataset: str  # a table name, or "(query)"
    columns: Sequence[tuple[str, str]]  # (source column, landed name)
    cursor: Optional[str] = None  # the cursor column as the source names it
    lower: Optional[object] = None  # closed lower bound (>=)
    upper: Optional[object] = None  # open upper bound (<)
    order: Sequence[str] = ()  # source columns: the cursor, then the primary key
    categories: Sequence[str] = ()  # per column, its category (systems/base.py), for select_expr


def dataset_sql(table: Optional[str], query: Optional[str]) -> str:
    """What a FROM clause reads: the table as written, or the query as a derived table."""
    if table is not None:
        return table
    assert query is not None
    return "(" + query.strip().rstrip(";").strip() + ")"


def select_sql(plan: ReadPlan, quote: Callable[[str], str], placeholder: Callable[[int], str],
               expr: Callable[[str, str], str] = lambda column_sql, category: column_sql) -> tuple[str, list]:
    """SELECT <columns> FROM <dataset> [WHERE cursor >= ? AND cursor < ?] ORDER BY cursor, key."""
    cats = list(plan.categories) or [""] * len(plan.columns)
    cols = ", ".join(f"{expr('d.' + quote(src), cat)} AS {quote(name)}" for (src, name), cat in zip(plan.columns, cats))
    where, params = [], []
    if plan.cursor is not None and plan.lower is not None:
        params.append(plan.lower)
        where.append(f"d.{quote(plan.cursor)} >= {placeholder(len(params))}")
    if plan.cursor is not None and plan.upper is not None:
        params.append(plan.upper)
        where.append(f"d.{quote(plan.cursor)} < {placeholder(len(params))}")
    if plan.cursor is not None:
        where.append(f"d.{quote(plan.cursor)} IS NOT NULL")
    sql = f"SELECT {cols} FROM {plan.dataset} AS d"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if plan.order:
        sql += " ORDER BY " + ", ".join(f"d.{quote(c)}" for c in plan.order)
    if params and placeholder(1) == "%s":
        # format-style drivers read every % as a placeholder once parameters are given: double the
        # user's own (LIKE 'a%') and put ours back
        sql = sql.replace("%", "%%").replace("%%s", "%s")
    return sql, params


def describe_sql(dataset: str) -> str:
    """A query that returns the dataset's columns and no rows."""
    return f"SELECT * FROM {dataset} AS d WHERE 1 = 0"
