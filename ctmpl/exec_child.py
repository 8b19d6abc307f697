"""Exec mode: one child process that lives and dies with ctmpl (consul-template's ``exec``).

- The child starts only after every template rendered completely once.
- A change sends it ``reload_signal``; with no reload signal the child is restarted
  (stopped with ``kill_signal``, then started again). ``splay`` delays either by a random
  time up to its value, so a fleet does not reload all at once.
- Signals ctmpl forwards go to the child's pid (it must stay in the foreground).
- When the child exits on its own, ctmpl exits with the child's exit code (128+N when a
  signal N killed it). On a graceful stop it gets ``kill_signal`` and ``kill_timeout``
  seconds before SIGKILL.

The command is an argument list, never run by a shell (as consul-template does).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
import random
import signal
from collections.abc import Callable, Mapping

from ctmpl import tasks, telemetry
from ctmpl.config.model import ExecConfig
from ctmpl.errors import CtmplError

log = logging.getLogger(__name__)


class ExecError(CtmplError):
    """The exec command cannot be started (exit 127, as a shell reports it)."""

    exit_code = 127


def child_env(cfg: ExecConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: ctmpl's (or none when pristine), filtered, plus custom."""
    env: dict[str, str] = {}
    if not cfg.env_pristine:
        for name, value in environ.items():
            if cfg.env_allow and not any(fnmatch.fnmatchcase(name, p) for p in cfg.env_allow):
                continue
            if any(fnmatch.fnmatchcase(name, p) for p in cfg.env_deny):
                continue
            env[name] = value
    for entry in cfg.env_custom:
        name, _, value = entry.partition("=")
        env[name] = value
    return env


def exit_status(returncode: int) -> int:
    """A shell-style exit status: the code, or 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


class ExecChild:
    """The supervised child; ``on_exit`` is called when it ends on its own."""

    def __init__(
        self, cfg: ExecConfig, on_exit: Callable[[], None],
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.cfg = cfg
        self._on_exit = on_exit
        self._rng = rng
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: asyncio.Task[None] | None = None
        self._waiter: asyncio.Task[None] | None = None
        self._expected_exit = False
        self.exit_code: int | None = None  # set when the child exited on its own

    @property
    def pid(self) -> int | None:
        """The running child's pid."""
        return self._proc.pid if self.alive() and self._proc is not None else None

    @property
    def started(self) -> bool:
        """True once the child was started (it may have exited since)."""
        return self._proc is not None

    def alive(self) -> bool:
        """True while the child runs."""
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        """Start the child; ExecError when the command cannot run."""
        argv = self.cfg.command
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=child_env(self.cfg, os.environ), start_new_session=True,
            )
        except OSError as exc:
            raise ExecError(f"exec {argv[0]}: cannot start: {exc.strerror or exc}") from None
        self._proc, self._expected_exit = proc, False
        log.info("exec: started %s (pid %d)", " ".join(argv), proc.pid)
        self._waiter = tasks.spawn(self._watch(proc), name=f"exec child {proc.pid}")

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        code = exit_status(await proc.wait())
        if proc is not self._proc or self._expected_exit:
            return
        log.info("exec: child %d exited with status %d", proc.pid, code)
        self.exit_code = code
        self._on_exit()

    def reload(self) -> None:
        """After a change: signal or restart the child, after the splay delay."""
        if not self.alive():
            return
        if self._pending is not None and not self._pending.done():
            return  # a reload is already on its way and will see the newest files
        self._pending = tasks.spawn(self._reload(), name="exec reload")

    async def _reload(self) -> None:
        if self.cfg.splay > 0:
            delay = self._rng() * self.cfg.splay
            log.debug("exec: reload in %.2fs (splay)", delay)
            await asyncio.sleep(delay)
        if self.cfg.reload_signal is not None:
            self.forward(self.cfg.reload_signal)
            telemetry.reloaded("signalled")
            return
        log.info("exec: restarting the child (no reload_signal set)")
        await self._terminate()
        await self.start()
        telemetry.reloaded("restarted")

    def forward(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the child, when it runs."""
        if self._proc is not None and self.alive():
            log.info("exec: sending %s to child %d", sig.name, self._proc.pid)
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)

    async def stop(self) -> None:
        """Graceful stop: kill_signal, then SIGKILL after kill_timeout (no splay)."""
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pending
        await self._terminate()

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self._expected_exit = True
        self.forward(self.cfg.kill_signal)
        try:
            async with asyncio.timeout(self.cfg.kill_timeout):
                await proc.wait()
        except TimeoutError:
            log.warning("exec: child %d still running after %gs: killing it",
                        proc.pid, self.cfg.kill_timeout)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        log.info("exec: child %d stopped (status %d)", proc.pid,
                 exit_status(proc.returncode or 0))
