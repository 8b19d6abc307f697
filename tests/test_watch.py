"""The blocking-query rules of ctmpl.watch, with a scripted query and a fake clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from ctmpl.config.model import Retry
from ctmpl.errors import SourceError
from ctmpl.watch import (
    QueryWatch,
    Watcher,
    WatchPolicy,
    backoff_delay,
    next_index,
    versioned_index,
)

Step = tuple[object, int] | BaseException


class ScriptedQuery:
    """Answers fetches from a script; records the index each fetch was given."""

    def __init__(self, key: str, script: list[Step]) -> None:
        self.key = key
        self.script = list(script)
        self.indexes: list[int] = []

    async def fetch(self, index: int) -> tuple[object, int]:
        self.indexes.append(index)
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


class FakeTime:
    """A clock that only moves when the watch sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Recorder:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, object]] = []
        self.failed: list[tuple[str, BaseException]] = []

    def emit(self, key: str, data: object) -> None:
        self.emitted.append((key, data))

    def fail(self, key: str, exc: BaseException) -> None:
        self.failed.append((key, exc))


DEFAULT_RETRY = Retry(backoff=1.0, max_backoff=8.0)


def make(
    script: list[Step], retry: Retry = DEFAULT_RETRY,
    rng: Callable[[], float] = lambda: 0.5,
) -> tuple[QueryWatch, ScriptedQuery, Recorder, FakeTime]:
    query = ScriptedQuery("q", script)
    rec, fake = Recorder(), FakeTime()
    watch = QueryWatch(query, WatchPolicy(retry=retry), rec.emit, rec.fail,
                       sleep=fake.sleep, clock=fake.clock, rng=rng)
    return watch, query, rec, fake


async def steps(watch: QueryWatch, count: int) -> list[bool]:
    return [await watch.step() for _ in range(count)]


def test_next_index() -> None:
    assert next_index(0, 5) == 5
    assert next_index(5, 7) == 7
    assert next_index(7, 3) == 0
    assert next_index(7, 0) == 0
    assert next_index(7, 7) == 7


async def test_passes_last_index_and_emits_changes() -> None:
    watch, query, rec, _ = make([("a", 5), ("b", 9), ("c", 12)])
    assert await steps(watch, 3) == [True, True, True]
    assert query.indexes == [0, 5, 9]
    assert rec.emitted == [("q", "a"), ("q", "b"), ("q", "c")]


async def test_unchanged_index_emits_nothing() -> None:
    watch, query, rec, _ = make([("a", 5), ("a", 5), ("a", 5), ("b", 6)])
    await steps(watch, 4)
    assert rec.emitted == [("q", "a"), ("q", "b")]
    assert query.indexes == [0, 5, 5, 5]


async def test_same_index_with_new_data_is_emitted() -> None:
    # A restarted server can reach the old index number again with other data:
    # the data decides, so the change is never lost.
    watch, _, rec, _ = make([("a", 5), ("restarted", 5)])
    await steps(watch, 2)
    assert rec.emitted == [("q", "a"), ("q", "restarted")]


async def test_equal_data_with_new_index_emits_nothing() -> None:
    watch, query, rec, _ = make([((1, 2), 5), ((1, 2), 8), ((1, 2, 3), 9)])
    await steps(watch, 3)
    assert rec.emitted == [("q", (1, 2)), ("q", (1, 2, 3))]
    assert query.indexes == [0, 5, 8]


async def test_empty_first_answer_is_emitted() -> None:
    watch, _, rec, _ = make([((), 1)])
    await watch.step()
    assert rec.emitted == [("q", ())]


async def test_backwards_index_resets_to_zero() -> None:
    watch, query, rec, _ = make([("a", 50), ("b", 10), ("c", 11), ("c", 0), ("d", 3)])
    await steps(watch, 5)
    assert query.indexes == [0, 50, 0, 11, 0]
    assert rec.emitted == [("q", "a"), ("q", "b"), ("q", "c"), ("q", "d")]


async def test_errors_back_off_keep_data_and_log_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    boom = SourceError("q: connection refused")
    watch, query, rec, fake = make([("a", 5), boom, boom, boom, boom, boom, ("a", 6), ("b", 7)])
    with caplog.at_level(logging.DEBUG, logger="ctmpl.watch"):
        assert await steps(watch, 8) == [True] * 8
    assert fake.sleeps == [1.0, 2.0, 4.0, 8.0, 8.0]  # doubling, capped (rng 0.5: no jitter)
    assert query.indexes == [0, 5, 5, 5, 5, 5, 5, 6]  # the last index is kept while failing
    assert rec.emitted == [("q", "a"), ("q", "b")]  # recovery with equal data emits nothing
    assert rec.failed == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["q: connection refused (retrying; keeping the last good data)"]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["q: recovered after 5 failed attempt(s)"]


async def test_attempts_exhausted_calls_fail() -> None:
    boom = RuntimeError("down")
    watch, _, rec, fake = make([boom, boom, boom, ("never", 1)],
                               retry=Retry(attempts=3, backoff=0.5, max_backoff=1.0))
    assert await steps(watch, 3) == [True, True, False]
    assert [k for k, _ in rec.failed] == ["q"]
    assert rec.failed[0][1] is boom
    assert fake.sleeps == [0.5, 1.0]
    assert rec.emitted == []


async def test_retry_disabled_fails_at_once() -> None:
    watch, _, rec, fake = make([RuntimeError("x")], retry=Retry(enabled=False))
    assert await watch.step() is False
    assert len(rec.failed) == 1 and fake.sleeps == []


def test_backoff_delay_jitter_and_cap() -> None:
    retry = Retry(backoff=1.0, max_backoff=10.0)
    assert backoff_delay(retry, 1, lambda: 0.0) == 0.75
    assert backoff_delay(retry, 1, lambda: 1.0) == 1.25
    assert backoff_delay(retry, 3, lambda: 0.5) == 4.0
    assert backoff_delay(retry, 20, lambda: 1.0) == 10.0


async def test_run_rate_limits_and_stops_when_retries_run_out() -> None:
    boom = RuntimeError("x")
    watch, _, rec, fake = make([("a", 1), ("b", 2), boom],
                                   retry=Retry(attempts=1, backoff=1.0, max_backoff=1.0),
                                   rng=lambda: 1.0)
    await asyncio.wait_for(watch.run(), 5)
    # min_interval 0.1 + jitter 0.05 * rng between two fetches of the same query
    assert fake.sleeps == [pytest.approx(0.15), pytest.approx(0.15)]
    assert rec.emitted == [("q", "a"), ("q", "b")]
    assert len(rec.failed) == 1


async def test_cancellation_propagates() -> None:
    gate = asyncio.Event()

    class Blocking:
        key = "blocking"

        async def fetch(self, index: int) -> tuple[object, int]:
            gate.set()
            await asyncio.sleep(3600)
            return None, 0

    rec = Recorder()
    task = asyncio.create_task(QueryWatch(Blocking(), WatchPolicy(), rec.emit, rec.fail).run())
    await asyncio.wait_for(gate.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rec.failed == []


async def test_watcher_one_task_per_key() -> None:
    rec = Recorder()
    both = asyncio.Event()

    def emit(key: str, data: object) -> None:
        rec.emit(key, data)
        if len(rec.emitted) == 2:
            both.set()

    watcher = Watcher(WatchPolicy(), emit, rec.fail)

    class Slow:
        def __init__(self, key: str) -> None:
            self.key = key

        async def fetch(self, index: int) -> tuple[object, int]:
            if index:
                await asyncio.sleep(3600)
            return self.key, 1

    watcher.add(Slow("a"))
    watcher.add(Slow("a"))
    watcher.add(Slow("b"))
    assert watcher.keys() == {"a", "b"}
    await asyncio.wait_for(both.wait(), 10)
    assert sorted(rec.emitted) == [("a", "a"), ("b", "b")]
    watcher.remove({"a", "zzz"})
    assert watcher.keys() == {"b"}
    await watcher.aclose()
    assert watcher.keys() == set()


def test_a_versioned_index_drops_at_each_restart_so_watches_reset() -> None:
    before = versioned_index(10**6, restarts=0)
    after = versioned_index(10**6 + 1, restarts=1)
    assert 0 < after < before and versioned_index(1, 0) > versioned_index(10**9, 1)
    assert next_index(before, after) == 0, "a restart resets the watch's index"
    assert next_index(after, versioned_index(10**6 + 2, restarts=1)) > after
