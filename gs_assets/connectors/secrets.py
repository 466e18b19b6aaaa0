"""A secret value read from an env var for one connection: never shown in a repr, a log or a message."""

from __future__ import annotations


class Secret:
    """A secret value: its repr/str never show it; `.reveal()` is the only way to read it."""
    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
