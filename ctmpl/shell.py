"""Run a shell command to completion with a timeout; shared by commands and checks.

Output goes to an unnamed temp file, not a pipe, and ctmpl waits for the shell to exit,
not for end-of-file: a command that starts a daemon (``nginx.sh`` cold-starting nginx with
``error_log stderr``) leaves that daemon holding the output open, and waiting for EOF would
hang until the timeout. The command runs in its own process group so a timeout or a
cancellation kills the whole tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from dataclasses import dataclass

MAX_OUTPUT = 8192


@dataclass(frozen=True)
class Finished:
    """How a command ended: exit status (negative: killed by that signal) and its output."""

    returncode: int
    output: str


class TimedOut(Exception):
    """The command did not finish in time and was killed with its process group."""


async def run_shell(text: str, timeout: float, env: dict[str, str] | None = None) -> Finished:
    """Run ``text`` with /bin/sh; TimedOut after ``timeout`` seconds."""
    with tempfile.TemporaryFile() as out:
        proc = await asyncio.create_subprocess_shell(
            text,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            kill_group(proc.pid)
            await proc.wait()
            raise TimedOut(text) from None
        except asyncio.CancelledError:
            kill_group(proc.pid)
            raise
        out.seek(0)
        output = out.read(MAX_OUTPUT).decode("utf-8", "replace").rstrip()
    return Finished(proc.returncode if proc.returncode is not None else -1, output)


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (gone already is fine)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
