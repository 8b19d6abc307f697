"""Helpers for tests that drive a catalog's queries directly, as ``ctmpl.watch`` does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ctmpl.errors import SourceError
from ctmpl.sources.base import Query

TIMEOUT = 20.0  # a change normally arrives in milliseconds; only a stalled machine needs more


def ids(data: Any) -> list[tuple[str, str, int, tuple[str, ...]]]:
    """Each instance as (ID, Address, Port, Tags)."""
    return [(i.ID, i.Address, i.Port, i.Tags) for i in data]


async def until(query: Query, ok: Callable[[Any], bool], index: int = 0,
                timeout: float = TIMEOUT) -> tuple[Any, int]:
    """Fetch like ctmpl.watch does (blocking on the last index) until ``ok(data)``."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                data, index = await query.fetch(index)
            except SourceError:
                await asyncio.sleep(0.1)
                continue
            if ok(data):
                return data, index


async def blocked(query: Query, index: int) -> asyncio.Task[tuple[object, int]]:
    """A fetch blocked on ``index`` (checked not to have answered within 0.1 s)."""
    task = asyncio.create_task(query.fetch(index))
    await asyncio.sleep(0.1)
    assert not task.done(), "fetch answered although nothing changed"
    return task
