"""Quiescence with a fake clock: every time below is a plain number, nothing sleeps."""

from __future__ import annotations

import pytest

from ctmpl.config.model import Wait
from ctmpl.quiesce import Quiescence


def test_idle_has_no_deadline() -> None:
    q = Quiescence(Wait(2, 10))
    assert q.fire_at() is None
    assert q.tick(1000.0) is False


def test_single_change_fires_after_min() -> None:
    q = Quiescence(Wait(2, 10))
    q.change(100.0)
    assert q.fire_at() == 102.0


def test_tick_before_deadline_returns_false() -> None:
    q = Quiescence(Wait(2, 10))
    q.change(100.0)
    assert q.tick(100.0) is False
    assert q.tick(101.999) is False
    assert q.fire_at() == 102.0


def test_tick_fires_exactly_once() -> None:
    q = Quiescence(Wait(2, 10))
    q.change(100.0)
    assert q.tick(102.0) is True
    assert q.tick(102.0) is False
    assert q.tick(500.0) is False
    assert q.fire_at() is None


def test_late_tick_still_fires() -> None:
    q = Quiescence(Wait(2, 10))
    q.change(100.0)
    assert q.tick(250.0) is True


def test_burst_restarts_min() -> None:
    q = Quiescence(Wait(2, 10))
    q.change(100.0)
    q.change(101.5)
    assert q.fire_at() == 103.5
    assert q.tick(102.0) is False
    q.change(103.0)
    assert q.fire_at() == 105.0
    assert q.tick(105.0) is True


def test_max_caps_the_burst() -> None:
    q = Quiescence(Wait(2, 5))
    t = 100.0
    q.change(t)
    while t < 104.0:
        t += 1.0
        q.change(t)
        assert q.tick(t) is False
    # The last change at 104 would push the deadline to 106; max caps it at 100 + 5.
    assert q.fire_at() == 105.0
    q.change(104.9)
    assert q.fire_at() == 105.0
    assert q.tick(105.0) is True


def test_disabled_wait_fires_at_the_change() -> None:
    q = Quiescence(Wait(0, 0))
    q.change(100.0)
    assert q.fire_at() == 100.0
    assert q.tick(100.0) is True
    assert q.fire_at() is None


def test_disabled_wait_ignores_max() -> None:
    q = Quiescence(Wait(0, 30))
    q.change(7.0)
    assert q.fire_at() == 7.0


def test_repeated_bursts_start_fresh() -> None:
    q = Quiescence(Wait(2, 5))
    q.change(100.0)
    q.change(104.0)
    assert q.tick(105.0) is True
    # The next burst measures max from its own first change, not from 100.
    q.change(200.0)
    assert q.fire_at() == 202.0
    q.change(201.0)
    q.change(203.0)
    assert q.fire_at() == 205.0
    q.change(204.5)
    assert q.fire_at() == 205.0
    assert q.tick(205.0) is True
    assert q.fire_at() is None


def test_change_after_fire_starts_new_burst() -> None:
    q = Quiescence(Wait(1, 3))
    q.change(10.0)
    assert q.tick(11.0) is True
    q.change(11.0)
    assert q.fire_at() == 12.0


def test_max_below_min_is_treated_as_min() -> None:
    q = Quiescence(Wait(4, 0))
    q.change(0.0)
    q.change(3.0)
    assert q.fire_at() == 4.0


@pytest.mark.parametrize(("wait", "changes", "expected"), [
    (Wait(1, 4), [0.0], 1.0),
    (Wait(1, 4), [0.0, 0.5, 1.2], 2.2),
    (Wait(1, 4), [0.0, 0.9, 1.8, 2.7, 3.6], 4.0),
])
def test_fire_at_table(wait: Wait, changes: list[float], expected: float) -> None:
    q = Quiescence(wait)
    for t in changes:
        q.change(t)
    assert q.fire_at() == pytest.approx(expected)
