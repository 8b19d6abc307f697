"""Reload retry: capped exponential backoff on a fake clock, every attempt logged."""

from __future__ import annotations

import logging

import pytest

from ctmpl.errors import ProxyError
from ctmpl.retry import Backoff, ProxyRetry


def test_backoff_doubles_and_caps() -> None:
    backoff = Backoff(first=1.0, cap=10.0)
    assert backoff.due(0.0)
    delays = [backoff.failed(100.0) for _ in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.next_at == 110.0
    assert not backoff.due(109.9) and backoff.due(110.0)
    backoff.reset()
    assert backoff.due(0.0) and backoff.failed(0.0) == 1.0


def test_backoff_survives_many_failures() -> None:
    backoff = Backoff(first=0.5, cap=60.0)
    for _ in range(10_000):
        delay = backoff.failed(0.0)
    assert delay == 60.0


async def test_retry_schedule_with_a_fake_clock(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    retry = ProxyRetry("nginx", Backoff(first=1.0, cap=4.0))
    results = iter([ProxyError("reload refused"), ProxyError("port taken"),
                    ProxyError("still taken"), "reloaded"])
    calls: list[float] = []
    now = 0.0

    async def action() -> str:
        calls.append(now)
        result = next(results)
        if isinstance(result, Exception):
            raise result
        return result

    retry.failed(now, ProxyError("the pass's reload failed"))  # attempt 1, in the pass
    for now in [0.5, 1.0, 1.5, 2.9, 3.0, 6.9, 7.0, 10.0, 11.0, 12.0]:
        await retry.attempt(now, action)
    assert calls == [1.0, 3.0, 7.0, 11.0]
    assert not retry.pending and retry.deadline() is None
    lines = [r.getMessage() for r in caplog.records if r.name == "ctmpl.retry"]
    assert lines == [
        "nginx: attempt 1 to run the installed config failed: the pass's reload failed; "
        "retrying in 1s",
        "nginx: attempt 2 to run the installed config failed: reload refused; retrying in 2s",
        "nginx: attempt 3 to run the installed config failed: port taken; retrying in 4s",
        "nginx: attempt 4 to run the installed config failed: still taken; retrying in 4s",
        "nginx: attempt 5 succeeded (reloaded)",
        "nginx: the installed config is live again",
    ]


async def test_a_successful_pass_cancels_the_retry() -> None:
    retry = ProxyRetry("haproxy")
    retry.failed(0.0, ProxyError("x"))
    assert retry.deadline() == 1.0
    retry.applied()
    assert retry.deadline() is None and not retry.due(100.0)


async def test_startup_attempt_is_due_at_once_and_not_repeated() -> None:
    retry = ProxyRetry("nginx")
    assert retry.due(0.0)

    async def ok() -> str:
        return "current"

    assert await retry.attempt(0.0, ok) == "current"
    assert not retry.due(1000.0)
