"""Text encodings a source may declare, and their canonical Python codec names."""

from __future__ import annotations

ENCODINGS = {
    "utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8",
    "utf-16": "utf-16", "utf-16-le": "utf-16-le", "utf-16le": "utf-16-le", "utf-16-be": "utf-16-be", "utf-16be": "utf-16-be",
    "ascii": "ascii", "us-ascii": "ascii",
    "iso-8859-1": "iso-8859-1", "latin-1": "iso-8859-1", "latin1": "iso-8859-1",
    "iso-8859-2": "iso-8859-2", "latin-2": "iso-8859-2", "iso-8859-3": "iso-8859-3", "latin-3": "iso-8859-3",
    "windows-1252": "cp1252", "cp1252": "cp1252",
}


def normalise_encoding(name: str) -> str:
    key = name.strip().lower().replace("_", "-")
    if key not in ENCODINGS:
        raise ValueError(f"encoding {name!r} is not supported; use one of {sorted(set(ENCODINGS))}")
    return ENCODINGS[key]
