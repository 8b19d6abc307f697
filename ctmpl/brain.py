"""The brain: query key → latest data, with "never received" distinct from "empty".

It also keeps a short log of which keys changed, so a render can ask what changed since
the last one (``changed_since``) instead of comparing every value it read.
"""

from __future__ import annotations

from collections.abc import Iterable

_LOG_LIMIT = 50_000  # changes kept; an older version gets "unknown" (compare values)


class Brain:
    """Latest data per query key; tells whether a key has been received at all."""

    def __init__(self) -> None:
        self._data: dict[str, object] = {}
        self._log: list[str] = []  # keys in the order they changed
        self._base = 0  # the version of the log's first entry

    @property
    def version(self) -> int:
        """A number that grows with every change (see ``changed_since``)."""
        return self._base + len(self._log)

    def changed_since(self, version: int) -> frozenset[str] | None:
        """The keys whose data changed (or were forgotten) after ``version``; None when
        that is no longer known (too many changes since): every value must be compared."""
        if version < self._base:
            return None
        return frozenset(self._log[version - self._base:])

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
        self._changed(key)
        return True

    def forget(self, keys: Iterable[str]) -> None:
        """Drop data for queries no template uses any more."""
        for key in keys:
            if self._data.pop(key, _NONE) is not _NONE:
                self._changed(key)

    def _changed(self, key: str) -> None:
        if len(self._log) >= _LOG_LIMIT:
            self._base += len(self._log)
            self._log = []
        self._log.append(key)


_NONE = object()
