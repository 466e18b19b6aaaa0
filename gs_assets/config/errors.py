"""Config errors that name the file and the key, so a broken config is fixed in one look."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config file is invalid. Raised while definitions load, before anything runs."""

    def __init__(self, file: str, key: str, message: str):
        self.file = str(file)
        self.key = key
        self.message = message
        super().__init__(f"{self.file}: {key}: {message}")


def format_pydantic_errors(file: str, prefix: str, exc) -> ConfigError:
    """Turn a pydantic ValidationError into one ConfigError listing every problem with its key."""
    parts = []
    first_key = prefix
    for i, err in enumerate(exc.errors()):
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        if i == 0:
            first_key = loc
        got = err.get("input")
        got_txt = f" (got {got!r})" if not isinstance(got, (dict, list)) and got is not None else ""
        hint = ""
        if err.get("type") == "invalid_key" and isinstance(got, bool):
            hint = "; YAML reads a bare on/off/yes/no/true/false key as a boolean: quote it or use another name"
        parts.append(f"{loc}: {err['msg']}{got_txt}{hint}")
    if len(parts) == 1:
        return ConfigError(file, first_key, parts[0].split(": ", 1)[1])
    return ConfigError(file, first_key, "; ".join(parts))
