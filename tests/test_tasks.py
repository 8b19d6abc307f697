"""The task group's busy stretches, and background work that gives way to them."""

from __future__ import annotations

import asyncio

from ctmpl import tasks


async def test_give_way_waits_for_the_busy_stretch_to_end() -> None:
    group = tasks.TaskGroup()
    order: list[str] = []

    async def background() -> None:
        await tasks.give_way(60.0)
        order.append("background")

    async with tasks.running(group):
        with group.busy():
            task = tasks.spawn(background(), "background")
            for _ in range(5):
                await asyncio.sleep(0)
            order.append("pass done")
        await task
    assert order == ["pass done", "background"]


async def test_give_way_waits_no_longer_than_its_limit() -> None:
    group = tasks.TaskGroup()
    async with tasks.running(group):
        with group.busy():
            await tasks.give_way(0.01)  # returns although the stretch goes on


async def test_give_way_returns_at_once_when_idle_or_outside_a_runner() -> None:
    await tasks.give_way(60.0)
    async with tasks.running(tasks.TaskGroup()):
        await tasks.give_way(60.0)
