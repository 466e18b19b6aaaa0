"""File pick-up rules: which file names a job takes, and the date a dated file name carries.

Rules (per job source): `equals` a name, `starts_with` a prefix, `date_pattern` such as
`usage_{yyyy}-{MM}-{dd}.csv` (the date becomes `$file_date` for mappings), or a `glob`.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

TOKENS = {"yyyy": r"(?P<yyyy>\d{4})", "yy": r"(?P<yy>\d{2})", "MM": r"(?P<MM>\d{2})", "dd": r"(?P<dd>\d{2})",
          "HH": r"(?P<HH>\d{2})", "mm": r"(?P<mm>\d{2})", "ss": r"(?P<ss>\d{2})"}
TOKEN_RE = re.compile(r"\{(yyyy|yy|MM|dd|HH|mm|ss)\}")


@dataclass(frozen=True)
class FileMatch:
    key: str
    file_name: str
    file_date: Optional[datetime] = None


@functools.lru_cache(maxsize=256)
def compile_date_pattern(pattern: str) -> re.Pattern:
    parts, pos, seen = [], 0, set()
    for m in TOKEN_RE.finditer(pattern):
        parts.append(re.escape(pattern[pos:m.start()]))
        tok = m.group(1)
        if tok in seen:
            raise ValueError(f"token {{{tok}}} appears twice in {pattern!r}")
        seen.add(tok)
        parts.append(TOKENS[tok])
        pos = m.end()
    parts.append(re.escape(pattern[pos:]))
    if not ({"yyyy", "yy"} & seen):
        raise ValueError(f"a date pattern needs a year token {{yyyy}} or {{yy}}: {pattern!r}")
    return re.compile("^" + "".join(parts) + "$")


def _date_from(m: re.Match) -> Optional[datetime]:
    g = m.groupdict()
    year = int(g["yyyy"]) if g.get("yyyy") else 2000 + int(g["yy"])
    try:
        return datetime(year, int(g.get("MM") or 1), int(g.get("dd") or 1), int(g.get("HH") or 0),
                        int(g.get("mm") or 0), int(g.get("ss") or 0))
    except ValueError:
        return None  # e.g. month 13: not a date, so not a match


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
