"""Reap orphaned processes when ctmpl is a container's PID 1 or a child subreaper.

Processes whose parent dies are handed to PID 1 (or to the nearest ancestor marked with
``prctl(PR_SET_CHILD_SUBREAPER)``): nginx workers of a killed master, daemons started by
a check or a command. Nobody else will ``wait()`` for them, so each would stay a zombie.

ctmpl's own children are waited for by whoever started them (asyncio's child watcher or
``subprocess``), at once. Reaping them here would steal their exit status, so the reaper
only takes zombies that stayed zombies for a whole scan interval, and never the pids
``protected`` names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def _prctl(option: int, arg: object) -> int:
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return int(libc.prctl(option, arg, 0, 0, 0))


def set_subreaper() -> bool:
    """Mark this process a child subreaper (Linux); False where that is not possible."""
    try:
        return _prctl(PR_SET_CHILD_SUBREAPER, 1) == 0
    except (OSError, AttributeError):
        return False


def is_subreaper() -> bool:
    """True when this process adopts orphaned descendants (Linux ``PR_GET_CHILD_SUBREAPER``)."""
    import ctypes

    flag = ctypes.c_int(0)
    try:
        if _prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag)) != 0:
            return False
    except (OSError, AttributeError):
        return False
    return flag.value != 0


def adopts_orphans() -> bool:
    """True when orphans become our children: we are PID 1 or a subreaper."""
    return os.getpid() == 1 or is_subreaper()


class Reaper:
    """Waits for adopted orphans that have exited; run :meth:`run` as a task."""

    def __init__(self, protected: Callable[[], set[int]], interval: float = 1.0) -> None:
        self._protected = protected
        self._interval = interval
        self._seen: set[int] = set()

    def scan(self) -> list[int]:
        """Reap zombie children seen in the previous scan too; return their pids."""
        import psutil  # here: a daemon that adopts no orphans never loads it for this

        zombies = set()
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                if child.status() == psutil.STATUS_ZOMBIE:
                    zombies.add(child.pid)
        ready = (zombies & self._seen) - self._protected()
        done = []
        for pid in sorted(ready):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    done.append(pid)
        self._seen = zombies - ready
        if done:
            log.debug("reaped orphaned process(es) %s", ",".join(map(str, done)))
        return done

    async def run(self) -> None:
        """Scan every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.to_thread(self.scan)
            await asyncio.sleep(self._interval)
