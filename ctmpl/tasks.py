"""The task group: one owner for every background task, and no task that dies silently.

Every task ctmpl starts in the background (a watch, a catalog-wide long-poll, an etcd
watch stream, a file re-read, the exec child's waiter, the reaper) is created with
``spawn``. While a runner runs, ``spawn`` puts it in the runner's ``TaskGroup``: a task that
ends with an unexpected exception (a bug, not a catalog error: those are retried inside the
task) is logged with its traceback and reported to the group's crash handler, which stops
the daemon with exit code 1 so that a supervisor restarts it, instead of leaving it running
without that watch; and when the runner ends, the group cancels whatever is still running.
Outside a runner (a source used on its own), ``spawn`` still logs such a death.

The group also knows when the runner is in a pass (``busy``): a background task whose next
step is not urgent — a catalog-wide long-poll asking again after an answer that set off
that pass — can ``give_way`` to it, so that the pass runs without it on the same core.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
CrashHandler = Callable[[str, BaseException], None]


class TaskGroup:
    """Owns background tasks: reports an unexpected death, cancels the rest at the end."""

    def __init__(self, on_crash: CrashHandler | None = None) -> None:
        self._on_crash = on_crash
        self._tasks: set[asyncio.Task[Any]] = set()
        self._busy = 0
        self._idle: asyncio.Event | None = None  # set when the last busy stretch ends

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """``asyncio.create_task`` whose unexpected exception is logged and reported."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        assert exc is not None
        name = task.get_name()
        log.error("internal task %r died: %r", name, exc, exc_info=exc)
        if self._on_crash is not None:
            self._on_crash(name, exc)

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Mark work under way that background tasks give way to (``give_way``)."""
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            if not self._busy and self._idle is not None:
                self._idle.set()
                self._idle = None

    async def idle(self, limit: float) -> None:
        """Return once no busy work is under way, or after ``limit`` seconds."""
        if not self._busy:
            return
        if self._idle is None:
            self._idle = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await self._idle.wait()

    async def aclose(self) -> None:
        """Cancel every task still running and wait for them to end."""
        while self._tasks:
            pending = list(self._tasks)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


_loose = TaskGroup()  # tasks spawned outside a runner: their deaths are only logged
_current: TaskGroup | None = None


def spawn(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """Start ``coro`` as a task of the running group (see the module docstring)."""
    return (_current or _loose).spawn(coro, name)


async def give_way(limit: float) -> None:
    """Let the running group's busy work (a pass) end first, waiting at most ``limit``
    seconds; at once outside a runner."""
    if _current is not None:
        await _current.idle(limit)


@contextlib.asynccontextmanager
async def running(group: TaskGroup) -> AsyncIterator[TaskGroup]:
    """Make ``group`` the owner of every task spawned inside; cancel them all at the end."""
    global _current
    previous, _current = _current, group
    try:
        yield group
    finally:
        _current = previous
        await group.aclose()
