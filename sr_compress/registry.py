"""The one registry helper behind every extension point (models, strategies, recipe stage kinds).

One duplicate policy: registering a name twice is a programming error (``ValueError``) — a plugin cannot
silently replace a built-in. One lookup policy: an unknown name is a :class:`~sr_compress.errors.ConfigError`
that lists the valid names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from .errors import ConfigError

V = TypeVar("V")


class Registry(Generic[V]):
    """Name → entry, for one kind of thing (``what`` names it in messages: "arch", "strategy", …)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, V] = {}

    def add(self, name: str, entry: V) -> V:
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> V:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.what} {name!r}; choose one of: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
