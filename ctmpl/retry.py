"""Retrying a proxy reload that failed, with capped exponential backoff on an injected clock.

A failed reload (nginx refused the new config at runtime, a port was taken, the master
died) leaves the proxy running something other than the installed files. Waiting for the
next catalog change could take hours, so the runner tries again: after ``first`` seconds,
then twice as long each time, never more than ``cap`` apart, until an attempt succeeds.
Every attempt's outcome is logged. Nothing here knows which proxy it drives: the attempt
is a callable, so the nginx and HAProxy controllers share it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ctmpl.errors import CtmplError

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY = 1.0
MAX_DELAY = 60.0


@dataclass
class Backoff:
    """Delays ``first``, ``2*first``, ``4*first``, … capped at ``cap``; pure, clock injected."""

    first: float = FIRST_DELAY
    cap: float = MAX_DELAY
    failures: int = 0
    next_at: float | None = None

    def failed(self, now: float) -> float:
        """Record a failure at ``now``; return the delay until the next attempt."""
        delay = min(self.cap, self.first * 2.0 ** min(self.failures, 62))
        self.failures += 1
        self.next_at = now + delay
        return delay

    def reset(self) -> None:
        """Forget the failures (after a success)."""
        self.failures = 0
        self.next_at = None

    def due(self, now: float) -> bool:
        """True when no attempt is scheduled or its time has come."""
        return self.next_at is None or now >= self.next_at


class ProxyRetry:
    """Tracks whether the proxy runs the installed config and retries until it does."""

    def __init__(self, name: str, backoff: Backoff | None = None) -> None:
        self.name = name
        self.backoff = backoff or Backoff()
        self.pending = True  # unknown at start: reconcile once

    def applied(self) -> None:
        """A reload or start in a pass succeeded: the proxy runs the installed config."""
        if self.backoff.failures:
            log.info("%s: the installed config is live again", self.name)
        self.pending = False
        self.backoff.reset()

    def failed(self, now: float, error: BaseException) -> None:
        """A reload or start failed at ``now``: schedule the next attempt and say when."""
        self.pending = True
        delay = self.backoff.failed(now)
        log.warning("%s: attempt %d to run the installed config failed: %s; retrying in %gs",
                    self.name, self.backoff.failures, error, delay)

    def due(self, now: float) -> bool:
        """True when an attempt should run now."""
        return self.pending and self.backoff.due(now)

    def deadline(self) -> float | None:
        """When the runner must wake up for the next attempt (None: nothing scheduled)."""
        return self.backoff.next_at if self.pending else None

    async def attempt(self, now: float, action: Callable[[], Awaitable[T]]) -> T | None:
        """Run ``action`` if due; its result, or None when not due or when it failed."""
        if not self.due(now):
            return None
        retry = self.backoff.failures
        try:
            outcome = await action()
        except CtmplError as exc:
            self.failed(now, exc)
            return None
        if retry:
            log.info("%s: attempt %d succeeded (%s)", self.name, retry + 1, outcome)
        self.applied()
        return outcome
