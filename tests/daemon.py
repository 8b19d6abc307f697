"""Helpers to run the real ctmpl CLI as a daemon subprocess in end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
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


def holds_for(cond: Callable[[], object], seconds: float, what: str = "") -> None:
    """Check ``cond`` throughout ``seconds`` (a quiet period); fail as soon as it is false."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not cond():
            raise AssertionError(f"{what} stopped holding")
        time.sleep(0.05)
    if not cond():
        raise AssertionError(f"{what} stopped holding")


async def poll_until(cond: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """In a test's event loop: poll ``cond`` until true (TimeoutError after ``timeout``)."""
    async with asyncio.timeout(timeout):
        while not cond():  # noqa: ASYNC110 - polls files and records, nothing to await
            await asyncio.sleep(0.01)


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

    def exit_code(self) -> int | None:
        """Wait until ctmpl exits by itself; its exit code."""
        wait_for(lambda: not self.alive(), what=f"exit\n{self.text()}")
        return self.proc.returncode

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


class RenderDaemon(Daemon):
    """``python -m ctmpl <args>`` rendering ``template`` into ``dest`` in ``tmp_path``, no wait."""

    def __init__(
        self, tmp_path: Path, template: str, args: Sequence[str], cwd: Path | None = None
    ) -> None:
        self.src = tmp_path / "upstreams.tmpl"
        self.dest = tmp_path / "upstreams.conf"
        self.src.write_text(template)
        render = ["-template", f"{self.src}:{self.dest}", "-wait", "0s", "-log-level", "debug"]
        super().__init__([*args, *render], tmp_path / "ctmpl.log", cwd)

    def read(self) -> str | None:
        """The rendered file, None while it does not exist."""
        try:
            return self.dest.read_text()
        except FileNotFoundError:
            return None

    def wait_for(
        self, want: str, check: Callable[[str], None] | None = None, timeout: float = TIMEOUT
    ) -> float:
        """Poll the file until it equals ``want``; ``check`` sees every version. Seconds taken."""
        started = time.monotonic()
        text = None
        while time.monotonic() < started + timeout:
            self._running()
            text = self.read()
            if text is not None and check is not None:
                check(text)
            if text == want:
                return time.monotonic() - started
            time.sleep(0.02)
        pytest.fail(f"file never became\n{want}\nlast:\n{text}\nlog:\n{self.text()}")

    def wait_log(self, needle: str, timeout: float = TIMEOUT) -> None:
        """Wait until ``needle`` appears in the log; fail at once if ctmpl exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            self._running()
            time.sleep(0.05)
        pytest.fail(f"{needle!r} never logged:\n{self.text()}")

    def _running(self) -> None:
        assert self.alive(), f"ctmpl exited:\n{self.text()}"


@contextlib.contextmanager
def render_daemons(
    tmp_path: Path, template: str, args: Sequence[str], cwd: Path | None = None
) -> Iterator[Callable[[], RenderDaemon]]:
    """A starter of ``RenderDaemon``s; every one started is stopped when the block ends."""
    started: list[RenderDaemon] = []

    def start() -> RenderDaemon:
        started.append(RenderDaemon(tmp_path, template, args, cwd))
        return started[-1]

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


def render_once(
    args: Sequence[str], src: Path, dest: Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m ctmpl <args> -template src:dest -once``, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "ctmpl", *args, "-template", f"{src}:{dest}", "-once"],
        check=False, capture_output=True, text=True, timeout=60, cwd=cwd,
    )
