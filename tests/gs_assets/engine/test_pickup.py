"""Pick-up rules: which keys a job takes, and the date a date pattern gives it."""

from datetime import datetime

import pytest

from gs_assets.connectors.s3_files.discovery import match_file


@pytest.mark.parametrize("rule, pattern, key, taken", [
    ("equals", "companies.csv", "in/companies.csv", True),
    ("equals", "companies.csv", "in/Companies.csv", False),
    ("starts_with", "usage_", "in/usage_7.csv", True),
    ("glob", "cases*.csv", "in/cases_2026.csv", True),
    ("glob", "cases*.csv", "in/archive/cases_2026.csv", False),   # only direct children of the prefix
    ("glob", "cases*.csv", "other/cases_2026.csv", False),
    # error files written beside a file (archive_prefix: "") match no rule, so they are never loaded
    ("glob", "cases*.csv", "in/cases_2026.csv.support_cases.errors.csv", False),
    ("starts_with", "cases", "in/cases_2026.csv.errors.csv", False),
])
def test_rules(rule, pattern, key, taken):
    assert (match_file("in/", rule, pattern, key) is not None) == taken


def test_date_pattern_gives_the_file_date():
    m = match_file("in/", "date_pattern", "usage_{yyyy}-{MM}-{dd}.csv", "in/usage_2026-11-26.csv")
    assert m.file_date == datetime(2026, 11, 26) and m.file_name == "usage_2026-11-26.csv"
    assert match_file("in/", "date_pattern", "usage_{yyyy}-{MM}-{dd}.csv", "in/usage_2026-13-01.csv") is None
