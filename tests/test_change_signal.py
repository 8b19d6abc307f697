"""The change signal every source uses: events and stamps by name, and timed waits."""

from __future__ import annotations

import asyncio

from ctmpl.change_signal import ANY, ChangeSignal, wait_changed


async def test_a_change_wakes_only_its_names_and_any() -> None:
    signal = ChangeSignal()
    web, db, anything = signal.changed("web"), signal.changed("db"), signal.changed(ANY)
    signal.touch(["web"])
    assert web.is_set() and anything.is_set() and not db.is_set()
    assert not signal.changed("web").is_set(), "the next change of web needs a new event"
    assert signal.woken == 2


async def test_stamps_grow_with_each_change_and_touch_all_moves_every_one() -> None:
    signal = ChangeSignal(fold=lambda name: str(name).lower())
    assert signal.stamp("Web") == signal.stamp("db") == 0
    signal.touch(["WEB"])
    first = signal.stamp("web")
    assert first > 0 and signal.stamp("db") == 0 and signal.stamp(ANY) == first
    db = signal.changed("db")
    signal.touch_all()
    assert db.is_set() and signal.stamp("db") > first and signal.stamp("web") > first


async def test_wait_past_returns_at_a_change_or_the_timeout() -> None:
    signal = ChangeSignal()
    assert await signal.wait_past("web", stamp=5, timeout=60) == 0, "a stale stamp answers"
    assert await signal.wait_past("web", stamp=0, timeout=0.01) == 0, "the timeout answers"
    waiter = asyncio.create_task(signal.wait_past("web", stamp=0, timeout=60))
    await asyncio.sleep(0)
    signal.touch(["db"])
    await asyncio.sleep(0)
    assert not waiter.done(), "another name's change does not wake it"
    signal.touch(["web"])
    assert await asyncio.wait_for(waiter, 5) == signal.stamp("web") > 0


async def test_wait_changed_treats_the_timeout_as_an_answer() -> None:
    event = asyncio.Event()
    await wait_changed(event, 0.01)
    assert not event.is_set()
    event.set()
    await asyncio.wait_for(wait_changed(event, 60), 5)
