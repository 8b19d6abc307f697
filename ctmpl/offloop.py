"""Run blocking work in a daemon thread and await its result from the event loop.

``asyncio.to_thread`` uses the loop's default executor, which ``asyncio.run`` joins at
exit: a long parse would then hold up a SIGTERM'd daemon until it finishes. A daemon
thread is simply abandoned when the process exits, so a stop is never delayed.

The rule for file work off the event loop: a parse that can take long and may be
abandoned (a catalog file) uses ``in_daemon_thread``; short work on one destination
(reading it, installing, rolling back, staging a check) uses ``asyncio.to_thread``, so a
stop waits for a write once begun.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def in_daemon_thread(name: str, func: Callable[[], T]) -> T:
    """``func()`` in a new daemon thread; its exception (if any) is raised here."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return  # the awaiting task was cancelled (the daemon is stopping)
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = func()
        except BaseException as exc:  # handed to the awaiting task, not lost in the thread
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name=name, daemon=True).start()
    return await future
