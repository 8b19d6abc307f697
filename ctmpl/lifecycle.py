"""Process lifecycle around the runner: signal handlers and the pid file.

Signal handlers only enqueue work on the runner (stop, reload). They are installed again
after a reload so that a changed ``kill_signal`` or ``reload_signal`` takes effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from ctmpl.config.model import Config
from ctmpl.errors import EXIT_INTERRUPTED

# Signals passed on to an exec child as they are (SIGHUP is passed on after the re-read).
FORWARDED = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)


class Controlled(Protocol):
    """What the signal handlers drive (the runner)."""

    config: Config
    installed_signals: list[signal.Signals]

    def request_stop(self, code: int = ...) -> None:
        """Stop after the current step."""

    def request_reload(self) -> None:
        """Reload the configuration at the next turn."""

    def forward_signal(self, sig: signal.Signals) -> None:
        """Pass ``sig`` on to the exec child."""


def install_signals(runner: Controlled) -> None:
    """SIGTERM/SIGINT/SIGQUIT stop (a second SIGINT forces it); the reload signal reloads;
    in exec mode SIGUSR1, SIGUSR2 and SIGWINCH are forwarded to the child."""
    loop = asyncio.get_running_loop()
    for old in runner.installed_signals:
        loop.remove_signal_handler(old)
    kill_sig, reload_sig = runner.config.kill_signal, runner.config.reload_signal
    if kill_sig not in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(kill_sig, runner.request_stop)
    loop.add_signal_handler(signal.SIGTERM, runner.request_stop)
    loop.add_signal_handler(signal.SIGQUIT, runner.request_stop)  # docker's nginx STOPSIGNAL
    loop.add_signal_handler(signal.SIGINT, runner.request_stop, EXIT_INTERRUPTED)
    loop.add_signal_handler(reload_sig, runner.request_reload)
    runner.installed_signals = [kill_sig, signal.SIGTERM, signal.SIGQUIT, signal.SIGINT,
                                reload_sig]
    if runner.config.exec.enabled:
        for sig in FORWARDED:
            loop.add_signal_handler(sig, runner.forward_signal, sig)
            runner.installed_signals.append(sig)


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
