"""The DNS polling rules on a fake clock: TTL clamp, jitter, empty answers, errors."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctmpl.errors import SourceError
from ctmpl.model import Instance
from ctmpl.sources.dns_poll import Answer, NamePoller, NameState, PollTiming

TIMING = PollTiming(ttl_min=1.0, ttl_max=30.0, empty_repeats=2, jitter=0.1)


def inst(address: str) -> Instance:
    return Instance(Name="web", ID=f"{address}:80", Address=address, Port=80)


WEB = (inst("10.0.0.1"), inst("10.0.0.2"))
EMPTY = Answer((), 0.0, "NXDOMAIN")


@pytest.mark.parametrize("ttl, rng, delay", [
    (0, 0.0, 1.0),  # below the minimum: the minimum
    (5, 0.0, 5.0),  # inside: the TTL
    (300, 0.0, 30.0),  # above the maximum: the maximum
    (5, 1.0, 4.5),  # jitter brings a poll forward by up to 10%, never later
    (300, 0.5, 28.5),
])
def test_delay_clamps_the_ttl_and_jitters_early(ttl: float, rng: float, delay: float) -> None:
    assert TIMING.delay(ttl, lambda: rng) == pytest.approx(delay)


@given(st.floats(0, 1e6), st.floats(0, 1))
def test_delay_stays_between_the_bounds(ttl: float, rng: float) -> None:
    delay = TIMING.delay(ttl, lambda: rng)
    assert TIMING.ttl_min * (1 - TIMING.jitter) <= delay <= TIMING.ttl_max


def test_first_answer_counts_even_when_empty() -> None:
    state = NameState(TIMING, lambda: 0.0)
    assert state.answered(0.0, EMPTY) == "changed"
    assert state.instances == () and state.generation == 1


def test_one_empty_answer_is_held_and_asked_again_soon() -> None:
    state = NameState(TIMING, lambda: 0.0)
    state.answered(0.0, Answer(WEB, 20.0))
    assert state.due == 20.0
    assert state.answered(20.0, EMPTY) == "held"
    assert state.instances == WEB and state.generation == 1
    assert state.due == 21.0  # ttl_min later, not the answer's TTL
    assert state.answered(21.0, Answer(WEB, 20.0)) == "same"
    assert state.empties == 0 and state.due == 41.0


def test_a_repeated_empty_answer_empties_the_name() -> None:
    state = NameState(TIMING, lambda: 0.0)
    state.answered(0.0, Answer(WEB, 5.0))
    assert state.answered(5.0, EMPTY) == "held"
    assert state.answered(6.0, Answer((), 0.0, "no records")) == "changed"
    assert state.instances == () and state.generation == 2
    assert state.answered(7.0, EMPTY) == "same"  # already empty: nothing to hold


def test_an_error_keeps_the_data_and_is_due_at_once() -> None:
    state = NameState(TIMING, lambda: 0.0)
    state.answered(0.0, Answer(WEB, 5.0))
    state.answered(5.0, EMPTY)
    state.failed(5.5)
    assert state.instances == WEB and state.due == 5.5
    # An error is no answer: the empty answer after it is the repeat.
    assert state.answered(6.0, EMPTY) == "changed"


Step = tuple[str, int]  # ("answer", n instances) or ("error", 0)


@given(st.lists(st.one_of(st.tuples(st.just("answer"), st.integers(0, 2)),
                          st.tuples(st.just("error"), st.just(0))), max_size=30))
def test_known_instances_leave_only_after_repeated_empty_answers(steps: list[Step]) -> None:
    state = NameState(TIMING, lambda: 0.5)
    answers: list[int] = []
    for now, (kind, count) in enumerate(steps):
        before = state.instances
        if kind == "error":
            state.failed(float(now))
            assert state.instances == before
            continue
        state.answered(float(now), Answer(WEB[:count], 10.0))
        answers.append(count)
        if before and state.instances == ():
            assert answers[-2:] == [0, 0]
        if count:
            assert state.instances == WEB[:count]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def poller(answers: list[Answer | Exception], clock: FakeClock) -> tuple[NamePoller, list[float]]:
    asked: list[float] = []

    async def lookup() -> Answer:
        asked.append(clock.now)
        step = answers.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    return NamePoller("tasks.web", lookup, TIMING, clock=clock.clock, sleep=clock.sleep,
                      rng=lambda: 0.0), asked


async def test_poller_asks_at_once_then_on_the_ttl_until_the_data_changes() -> None:
    clock = FakeClock()
    same, more = Answer(WEB[:1], 5.0), Answer(WEB, 5.0)
    names, asked = poller([same, same, same, more], clock)
    assert await names.wait_past(0) == (WEB[:1], 1)
    assert asked == [0.0]
    assert await names.wait_past(1) == (WEB, 2)
    assert asked == [0.0, 5.0, 10.0, 15.0]
    assert await names.wait_past(0) == (WEB, 2)  # a new query gets the data without asking
    assert len(asked) == 4


async def test_poller_error_raises_and_the_retry_asks_at_once() -> None:
    clock = FakeClock()
    names, asked = poller([Answer(WEB, 30.0), SourceError("SERVFAIL"), Answer(WEB[:1], 30.0)],
                          clock)
    await names.wait_past(0)
    with pytest.raises(SourceError, match="SERVFAIL"):
        await names.wait_past(1)
    assert names.state.instances == WEB and asked == [0.0, 30.0]
    clock.now += 0.25  # the watch's backoff
    assert await names.wait_past(1) == (WEB[:1], 2)
    assert asked == [0.0, 30.0, 30.25]


async def test_poller_shares_one_lookup_between_queries() -> None:
    clock = FakeClock()
    names, asked = poller([Answer(WEB[:1], 5.0), Answer(WEB, 5.0)], clock)
    await names.wait_past(0)
    first, second = await asyncio.gather(names.wait_past(1), names.wait_past(1))
    assert first == second == (WEB, 2)
    assert asked == [0.0, 5.0]
