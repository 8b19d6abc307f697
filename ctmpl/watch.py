"""Blocking-query watches: every retry, backoff and index rule, written once.

One asyncio task per distinct query key. The rules (consul-template's ``watch/view.go``
and Consul's "Blocking Queries" documentation):

- pass the last index; an unchanged index or equal data emits nothing;
- an index that goes backwards resets to 0 (the next query answers at once), and tells
  the runner the registry restarted or lost its state (``on_reset``);
- a source that versions its data itself (Consul's feeds do: the agent's indexes start over
  when it restarts) serves ``versioned_index``, which drops at each registry restart so
  that the rule above applies to it too;
- at least ``min_interval`` plus jitter between the starts of two fetches of one query;
- errors back off exponentially up to a cap and are retried forever by default, logged
  once with the query key, and the recovery is logged; the last good data stays.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ctmpl import tasks, telemetry
from ctmpl.config.model import Retry
from ctmpl.errors import SourceError
from ctmpl.sources.base import Query

log = logging.getLogger(__name__)

Emit = Callable[[str, object], None]
Fail = Callable[[str, BaseException], None]
Sleep = Callable[[float], Awaitable[None]]
Reset = Callable[[str], None]  # told the key of a query whose index went backwards


@dataclass(frozen=True)
class WatchPolicy:
    """Rate limit and retry settings shared by every watch."""

    retry: Retry = Retry()
    min_interval: float = 0.1
    jitter: float = 0.05


def backoff_delay(retry: Retry, failures: int, rng: Callable[[], float] = random.random) -> float:
    """Delay before retry number ``failures`` (1-based): doubling with ±25% jitter, capped."""
    base = min(retry.backoff * 2.0 ** (failures - 1), retry.max_backoff)
    return max(0.0, min(base * (0.75 + rng() / 2), retry.max_backoff))


def went_back(old: int, new: int) -> bool:
    """True when index ``new`` went below ``old``: the registry restarted or lost its state
    (an answer without an index, 0, says nothing)."""
    return 0 < new < old


def next_index(old: int, new: int) -> int:
    """The index to pass next: a backwards (or zero) index resets to 0 so the query answers."""
    return 0 if new < old or new <= 0 else new


_TOP, _RESTART_STEP = 1 << 62, 1 << 32


def versioned_index(version: int, restarts: int) -> int:
    """The index of data versioned by its source (``version`` moves with every change),
    lowered by each of ``restarts`` registry restarts: a watch sees a restart as the
    backwards index a registry's own index would show."""
    return version + _TOP - _RESTART_STEP * restarts


class FailureLog:
    """Consecutive failures of one request, logged as every watch logs them: the first as a
    WARNING, later ones at DEBUG, the recovery at INFO with the number of failed attempts."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.count = 0

    def failed(self, message: str) -> int:
        """Count and log one failure; returns how many in a row."""
        self.count += 1
        if self.count == 1:
            log.warning("%s (retrying; keeping the last good data)", message)
        else:
            log.debug("%s (attempt %d)", message, self.count)
        return self.count

    def succeeded(self) -> None:
        """An answer came: log the recovery after failures."""
        if self.count:
            log.info("%s: recovered after %d failed attempt(s)", self.key, self.count)
            self.count = 0


class QueryWatch:
    """The loop behind one query: fetch, apply the index rules, emit changed data."""

    def __init__(
        self,
        query: Query,
        policy: WatchPolicy,
        emit: Emit,
        fail: Fail,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        on_reset: Reset | None = None,
    ) -> None:
        self.query = query
        self._on_reset = on_reset
        self._policy = policy
        self._emit = emit
        self._fail = fail
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._index = 0
        self._failures = FailureLog(query.key)
        self._have_data = False
        self._last: object = None

    async def run(self) -> None:
        """Watch until cancelled (or until retries run out, reported through ``fail``)."""
        while True:
            started = self._clock()
            if not await self.step():
                return
            gap = self._policy.min_interval + self._rng() * self._policy.jitter
            remaining = gap - (self._clock() - started)
            if remaining > 0:
                await self._sleep(remaining)

    async def step(self) -> bool:
        """One fetch; False when the watch must stop because retries ran out."""
        key = self.query.key
        try:
            data, index = await self.query.fetch(self._index)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return await self._failed(key, exc)
        telemetry.watch_ok(key)
        self._failures.succeeded()
        if went_back(self._index, index) and self._on_reset is not None:
            self._on_reset(key)  # the registry restarted or lost its state
        self._index = next_index(self._index, index)
        if self._have_data and data == self._last:
            return True
        self._have_data, self._last = True, data
        self._emit(key, data)
        return True

    async def _failed(self, key: str, exc: Exception) -> bool:
        retry = self._policy.retry
        message = str(exc) if isinstance(exc, SourceError) else f"{key}: {exc!r}"
        telemetry.watch_error(key, message)
        failures = self._failures.failed(message)
        if not retry.enabled or (retry.attempts and failures >= retry.attempts):
            self._fail(key, exc)
            return False
        await self._sleep(backoff_delay(retry, failures, self._rng))
        return True


class Watcher:
    """Owns one task per query key; adding a known key is a no-op."""

    def __init__(
        self, policy: WatchPolicy, emit: Emit, fail: Fail, on_reset: Reset | None = None
    ) -> None:
        self._policy = policy
        self._emit = emit
        self._fail = fail
        self._on_reset = on_reset
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def keys(self) -> set[str]:
        """Keys currently watched."""
        return set(self._tasks)

    def add(self, query: Query) -> None:
        """Start watching ``query`` unless its key is watched already."""
        if query.key in self._tasks:
            return
        watch = QueryWatch(query, self._policy, self._emit, self._fail, on_reset=self._on_reset)
        log.debug("watching %s", query.key)
        telemetry.watch_added(query.key)
        self._tasks[query.key] = tasks.spawn(watch.run(), name=f"watch {query.key}")

    def remove(self, keys: set[str]) -> None:
        """Stop watches no template uses any more."""
        for key in keys:
            task = self._tasks.pop(key, None)
            if task is not None:
                log.debug("stopped watching %s", key)
                telemetry.watch_removed(key)
                task.cancel()

    async def aclose(self) -> None:
        """Cancel every watch and wait for them to end."""
        tasks = list(self._tasks.values())
        for key in self._tasks:
            telemetry.watch_removed(key)
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
