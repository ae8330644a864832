"""An explicit registry: a table from a closed-set key (a StrEnum) to an implementation, refusing duplicates."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Generic, TypeVar

from edgeopt.errors import EdgeoptError

K = TypeVar("K", bound=StrEnum)
V = TypeVar("V")


class Registry(Generic[K, V]):
    """`register(key, value)` once per key; `get(key)` raises `missing(key, known)` for an unknown key."""

    def __init__(self, what: str, missing: Callable[[K, tuple[K, ...]], EdgeoptError]) -> None:
        self._what, self._missing = what, missing
        self._table: dict[K, V] = {}

    def register(self, key: K, value: V) -> None:
        if key in self._table:
            msg = f"internal: a {self._what} for '{key}' is already registered"
            raise EdgeoptError(msg)
        self._table[key] = value

    def get(self, key: K) -> V:
        if key not in self._table:
            raise self._missing(key, tuple(self._table))
        return self._table[key]

    def keys(self) -> tuple[K, ...]:
        return tuple(self._table)

    def __contains__(self, key: object) -> bool:
        return key in self._table
