"""Helpers to run the real ctmpl CLI as a daemon subprocess in end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

TIMEOUT = 20.0


def wait_for(cond: Callable[[], object], timeout: float = TIMEOUT, what: str = "") -> Any:
    """Poll ``cond`` until truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` the way editors and config managers do: temp file, then rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_catalog(path: Path, services: dict[str, list[dict[str, Any]]], **extra: Any) -> None:
    """Write a file catalog atomically."""
    write_atomic(path, yaml.safe_dump({"services": services, **extra}))


class Daemon:
    """A running ``python -m ctmpl`` whose log goes to a file."""

    def __init__(self, args: Sequence[str], log: Path, cwd: Path | None = None) -> None:
        self.log = log
        self._log_handle = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ctmpl", *args],
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )

    def text(self) -> str:
        """Everything logged so far."""
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, timeout: float = TIMEOUT) -> None:
        """Wait until ``needle`` appears in the log."""
        wait_for(lambda: needle in self.text(), timeout, f"log line {needle!r}\n{self.text()}")

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to ctmpl."""
        self.proc.send_signal(sig)

    def stop(self, timeout: float = TIMEOUT) -> int:
        """SIGTERM, wait, and return the exit code (kill if it does not stop)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_handle.close()
        return self.proc.returncode


@contextlib.contextmanager
def daemon(args: Sequence[str], log: Path, cwd: Path | None = None) -> Iterator[Daemon]:
    """Run ctmpl for the duration of a ``with`` block; always stopped afterwards."""
    proc = Daemon(args, log, cwd)
    try:
        yield proc
    finally:
        proc.stop()
