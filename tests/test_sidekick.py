"""The sidekick's timing logic with a fake clock, a scripted check and a fake registry."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctmpl.register.base import Backoff, Health, RegistryDown
from ctmpl.register.checks import Outcome
from ctmpl.register.sidekick import Sidekick
from ctmpl.register.spec import CheckSpec


class FakeClock:
    """Time moves only when the sidekick waits."""

    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)
        return event.is_set()


class ScriptedChecker:
    """Returns the scripted results, one per check; the check itself takes ``cost`` seconds."""

    spec = CheckSpec("tcp", host="127.0.0.1", port=80)

    def __init__(self, clock: FakeClock, results: Iterable[bool], cost: float = 0.0) -> None:
        self.clock = clock
        self.results = list(results)
        self.cost = cost
        self.times: list[float] = []
        self.on_empty: Sidekick | None = None

    async def check(self) -> Outcome:
        self.times.append(self.clock.t)
        self.clock.t += self.cost
        if len(self.results) == 1 and self.on_empty is not None:
            self.on_empty.request_stop()
        ok = self.results.pop(0) if self.results else True
        return Outcome(ok, "ok" if ok else "refused")

    async def aclose(self) -> None:
        pass


class FakeRegistry:
    """Records every call with the fake time; ``down`` makes calls fail."""

    what = "fake"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[tuple[float, str]] = []
        self.registered = False
        self.down = False
        self.closed = False

    async def _call(self, name: str) -> str | None:
        self.calls.append((self.clock.t, name))
        if self.down:
            raise RegistryDown("connection refused (fake)")
        was, self.registered = self.registered, name == "healthy"
        return None if was == self.registered else f"{name}"

    async def healthy(self, detail: str) -> str | None:
        return await self._call("healthy")

    async def unhealthy(self, detail: str) -> str | None:
        return await self._call("unhealthy")

    async def stop(self) -> str | None:
        return await self._call("stop")

    async def aclose(self) -> None:
        self.closed = True


def make(
    results: Iterable[bool], rise: int = 2, fall: int = 2, cost: float = 0.0
) -> tuple[Sidekick, ScriptedChecker, FakeRegistry, FakeClock]:
    clock = FakeClock()
    checker = ScriptedChecker(clock, results, cost)
    registry = FakeRegistry(clock)
    sidekick = Sidekick(
        checker, registry, interval=5.0, rise=rise, fall=fall, op_timeout=2.0,  # type: ignore[arg-type]
        clock=clock, backoff=Backoff(1.0, 30.0, random.Random(1)),
    )
    checker.on_empty = sidekick
    return sidekick, checker, registry, clock


def states(registry: FakeRegistry) -> list[str]:
    return [name for _, name in registry.calls]


async def test_checks_every_interval_and_registers_at_once() -> None:
    sidekick, checker, registry, _ = make([True, True, True], cost=0.5)
    assert await sidekick.run() == 0
    assert checker.times == [100.0, 105.0, 110.0]  # from the start of one check to the next
    assert states(registry) == ["healthy", "healthy", "healthy", "stop"]
    assert registry.closed


async def test_fall_failures_deregister_within_fall_intervals() -> None:
    sidekick, _, registry, _ = make([True, False, False, False], fall=2)
    await sidekick.run()
    assert states(registry) == ["healthy", "healthy", "unhealthy", "unhealthy", "stop"]
    assert registry.calls[2][0] - registry.calls[0][0] == 10.0  # one interval per fall


async def test_one_failure_does_not_flap() -> None:
    sidekick, _, registry, _ = make([True, False, True, False, True], fall=2)
    await sidekick.run()
    assert "unhealthy" not in states(registry)


async def test_rise_passes_before_registering_again() -> None:
    sidekick, _, registry, _ = make([False, True, True, True], rise=3)
    await sidekick.run()
    assert states(registry) == ["unhealthy", "unhealthy", "unhealthy", "healthy", "stop"]


async def test_registry_down_backs_off_and_never_exits(caplog: pytest.LogCaptureFixture) -> None:
    sidekick, checker, registry, _ = make([True] * 40)
    registry.down = True
    task = asyncio.ensure_future(sidekick.run())
    for _ in range(10_000):  # let the sidekick run half of its checks
        if len(checker.results) <= 20:
            break
        await asyncio.sleep(0)
    attempts = [t for t, _ in registry.calls]
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps == sorted(gaps), "waits grow while the registry stays down"
    assert len(attempts) < 20 - 1, "fewer attempts than checks: it backs off"
    assert gaps[-1] <= 30.0 + 5.0, "backoff is capped (plus one interval of granularity)"
    warnings = [r for r in caplog.records if "registry unreachable" in r.getMessage()
                and r.levelname == "WARNING"]
    assert len(warnings) == 1, "one warning per outage, the retries at DEBUG"
    registry.down = False
    assert await task == 0
    assert "registry reachable again" in caplog.text
    assert states(registry)[-2:] == ["healthy", "stop"]


async def test_stop_deregisters_during_a_slow_check() -> None:
    clock = FakeClock()
    registry = FakeRegistry(clock)
    blocked = asyncio.Event()

    class Hanging(ScriptedChecker):
        async def check(self) -> Outcome:
            if registry.calls:
                blocked.set()
                await asyncio.Event().wait()
            return Outcome(True, "ok")

    sidekick = Sidekick(Hanging(clock, []), registry, interval=5.0, rise=2, fall=2,  # type: ignore[arg-type]
                        op_timeout=2.0, clock=clock)
    task = asyncio.ensure_future(sidekick.run())
    await blocked.wait()
    sidekick.request_stop()
    assert await asyncio.wait_for(task, 5) == 0
    assert states(registry) == ["healthy", "stop"]


async def test_once_reports_health_and_raises_when_registry_down() -> None:
    sidekick, _, registry, _ = make([False])
    assert await sidekick.once() is False
    assert states(registry) == ["unhealthy"]
    sidekick, _, registry, _ = make([True])
    registry.down = True
    with pytest.raises(RegistryDown):
        await sidekick.once()


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 5), st.integers(1, 5))
def test_health_follows_rise_and_fall(results: list[bool], rise: int, fall: int) -> None:
    health = Health(rise, fall)
    state: bool | None = None
    run: list[bool] = []
    for ok in results:
        changed = health.observe(ok)
        run = [*run, ok] if run and run[-1] == ok else [ok]
        if state is None or (ok != state and len(run) >= (rise if ok else fall)):
            expected = ok
        else:
            expected = state
        assert changed == (expected != state)
        state = expected
        assert health.healthy == state


@given(st.integers(1, 50))
def test_backoff_grows_to_the_cap(failures: int) -> None:
    backoff = Backoff(0.5, 30.0, random.Random(failures))
    delays = [backoff.failed(float(n)) for n in range(failures)]
    assert all(0.4 <= d <= 30.0 for d in delays)
    assert not backoff.ready(float(failures - 1) + delays[-1] - 0.01)
    assert backoff.ready(float(failures - 1) + delays[-1])
    backoff.succeeded()
    assert backoff.ready(0.0)


async def test_stop_with_the_registry_down_logs_and_exits_0(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sidekick, _, registry, _ = make([True, True])
    registry.down = True
    assert await sidekick.run() == 0
    assert states(registry)[-1] == "stop"
    assert "could not deregister at stop: connection refused (fake)" in caplog.text
    assert registry.closed
