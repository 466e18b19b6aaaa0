"""Expressions in config are pure: DuckDB parses them, and only expression nodes pass."""

import pytest

from gs_assets.validators.expressions import ExpressionError, check_expression
from tests.memory import run_and_measure


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


# Checking a formula computes nothing: a huge constant is parsed (check_expression) and
# type-checked (bind_errors) at the cost of its text, not of its value.
_CHECK = ("import sys; from gs_assets.validators.expressions import bind_errors, check_expression\n"
          "check_expression(sys.argv[1])\n"
          "print(bind_errors([], sys.argv[1], ['A']) + bind_errors([('D', sys.argv[1])], None, ['A']))")


@pytest.mark.parametrize("bomb", [
    "repeat('x', {n}) = 'a'",
    "\"A\" LIKE lpad('%', {n}, '%')",
    "length(strftime(TRY_CAST(\"A\" AS DATE), repeat('%d', {n} // 50))) > 1",
])
def test_checking_a_formula_does_not_compute_its_constants(bomb):
    small_errors, small = run_and_measure(_CHECK, bomb.format(n=3))
    big_errors, big = run_and_measure(_CHECK, bomb.format(n=100_000_000))
    assert small_errors == big_errors == "[]"
    assert big - small < 50, f"checking took {big - small:.0f} MiB more for the big constant"


def test_a_constant_call_is_type_checked_as_text_and_type_errors_are_still_found():
    from gs_assets.validators.expressions import bind_errors
    assert check_expression("repeat('x', 100000000) = \"A\"").check_sql == '(CAST(NULL AS VARCHAR) = "A")'
    assert check_expression("lpad(\"A\", 5, repeat('0', 2))").check_sql == "(lpad(\"A\", 5, CAST(NULL AS VARCHAR)))"
    assert check_expression("lower(\"A\")").check_sql == '(lower("A"))'
    [(where, message)] = bind_errors([], "repeat('x', 100000000) > 5", ["A"])
    assert where == "filter" and "Cannot compare" in message
    [(where, message)] = bind_errors([("D", "repeat(\"A\", 2) * 12")], None, ["A"])
    assert where == "derived[0].expression" and "TRY_CAST" in message


@pytest.mark.parametrize("expr, found", [
    ("DELETE FROM gs.company", "a DELETE statement"),
    ("SELECT 1; DROP TABLE x", "2 statements (SELECT, DROP)"),
    ("CREATE TABLE t AS SELECT 1", "a CREATE statement"),
    ("1); INSTALL httpfs; SELECT (1", "3 statements (SELECT, LOAD, SELECT)"),
    ("INSERT INTO gs.company VALUES (1)", "an INSERT statement"),
])
def test_a_statement_is_refused_in_plain_words(expr, found):
    with pytest.raises(ExpressionError) as e:
        check_expression(expr)
    msg = str(e.value)
    assert found in msg and "one expression" in msg and "not a statement" in msg, msg
    assert "serialized to json" not in msg and "syntax error" not in msg, msg
