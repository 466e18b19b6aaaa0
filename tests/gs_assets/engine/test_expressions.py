"""Expressions in config are pure: DuckDB parses them, and only expression nodes pass."""

import pytest

from gs_assets.engine.expressions import ExpressionError, check_expression


@pytest.mark.parametrize("expr, columns", [
    ('lower("Name") || \'-\' || "Region"', ("Name", "Region")),
    ('CASE WHEN "Plan" IS NULL THEN 0 ELSE TRY_CAST("Seats" AS DOUBLE) * 12 END', ("Plan", "Seats")),
    ('"Status" IN (\'Active\', \'Trial\') AND NOT "Email" LIKE \'%@test.com\'', ("Status", "Email")),
    ("TRY_CAST(\"Date\" AS DATE) >= current_date - INTERVAL 30 DAY", ("Date",)),
    ('date_diff(\'day\', TRY_CAST("Opened" AS DATE), today())', ("Opened",)),
    ("coalesce(nullif(trim(\"A\"), ''), 'none')", ("A",)),
])
def test_pure_expressions_pass_and_name_their_columns(expr, columns):
    assert check_expression(expr).columns == columns


@pytest.mark.parametrize("expr, message", [
    ("(SELECT count(*) FROM gs.company)", "subquery"),
    ("read_csv('/etc/passwd')", "function 'read_csv' is not allowed"),
    ("getenv('AWS_SECRET_ACCESS_KEY')", "function 'getenv' is not allowed"),
    ("1); DROP TABLE gs.company; SELECT (1", "not an expression"),
    ("sum(\"Count\")", "function 'sum' is not allowed"),
    ("row_number() OVER ()", "window"),
    ("*", "not"),
    ('gs.company."name"', "without a table"),
    ("", "required"),
    ("'a' ||", "not an expression"),
])
def test_anything_but_a_pure_expression_is_refused(expr, message):
    with pytest.raises(ExpressionError, match=message):
        check_expression(expr)
