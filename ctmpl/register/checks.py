"""Run one health check: TCP connect, HTTP GET with a status range, or a command's exit status.

Every check ends within its timeout and reports an ``Outcome`` with a short reason for
the logs (``connection refused``, ``HTTP 503``, ``exit status 1: <output>``); a check never
raises for a failing instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ctmpl.register.spec import CheckSpec
from ctmpl.shell import TimedOut, run_shell

if TYPE_CHECKING:
    import aiohttp


@dataclass(frozen=True)
class Outcome:
    """One check's result: healthy or not, and why in a few words."""

    ok: bool
    detail: str


class Checker:
    """Runs ``spec`` with ``timeout``; keeps one HTTP session for its lifetime."""

    def __init__(self, spec: CheckSpec, timeout: float) -> None:
        self.spec = spec
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        if spec.kind == "http":
            importlib.import_module("aiohttp")  # now, not inside the first check's timeout

    async def check(self) -> Outcome:
        """Run the check once."""
        try:
            async with asyncio.timeout(self.timeout):
                if self.spec.kind == "tcp":
                    return await self._tcp()
                if self.spec.kind == "http":
                    return await self._http()
                return await self._command()
        except TimeoutError:
            return Outcome(False, f"no answer within {self.timeout:g}s")

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _tcp(self) -> Outcome:
        try:
            _, writer = await asyncio.open_connection(self.spec.host, self.spec.port)
        except OSError as exc:
            return Outcome(False, _os_reason(exc))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return Outcome(True, "connected")

    async def _http(self) -> Outcome:
        import aiohttp  # imported by __init__ already; only HTTP checks need it

        if self._session is None:
            # A fresh connection per check: a kept-alive one would hide a dead listener.
            connector = aiohttp.TCPConnector(force_close=True)
            self._session = aiohttp.ClientSession(connector=connector)
        try:
            async with self._session.get(self.spec.url, allow_redirects=False) as resp:
                status = resp.status
        except aiohttp.ClientConnectorError as exc:
            return Outcome(False, _os_reason(exc.os_error))
        except (aiohttp.ClientError, OSError, ssl.SSLError) as exc:
            return Outcome(False, f"{type(exc).__name__}: {exc}"[:200])
        ok = self.spec.status_low <= status <= self.spec.status_high
        return Outcome(ok, f"HTTP {status}")

    async def _command(self) -> Outcome:
        try:
            done = await run_shell(self.spec.command, self.timeout + 1)
        except TimedOut:
            return Outcome(False, f"no exit within {self.timeout:g}s")
        if done.returncode == 0:
            return Outcome(True, "exit status 0")
        last = done.output.splitlines()[-1][:200] if done.output else ""
        return Outcome(False, f"exit status {done.returncode}" + (f": {last}" if last else ""))


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return (exc.strerror or str(exc) or type(exc).__name__).lower()
