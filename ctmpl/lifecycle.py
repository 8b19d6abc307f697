"""Process lifecycle around the runner, owned by the entry point: signal handlers and the
pid file.

Signal handlers only enqueue work on the runner (stop, reload); a second SIGINT while
stopping exits at once. ``SignalHandlers.apply`` installs them again after a reload so that
a changed ``kill_signal`` or ``reload_signal`` takes effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from ctmpl.config.model import Config
from ctmpl.errors import EXIT_INTERRUPTED

log = logging.getLogger(__name__)

# Signals passed on to an exec child as they are (SIGHUP is passed on after the re-read).
FORWARDED = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)


class Controlled(Protocol):
    """What the signal handlers drive (the runner)."""

    def request_stop(self) -> None:
        """Stop after the current step."""

    def request_reload(self) -> None:
        """Reload the configuration at the next turn."""

    def forward_signal(self, sig: signal.Signals) -> None:
        """Pass ``sig`` on to the exec child."""


class SignalHandlers:
    """The daemon's signal handlers for one runner."""

    def __init__(self, runner: Controlled) -> None:
        self._runner = runner
        self._installed: list[signal.Signals] = []
        self._key: tuple[object, ...] = ()
        self._stopping = False

    def apply(self, config: Config) -> None:
        """SIGTERM/SIGINT/SIGQUIT and ``kill_signal`` stop (a second SIGINT forces it); the
        reload signal reloads; in exec mode SIGUSR1, SIGUSR2 and SIGWINCH are forwarded to the
        child. Does nothing when the signal settings are unchanged."""
        key = (config.kill_signal, config.reload_signal, config.exec.enabled)
        if key == self._key:
            return
        loop = asyncio.get_running_loop()
        for old in self._installed:
            loop.remove_signal_handler(old)
        stop, runner = self._stop, self._runner
        handlers: dict[signal.Signals, tuple[Callable[..., None], tuple[object, ...]]] = {
            config.kill_signal: (stop, ()),
            signal.SIGTERM: (stop, ()),
            signal.SIGQUIT: (stop, ()),  # docker's nginx STOPSIGNAL
            signal.SIGINT: (stop, (True,)),
            config.reload_signal: (runner.request_reload, ()),
        }
        if config.exec.enabled:
            handlers.update({sig: (runner.forward_signal, (sig,)) for sig in FORWARDED})
        for sig, (handler, args) in handlers.items():
            loop.add_signal_handler(sig, handler, *args)
        self._installed, self._key = list(handlers), key

    def _stop(self, interrupt: bool = False) -> None:
        if self._stopping and interrupt:
            log.warning("second interrupt: exiting now")
            os._exit(EXIT_INTERRUPTED)
        self._stopping = True
        self._runner.request_stop()


@contextlib.contextmanager
def pid_file(path: str) -> Iterator[None]:
    """Write our pid to ``path`` (atomically: never seen empty) while running; remove it."""
    if not path:
        yield
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temp.write_text(f"{os.getpid()}\n", encoding="utf-8")
    os.replace(temp, target)
    try:
        yield
    finally:
        target.unlink(missing_ok=True)
