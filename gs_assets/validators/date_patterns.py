"""Date patterns in file names (`usage_{yyyy}-{MM}-{dd}.csv`): compile one, read the date a match carries."""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Optional

TOKENS = {"yyyy": r"(?P<yyyy>\d{4})", "yy": r"(?P<yy>\d{2})", "MM": r"(?P<MM>\d{2})", "dd": r"(?P<dd>\d{2})",
          "HH": r"(?P<HH>\d{2})", "mm": r"(?P<mm>\d{2})", "ss": r"(?P<ss>\d{2})"}
TOKEN_RE = re.compile(r"\{(yyyy|yy|MM|dd|HH|mm|ss)\}")


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
