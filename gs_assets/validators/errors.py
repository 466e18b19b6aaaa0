"""Config errors that name the file and the key, so a broken config is fixed in one look."""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any, Optional


class ConfigError(ValueError):
    """A config file is invalid. Raised while definitions load, before anything runs."""

    def __init__(self, file: str, key: str, message: str):
        self.file = str(file)
        self.key = key
        self.message = message
        super().__init__(f"{self.file}: {key}: {message}")


def format_pydantic_errors(file: str, prefix: str, exc, model: Optional[type] = None) -> ConfigError:
    """Turn a pydantic ValidationError into one ConfigError listing every problem with its key
    (each key once). `model`: the class that was validated, so an unknown key is answered with the
    keys allowed there (and the closest one)."""
    parts: list[tuple[str, str]] = []
    errors = []  # (error, location as shown, whether it is one alternative of a union)
    for err in exc.errors():
        loc = _follow(model, tuple(err["loc"]))[1] if model is not None else tuple(err["loc"])
        errors.append((err, loc, len(loc) < len(err["loc"])))
    # An alternative of a union that failed where another alternative got further (a mapping with
    # a wrong key, where a text was also allowed) says nothing more.
    errors = [(err, loc, alt) for err, loc, alt in errors
              if not (alt and any(a2 and len(l2) > len(loc) and l2[:len(loc)] == loc for _, l2, a2 in errors))]
    # Unknown keys first: a misspelt key also makes the key it meant "missing".
    for err, loc, _ in sorted(errors, key=lambda e: e[0].get("type") != "extra_forbidden"):
        key = ".".join(str(p) for p in (prefix, *loc) if p != "")
        got = err.get("input")
        got_txt = f" (got {got!r})" if not isinstance(got, (dict, list)) and got is not None else ""
        hint = ""
        if err.get("type") == "invalid_key" and isinstance(got, bool):
            hint = "; YAML reads a bare on/off/yes/no/true/false key as a boolean: quote it or use another name"
        if err.get("type") == "extra_forbidden":
            parts.append((key, _unknown_key(str(loc[-1]) if loc else "", model and _follow(model, tuple(err["loc"])[:-1])[0])))
        else:
            parts.append((key, f"{err['msg']}{got_txt}{hint}"))
    first_key, first_message = parts[0]
    return ConfigError(file, first_key, "; ".join([first_message, *(f"{k}: {m}" for k, m in parts[1:])]))


def _unknown_key(name: str, model: Optional[type]) -> str:
    allowed = _keys(model) if model is not None else []
    if not allowed:
        return f"unknown key {name!r}"
    close = difflib.get_close_matches(name, allowed, n=1)
    return f"unknown key {name!r}{f' (did you mean {close[0]!r}?)' if close else ''}; allowed keys: {', '.join(allowed)}"


def _keys(model: type) -> list[str]:
    """The keys a person may write for this model (aliases as written; loader-set fields left out)."""
    return [f.alias or n for n, f in model.model_fields.items()
            if not any(type(m).__name__ == "SkipJsonSchema" for m in f.metadata)]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_fields")


def _follow(tp: Any, loc: tuple) -> tuple[Optional[type], tuple]:
    """Follow a pydantic error location from type `tp` through models, dicts, lists and unions:
    (the model class it ends in, or None; the location without pydantic's union-member labels
    such as 'function-after[_shape(), Schedule]')."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _follow(typing.get_args(tp)[0], loc)
    if origin in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(tp) if m is not type(None)]
        if loc and isinstance(loc[0], str) and len(members) > 1:
            for m in members:  # pydantic names the member it tried in the location
                if _labels(loc[0], m):
                    return _follow(m, loc[1:])
        for m in members:
            found, shown = _follow(m, loc)
            if found is not None or not loc:
                return found, shown
        return None, loc
    if not loc:
        return (tp if _is_model(tp) else None), ()
    head, rest = loc[0], loc[1:]
    if origin is dict:
        found, shown = _follow(typing.get_args(tp)[1], rest)
        return found, (head, *shown)
    if origin in (list, tuple, set, frozenset):
        found, shown = _follow(typing.get_args(tp)[0], rest)
        return found, (head, *shown)
    if _is_model(tp):
        field = next((f for n, f in tp.model_fields.items() if head in (n, f.alias)), None)
        if field is not None:
            found, shown = _follow(field.annotation, rest)
            return found, (head, *shown)
    return None, loc


def _labels(label: str, member: Any) -> bool:
    name = getattr(typing.get_origin(member) or member, "__name__", str(member))
    if re.search(rf"(^|[\[\s,]){re.escape(name)}($|[\]\[\s,])", label, re.IGNORECASE) is not None:
        return True
    tag = getattr(member, "model_fields", {}).get("type")  # a union discriminated on `type` labels by tag
    return tag is not None and label in typing.get_args(tag.annotation)
