"""Polling one DNS name: its TTL clamped, with jitter, and the empty-answer rule.

DNS has no blocking queries, so a name is asked again when its answer's TTL runs out,
clamped to ``[ttl_min, ttl_max]`` and brought forward by up to ``jitter`` of it (names
with equal TTLs do not all ask at once). Terms used here:

- an *empty* answer is NXDOMAIN or a name without records of the types asked. It replaces
  known instances only once it *repeats* (``empty_repeats`` answers in a row): one lost
  answer — a task restarting, a resolver hiccup — must not empty an upstream. The first
  one is held and the name asked again after ``ttl_min``.
- an *error* (SERVFAIL, REFUSED, a timeout) keeps the last good data; ``ctmpl.watch``
  logs it once, backs off, logs the recovery, and the retry asks at once.

``NameState`` is the pure rule (the time is passed in); ``NamePoller`` runs it on a clock.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from ctmpl.model import Instance

log = logging.getLogger(__name__)

Outcome = Literal["changed", "same", "held"]


@dataclass(frozen=True)
class PollTiming:
    """When to ask a name again."""

    ttl_min: float = 1.0
    ttl_max: float = 30.0
    empty_repeats: int = 2  # empty answers in a row before known instances are dropped
    jitter: float = 0.1  # share of the delay by which a poll may come early

    def delay(self, ttl: float, rng: Callable[[], float]) -> float:
        """Seconds until the next poll: ``ttl`` clamped, up to ``jitter`` of it earlier."""
        clamped = min(max(ttl, self.ttl_min), self.ttl_max)
        return clamped * (1.0 - self.jitter * rng())


@dataclass(frozen=True)
class Answer:
    """What a name resolved to: instances (none for an empty answer) and the TTL to keep it."""

    instances: tuple[Instance, ...]
    ttl: float
    empty: str = ""  # why there are no instances: "NXDOMAIN" or "no records"


class NameState:
    """The last good instances of one name and when to ask it again (pure: no clock)."""

    def __init__(self, timing: PollTiming, rng: Callable[[], float] = random.random) -> None:
        self.timing = timing
        self._rng = rng
        self.instances: tuple[Instance, ...] | None = None  # None: never answered
        self.generation = 0  # bumped whenever ``instances`` changes
        self.due = 0.0  # when to ask next
        self.empties = 0  # empty answers in a row while instances were known

    def answered(self, now: float, answer: Answer) -> Outcome:
        """Record an answer received at ``now``; say whether the data changed or is held."""
        if not answer.instances and self.instances:
            self.empties += 1
            if self.empties < self.timing.empty_repeats:
                self.due = now + self.timing.ttl_min
                return "held"
        self.empties = 0
        self.due = now + self.timing.delay(answer.ttl, self._rng)
        if answer.instances == self.instances:
            return "same"
        self.instances = answer.instances
        self.generation += 1
        return "changed"

    def failed(self, now: float) -> None:
        """An error at ``now``: the data stays; the watch's backoff decides when to retry."""
        self.due = now


class NamePoller:
    """One DNS name asked on its TTL; every query of the name shares its answers."""

    def __init__(
        self,
        name: str,
        lookup: Callable[[], Awaitable[Answer]],
        timing: PollTiming,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self.state = NameState(timing, rng)
        self._lookup = lookup
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()  # one lookup at a time, whoever asks

    def current(self, index: int) -> tuple[tuple[Instance, ...], int] | None:
        """The instances and generation when they differ from what ``index`` has seen."""
        state = self.state
        if state.instances is None or state.generation == index:
            return None
        return state.instances, state.generation

    async def wait_past(self, index: int) -> tuple[tuple[Instance, ...], int]:
        """(instances, generation) once the generation differs from ``index``.

        Asks at once when nothing is known yet (or after an error), otherwise when the
        answer's time is due; raises SourceError when the lookup fails.
        """
        while (found := self.current(index)) is None:
            async with self._lock:
                if self.current(index) is not None:
                    continue  # another query's lookup brought news while we waited
                if self.state.instances is not None:
                    await self._sleep(max(0.0, self.state.due - self._clock()))
                await self._ask()
        return found

    async def _ask(self) -> None:
        try:
            answer = await self._lookup()
        except Exception:
            self.state.failed(self._clock())
            raise
        known = len(self.state.instances or ())
        outcome = self.state.answered(self._clock(), answer)
        if outcome == "held":
            log.info("dns %s: %s; keeping its %d instance(s) unless the next answer says "
                     "the same", self.name, answer.empty, known)
        elif outcome == "changed" and not answer.instances and known:
            log.info("dns %s: %s again; it has no instances now", self.name, answer.empty)
        elif outcome == "changed":
            log.debug("dns %s: %d instance(s)", self.name, len(answer.instances))
