"""The sidekick loop: check every interval, keep the registration in step with the result.

Each tick runs the check, feeds rise/fall, then brings the registry in line: healthy →
registered and refreshed (etcd lease kept alive, Consul TTL check passed), unhealthy →
removed (etcd) or failing (Consul). A registry that is down is retried with backoff while
the checks go on; the sidekick never exits for that. A stop request removes the
registration at once. Time comes from a ``Clock`` so tests can drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from ctmpl.register.base import Backoff, Health, Registry, RegistryDown
from ctmpl.register.checks import Checker, Outcome

log = logging.getLogger("ctmpl.register")

BACKOFF_CAP = 30.0


class Clock(Protocol):
    """Monotonic time and an interruptible wait."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait ``seconds`` or until ``event`` is set; True when it is set."""


class LoopClock:
    """The event loop's clock."""

    def now(self) -> float:
        """The loop's monotonic time."""
        return asyncio.get_running_loop().time()

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait ``seconds`` or until ``event`` is set."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await event.wait()
        return event.is_set()


class Sidekick:
    """One instance's check loop and its registration."""

    def __init__(
        self,
        checker: Checker,
        registry: Registry,
        *,
        interval: float,
        rise: int,
        fall: int,
        op_timeout: float,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.checker = checker
        self.registry = registry
        self.interval = interval
        self.health = Health(rise, fall)
        self.op_timeout = op_timeout
        self.clock = clock or LoopClock()
        self.backoff = backoff or Backoff(min(1.0, interval), max(interval, BACKOFF_CAP))
        self.registry_down = False
        self.stopping = asyncio.Event()

    def request_stop(self) -> None:
        """Signal handler: stop after the current step and deregister."""
        self.stopping.set()

    async def run(self) -> int:
        """Tick every interval until a stop is requested, then deregister; returns 0."""
        try:
            while not self.stopping.is_set():
                started = self.clock.now()
                await self._until_stopped(self.tick())
                delay = started + self.interval - self.clock.now()
                await self.clock.wait(self.stopping, delay)
            await self.deregister()
        finally:
            await self.aclose()
        return 0

    async def tick(self) -> Outcome:
        """One check and the registry update it calls for."""
        outcome = await self.checker.check()
        self.observe(outcome)
        await self.sync(outcome.detail)
        return outcome

    def observe(self, outcome: Outcome) -> None:
        """Feed rise/fall and log the state changes and the checks that may cause one."""
        before = self.health.healthy
        what = f"{self.registry.what}: check {self.checker.spec.describe()}"
        if self.health.observe(outcome.ok):
            state = "healthy" if self.health.healthy else "unhealthy"
            log.info("%s: %s (%s)", what, state, outcome.detail)
        elif before and not outcome.ok:
            log.warning("%s failed (%d of %d before unhealthy): %s",
                        what, self.health.streak, self.health.fall, outcome.detail)
        elif before is False and outcome.ok:
            log.info("%s passed (%d of %d before healthy)", what, self.health.streak,
                     self.health.rise)

    async def sync(self, detail: str) -> bool:
        """Bring the registry in line with the health state; False when it is unreachable."""
        now = self.clock.now()
        if not self.backoff.ready(now):
            return False
        try:
            async with asyncio.timeout(self.op_timeout):
                if self.health.healthy:
                    event = await self.registry.healthy(detail)
                else:
                    event = await self.registry.unhealthy(detail)
        except (RegistryDown, TimeoutError) as exc:
            reason = str(exc) if isinstance(exc, RegistryDown) else "no answer in time"
            delay = self.backoff.failed(now)
            level = logging.DEBUG if self.registry_down else logging.WARNING
            log.log(level, "%s: registry unreachable: %s; retrying in %.1fs",
                    self.registry.what, reason, delay)
            self.registry_down = True
            return False
        self.backoff.succeeded()
        if self.registry_down:
            log.info("%s: registry reachable again", self.registry.what)
            self.registry_down = False
        if event:
            log.info("%s", event)
        return True

    async def once(self) -> bool:
        """``-once``: one check, one registry update; raises RegistryDown when unreachable.

        Returns whether the instance was healthy."""
        try:
            outcome = await self.checker.check()
            self.observe(outcome)
            async with asyncio.timeout(self.op_timeout):
                if outcome.ok:
                    event = await self.registry.healthy(outcome.detail)
                else:
                    event = await self.registry.unhealthy(outcome.detail)
        except TimeoutError:
            raise RegistryDown(f"{self.registry.what}: no answer within "
                               f"{self.op_timeout:g}s") from None
        finally:
            await self.aclose()
        if event:
            log.info("%s", event)
        return outcome.ok

    async def deregister(self) -> None:
        """Remove the registration now (on stop); a failure is logged, not raised."""
        try:
            async with asyncio.timeout(self.op_timeout):
                event = await self.registry.stop()
        except (RegistryDown, TimeoutError) as exc:
            reason = str(exc) if isinstance(exc, RegistryDown) else "no answer in time"
            log.error("%s: could not deregister at stop: %s (the lease or TTL ends it)",
                      self.registry.what, reason)
            return
        log.info("%s", event or f"{self.registry.what}: not registered; nothing to remove")

    async def aclose(self) -> None:
        """Close the checker's and the registry's connections."""
        await self.checker.aclose()
        await self.registry.aclose()

    async def _until_stopped(self, step: Coroutine[Any, Any, object]) -> None:
        """Run ``step``, abandoning it when a stop is requested meanwhile."""
        task = asyncio.ensure_future(step)
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error
