"""File pick-up rules: which file names a job takes, and the date a dated file name carries.

Rules (per job source): `equals` a name, `starts_with` a prefix, `date_pattern` such as
`usage_{yyyy}-{MM}-{dd}.csv` (the date becomes `$file_date` for mappings), or a `glob`.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from gs_assets.validators.date_patterns import _date_from, compile_date_pattern


@dataclass(frozen=True)
class FileMatch:
    key: str
    file_name: str
    file_date: Optional[datetime] = None


ERROR_FILE_SUFFIX = ".errors.csv"  # error files end so (file_lifecycle); no pick-up rule takes them


def match_file(prefix: str, rule: str, file_name: str, key: str) -> Optional[FileMatch]:
    """The match of `key` against a job's rule, or None. Only files directly under the prefix count."""
    if not key.startswith(prefix):
        return None
    name = key[len(prefix):]
    if not name or "/" in name or name.endswith(ERROR_FILE_SUFFIX):
        return None  # error files we write beside a file are never data, whatever the rule
    if rule == "equals":
        return FileMatch(key, name) if name == file_name else None
    if rule == "starts_with":
        return FileMatch(key, name) if name.startswith(file_name) else None
    if rule == "glob":
        return FileMatch(key, name) if fnmatch.fnmatchcase(name, file_name) else None
    if rule == "date_pattern":
        m = compile_date_pattern(file_name).match(name)
        if not m:
            return None
        d = _date_from(m)
        return FileMatch(key, name, d) if d else None
    raise ValueError(f"unknown pick-up rule {rule!r}")


def file_match(src, name: str) -> FileMatch:
    """The file's name and date (for `$file_name` / `$file_date`) under the source's pick-up rule."""
    return (match_file(src.prefix, src.match, src.file_name, name)
            or match_file("", src.match, src.file_name, os.path.basename(name))
            or FileMatch(name, os.path.basename(name)))
