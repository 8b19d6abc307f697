"""The brain: query key → latest data, with "never received" distinct from "empty"."""

from __future__ import annotations

from collections.abc import Iterable


class Brain:
    """Latest data per query key; tells whether a key has been received at all."""

    def __init__(self) -> None:
        self._data: dict[str, object] = {}

    def has(self, key: str) -> bool:
        """True once data for ``key`` was received, even if it was empty."""
        return key in self._data

    def get(self, key: str) -> object:
        """The latest data for ``key``; KeyError if never received."""
        return self._data[key]

    def get_or(self, key: str, default: object) -> object:
        """The latest data for ``key``, or ``default`` if never received."""
        return self._data.get(key, default)

    def set(self, key: str, data: object) -> bool:
        """Store data; return True when it differs from what was stored."""
        if key in self._data and self._data[key] == data:
            return False
        self._data[key] = data
        return True

    def forget(self, keys: Iterable[str]) -> None:
        """Drop data for queries no template uses any more."""
        for key in keys:
            self._data.pop(key, None)
