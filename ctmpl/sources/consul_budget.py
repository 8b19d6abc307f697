"""The connection budget: how thousands of Consul watches share a bounded number of connections.

The agent serves at most 200 concurrent HTTP connections per client IP
(``limits.http_max_conns_per_client``) and answers the 201st with ``429`` at once, so one
long-poll per watched service stops working past ~200 services (consul-template's failure).
ctmpl never opens more than ``max_connections`` (default 64, well under the limit, leaving
room for other clients on the same host):

- up to ``max_connections - quick - 4`` real long-polls, one per query while slots are free;
- ``quick`` slots (a quarter) for non-blocking reads, which never wait behind long-polls;
- 4 connections for *pulses*: catalog-wide long-polls on ``/v1/catalog/services``,
  ``/v1/catalog/nodes``, ``/v1/health/state/any`` and ``/v1/kv/?keys&separator=/``.

A blocking fetch that finds no free long-poll slot does not queue: it reads at once through a
quick slot and, while its index has not moved, sleeps until a pulse reports a change of the
matching kind (catalog or KV), then reads again. Thousands of watches therefore cost a bounded
number of connections, and a change still reaches every watch within one round trip. Queries
for another datacenter have no pulse and re-read every ``_OTHER_DC_POLL`` seconds instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Literal, Protocol

from ctmpl import tasks
from ctmpl.errors import SourceError
from ctmpl.sources.consul_http import Answer

log = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 64
PULSE_CONNECTIONS = 4
_OTHER_DC_POLL = 5.0

Kind = Literal["catalog", "kv"]
Mode = Literal["quick", "long", "pulse"]  # which connection budget a request uses
Params = tuple[tuple[str, str], ...]


class Reader(Protocol):
    """What pulses read through: the catalog's blocking request and its connection epoch."""

    @property
    def epoch(self) -> int:
        """Bumped by every lost connection."""

    async def request(
        self, key: str, path: str, params: Params, index: int, mode: Mode
    ) -> Answer:
        """GET ``path``, blocking past ``index`` when it is positive."""


class Pulse:
    """Catalog-wide long-polls; ``changed()`` is set after any of their indexes moves."""

    def __init__(self, reader: Reader, paths: Iterable[tuple[str, Params]]) -> None:
        self._event = asyncio.Event()
        self._tasks = [
            tasks.spawn(self._follow(reader, p, q), name=f"consul pulse {p}") for p, q in paths
        ]

    def changed(self) -> asyncio.Event:
        """The event the next change sets; take it before reading, await it after."""
        return self._event

    async def _follow(self, reader: Reader, path: str, params: Params) -> None:
        index = 0
        epoch = -1
        failures = 0
        while True:
            if epoch != reader.epoch:
                index = 0
            try:
                answer = await reader.request(f"pulse({path})", path, params, index, "pulse")
            except SourceError as exc:
                failures += 1
                # Catalog-wide: every watch waiting on this poll sees changes late until
                # it recovers, so the first failure is a warning (then DEBUG per retry).
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "%s (catalog-wide poll; retrying every 1s)", exc)
                index = 0
                await asyncio.sleep(1.0)
                continue
            if failures:
                log.info("pulse(%s): recovered after %d failed attempt(s)", path, failures)
                failures = 0
            if answer.index != index:
                self._event.set()
                self._event = asyncio.Event()
            index = answer.index if answer.index >= index else 0
            epoch = answer.epoch

    async def aclose(self) -> None:
        """Stop every long-poll of this pulse."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Budget:
    """Long-poll slots, quick slots and pulses within ``max_connections`` (0: the default)."""

    def __init__(self, reader: Reader, max_connections: int) -> None:
        self._reader = reader
        self.max_connections = max(
            max_connections or DEFAULT_MAX_CONNECTIONS, PULSE_CONNECTIONS + 4
        )
        quick = max(2, self.max_connections // 4)
        self._long_slots = self.max_connections - quick - PULSE_CONNECTIONS
        self._long_polls = 0
        self.quick = asyncio.Semaphore(quick)  # held by every non-blocking read
        self._pulses: dict[Kind, Pulse] = {}

    @contextlib.contextmanager
    def long_poll(self) -> Iterator[bool]:
        """Hold a long-poll slot for the ``with`` block; yields False when none is free."""
        if self._long_polls >= self._long_slots:
            yield False
            return
        self._long_polls += 1
        try:
            yield True
        finally:
            self._long_polls -= 1

    async def paced(
        self, read: Callable[[], Awaitable[Answer]], kind: Kind, dc: str, index: int, wait: float
    ) -> Answer:
        """``read()`` until its index moves past ``index`` or ``wait`` runs out, between reads
        sleeping until a pulse of ``kind`` reports a change (other datacenters: a short poll)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            changed = None if dc else self._pulse(kind).changed()
            answer = await read()
            remaining = deadline - loop.time()
            if answer.index != index or remaining <= 0:
                return answer
            with contextlib.suppress(TimeoutError):
                if changed is None:
                    await asyncio.sleep(min(remaining, _OTHER_DC_POLL))
                else:
                    async with asyncio.timeout(remaining):
                        await changed.wait()

    async def aclose(self) -> None:
        """Stop the pulses."""
        pulses, self._pulses = list(self._pulses.values()), {}
        for pulse in pulses:
            await pulse.aclose()

    def _pulse(self, kind: Kind) -> Pulse:
        if kind not in self._pulses:
            if kind == "kv":
                paths: list[tuple[str, Params]] = [("/v1/kv/", (("keys", ""), ("separator", "/")))]
            else:
                paths = [(p, ()) for p in ("/v1/catalog/services", "/v1/catalog/nodes",
                                           "/v1/health/state/any")]
            self._pulses[kind] = Pulse(self._reader, paths)
        return self._pulses[kind]
