"""Background tasks that must never die silently.

A watch task that ends with an unexpected exception (a bug, not a catalog error: those are
retried inside the task) would leave ctmpl running without that watch, its templates never
rendered again. ``spawn`` creates a task whose unexpected end is logged with its traceback
and reported to the handler the runner installs, which stops the daemon with exit code 1
so that a supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
CrashHandler = Callable[[str, BaseException], None]

_handler: CrashHandler | None = None


def set_crash_handler(handler: CrashHandler | None) -> None:
    """Install (or, with None, remove) what is told when a spawned task dies."""
    global _handler
    _handler = handler


def spawn(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """``asyncio.create_task`` whose unexpected exception is logged and reported."""
    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(_check)
    return task


def _check(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is None:
        return
    name = task.get_name()
    log.error("internal task %r died: %r", name, exc, exc_info=exc)
    if _handler is not None:
        _handler(name, exc)
