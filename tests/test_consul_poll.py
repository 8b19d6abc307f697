"""The catalog-wide long-poll loop: the next request gives way to the pass an answer set off."""

from __future__ import annotations

import asyncio

import pytest

from ctmpl import tasks
from ctmpl.config.model import Retry
from ctmpl.sources import consul_poll
from ctmpl.sources.consul_http import Answer
from ctmpl.sources.consul_poll import Params, Poll
from tests.daemon import poll_until


class Agent:
    """Answers with a new index each time; the third request blocks."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    async def __call__(self, key: str, path: str, params: Params, index: int) -> Answer:
        self.asked.append(index)
        if len(self.asked) > 2:
            await asyncio.sleep(3600)
        return Answer(index=10 * len(self.asked), raw=b"[]")


async def test_the_next_request_waits_for_the_pass_the_answer_set_off() -> None:
    agent, group = Agent(), tasks.TaskGroup()
    passes: list[str] = []

    async def run_pass() -> None:
        with group.busy():
            for _ in range(10):  # the render, a thread round trip for the write, …
                await asyncio.sleep(0)
            passes.append(f"pass after {len(agent.asked)} request(s)")

    def on_answer(answer: Answer) -> None:
        pending.append(asyncio.create_task(run_pass()))

    pending: list[asyncio.Task[None]] = []
    poll = Poll(agent, "catalog.feed(ui/nodes)", "/v1/internal/ui/nodes", (), retry=Retry(),
                on_answer=on_answer, on_error=lambda error: False, hand_over=True)
    async with tasks.running(group):
        task = tasks.spawn(poll.run(), "poll")
        await poll_until(lambda: len(agent.asked) >= 3)
        task.cancel()
        await asyncio.gather(task, *pending, return_exceptions=True)
    assert passes == ["pass after 1 request(s)", "pass after 2 request(s)"]
    assert agent.asked == [0, 10, 20]  # each asked with the last answer's index


async def test_a_poll_whose_answers_set_off_reads_asks_again_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fallback's polls: the reads their answers set off share the connections, and
    the next long-poll must not queue behind them."""
    monkeypatch.setattr(consul_poll, "_GIVE_WAY", 3600.0)  # a poll that gave way would hang
    agent, group = Agent(), tasks.TaskGroup()
    poll = Poll(agent, "catalog.feed(services)", "/v1/catalog/services", (), retry=Retry(),
                on_answer=lambda answer: None, on_error=lambda error: False)
    async with tasks.running(group):
        with group.busy():  # a pass that never ends here
            task = tasks.spawn(poll.run(), "poll")
            await poll_until(lambda: len(agent.asked) >= 3, timeout=5.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert agent.asked == [0, 10, 20]
