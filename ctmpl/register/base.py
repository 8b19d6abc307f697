"""The pieces of the sidekick that hold no I/O: rise/fall, registry backoff, the Registry seam.

Terms. *Rise*: consecutive passing checks that make an unhealthy instance healthy. *Fall*:
consecutive failing checks that make a healthy instance unhealthy. The very first check
decides the starting state on its own, so a healthy instance is registered at once.
"""

from __future__ import annotations

import random
from typing import Protocol

from ctmpl.errors import SourceError


class RegistryDown(SourceError):
    """The registry could not be reached or refused the request; retried with backoff."""


class Registry(Protocol):
    """Where the instance is registered. Each call returns a line to log when it changed
    something (``registered …``), None when it only refreshed what was there."""

    what: str  # e.g. "etcd key services/web/a" — how logs name the registration

    async def healthy(self, detail: str) -> str | None:
        """Make sure the instance is registered (and its lease or TTL check refreshed)."""

    async def unhealthy(self, detail: str) -> str | None:
        """Make sure the instance is not offered to clients."""

    async def stop(self) -> str | None:
        """Remove the registration for good (the sidekick is stopping)."""

    async def aclose(self) -> None:
        """Close connections."""


class Health:
    """Rise/fall hysteresis over check results; ``healthy`` is None before the first check."""

    def __init__(self, rise: int, fall: int) -> None:
        self.rise = rise
        self.fall = fall
        self.healthy: bool | None = None
        self.streak = 0  # consecutive results that disagree with the current state

    def observe(self, ok: bool) -> bool:
        """Feed one check result; True when the state changed."""
        if self.healthy is None or ok == self.healthy:
            changed = self.healthy is None
            self.healthy, self.streak = ok, 0
            return changed
        self.streak += 1
        if self.streak >= (self.rise if ok else self.fall):
            self.healthy, self.streak = ok, 0
            return True
        return False


class Backoff:
    """Exponential backoff with jitter between attempts to reach a registry that is down."""

    def __init__(self, first: float, cap: float, rng: random.Random | None = None) -> None:
        self.first = first
        self.cap = max(cap, first)
        self.failures = 0
        self._next = 0.0
        self._rng = rng or random.Random()

    def ready(self, now: float) -> bool:
        """True when the next attempt may be made."""
        return now >= self._next

    def failed(self, now: float) -> float:
        """Record a failure at ``now``; returns the delay before the next attempt."""
        delay = min(self.cap, self.first * 2.0**self.failures)
        delay *= self._rng.uniform(0.8, 1.0)  # spread the sidekicks of a restarted registry
        self.failures += 1
        self._next = now + delay
        return delay

    def succeeded(self) -> None:
        """The registry answered: the next failure starts from ``first`` again."""
        self.failures = 0
        self._next = 0.0
