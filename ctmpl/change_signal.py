"""The change signal every source uses: wake-ups and stamps by name.

Terms:

- ``changed(name)`` is the event the next change of ``name`` sets. A reader takes it
  *before* it reads its data and awaits it after, so a change that lands between the read
  and the wait is never missed; a change wakes only the readers of the names it touches
  (and of ``ANY``).
- A name's *stamp* is a number that grows with every change of that name; a reader that
  remembers the stamp it read at knows whether it must read again. ``touch_all`` moves
  every stamp (a change that names nothing: the source failed, or came back).
- ``wait_changed(event, timeout)`` is "wait for a change or a deadline";
  ``ChangeSignal.wait_past(name, stamp, timeout)`` waits until ``name``'s stamp differs from
  ``stamp`` or the timeout ends, and returns the current stamp.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Hashable, Iterable

ANY = "\0any"  # set by every change the signal sees


def _same(name: Hashable) -> Hashable:
    return name


class ChangeSignal:
    """One event and one stamp per name, moved by the next change of that name."""

    def __init__(self, fold: Callable[[Hashable], Hashable] = _same) -> None:
        self._fold = fold  # how names are compared (Consul matches service names in any case)
        self._events: dict[Hashable, asyncio.Event] = {}
        self._stamps: dict[Hashable, int] = {}
        self._floor = 0  # every stamp is at least this (moved by touch_all)
        self._counter = 0
        self.woken = 0  # events set so far: how many names' waiters changes woke

    def stamp(self, name: Hashable) -> int:
        """A number that grows whenever ``name`` changes."""
        return max(self._stamps.get(self._fold(name), 0), self._floor)

    def changed(self, name: Hashable) -> asyncio.Event:
        """The event the next change of ``name`` sets."""
        name = self._fold(name)
        event = self._events.get(name)
        if event is None:
            event = self._events[name] = asyncio.Event()
        return event

    def touch(self, names: Iterable[Hashable]) -> None:
        """Move the stamps of ``names`` and ``ANY`` and wake their waiters."""
        self._counter += 1
        for name in {*(self._fold(n) for n in names), ANY}:
            self._stamps[name] = self._counter
            event = self._events.pop(name, None)
            if event is not None:
                event.set()
                self.woken += 1

    def touch_all(self) -> None:
        """Move every stamp and wake every waiter (the source failed, or came back)."""
        self._counter += 1
        self._floor = self._counter
        events, self._events = self._events, {}
        for event in events.values():
            event.set()
        self.woken += len(events)

    async def wait_past(self, name: Hashable, stamp: int, timeout: float) -> int:
        """``name``'s stamp once it differs from ``stamp``, or when ``timeout`` ends."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            event = self.changed(name)
            current = self.stamp(name)
            remaining = deadline - asyncio.get_running_loop().time()
            if current != stamp or remaining <= 0:
                return current
            await wait_changed(event, remaining)


async def wait_changed(event: asyncio.Event, timeout: float) -> None:
    """Wait for ``event`` up to ``timeout`` seconds; a timeout is not an error."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, timeout)):
            await event.wait()
