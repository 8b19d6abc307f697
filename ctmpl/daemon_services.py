"""The daemon's outward-facing parts, behind a few hooks the runner calls.

- exec mode: the child (:mod:`ctmpl.exec_child`) starts after the first complete render,
  is reloaded after each pass that installed files, receives forwarded signals, and its
  exit ends ctmpl with its exit code;
- systemd: ``READY=1`` after the first complete render and proxy start, ``RELOADING=1`` /
  ``READY=1`` around SIGHUP, ``STOPPING=1`` at exit, ``STATUS=`` after each change;
- the status server (``/health``, ``/metrics``) when ``status_addr`` is set;
- reaping orphaned processes when ctmpl is PID 1 or a child subreaper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ctmpl import gcpolicy, notify, tasks, telemetry
from ctmpl.config.model import Config, NginxConfig
from ctmpl.errors import CtmplError
from ctmpl.exec_child import ExecChild
from ctmpl.proxy.base import ProxyController
from ctmpl.reaper import Reaper, adopts_orphans

if TYPE_CHECKING:  # imported when used: the status server (aiohttp's server), nginx's control
    from ctmpl.proxy.nginx import NginxController
    from ctmpl.status_server import StatusServer

log = logging.getLogger(__name__)

class DaemonServices:
    """Exec child, readiness notifications, status server and reaper of one daemon."""

    def __init__(self, config: Config, wake: Callable[[], None]) -> None:
        self.config = config
        self.child = ExecChild(config.exec, wake) if config.exec.enabled else None
        self.proxy: ProxyController | None = None  # the runner's current controller
        self.ready = False
        self._server: StatusServer | None = None
        self._reaper: asyncio.Task[None] | None = None

    def nginx(self, cfg: NginxConfig) -> NginxController:
        """The nginx controller: in exec mode nginx is the child, never started by ctmpl."""
        from ctmpl.proxy.nginx import NginxController
        from ctmpl.proxy.nginx_exec import ForegroundNginx

        if self.child is not None:
            child = self.child
            return ForegroundNginx(cfg, lambda: child.pid)
        return NginxController(cfg)

    @property
    def exit_code(self) -> int | None:
        """The exec child's exit status once it ended on its own; ctmpl then exits with it."""
        return self.child.exit_code if self.child is not None else None

    async def start(self) -> None:
        """Start the status server and the reaper (ConfigError when the address is taken)."""
        telemetry.reset(self.config.catalog.kind, metrics=bool(self.config.status_addr))
        if self.config.status_addr:
            from ctmpl.status_server import StatusServer

            self._server = StatusServer(self.config.status_addr, self.proxy_state)
            await self._server.start()
        if os.getpid() == 1:
            self._start_reaper()
        # Otherwise whether orphans come to ctmpl (a subreaper) is asked after the first
        # complete render, keeping the question (prctl through ctypes) and the reaper
        # (psutil) off the start's path: only that render's commands can have left orphans
        # by then, and a zombie waits for its reaper.

    def _start_reaper(self) -> None:
        if self._reaper is None and adopts_orphans():
            log.debug("adopting orphaned processes (PID 1 or subreaper): reaping them")
            self._reaper = tasks.spawn(Reaper(self.child_pids).run(), name="reaper")

    def child_pids(self) -> set[int]:
        """Pids the reaper must leave to their owners."""
        pid = self.child.pid if self.child is not None else None
        return {pid} if pid is not None else set()

    async def first_render(self) -> None:
        """Every template rendered completely once: start the child, report READY=1."""
        if self.child is not None and not self.child.started:
            await self.child.start()
            telemetry.reloaded("started")
        self.ready = True
        self._start_reaper()
        notify.ready(self._status_line("ready"))
        gcpolicy.settle()

    def after_pass(self, installed: int) -> None:
        """A pass installed ``installed`` files: reload the child (unless nginx did), STATUS=."""
        if not installed:
            return
        if self.child is not None and self.proxy is None and self.ready:
            self.child.reload()
        notify.status(self._status_line(f"rendered {installed} file(s)"))

    async def reloading(self) -> None:
        """SIGHUP arrived: tell systemd a reload is under way."""
        notify.reloading()

    async def reloaded(self, config: Config) -> None:
        """The config was re-read: pass SIGHUP on to the child (nginx: checked first)."""
        for what, old, new in (("exec", self.config.exec, config.exec),
                               ("status_addr", self.config.status_addr, config.status_addr)):
            if old != new:
                log.warning("reload: %s changed; restart ctmpl to apply it", what)
        if self.child is not None and self.child.alive():
            if self.proxy is not None:
                try:
                    outcome = await asyncio.to_thread(self.proxy.apply)
                    telemetry.reloaded(outcome)
                except CtmplError as exc:
                    log.error("%s; nginx keeps its running config", exc)
            else:
                self.child.forward(signal.SIGHUP)
        if self.ready:
            notify.ready(self._status_line("reloaded configuration"))
        gcpolicy.settle()

    def forward(self, sig: signal.Signals) -> None:
        """Pass a signal ctmpl received on to the exec child."""
        if self.child is not None:
            self.child.forward(sig)

    async def stop(self) -> None:
        """STOPPING=1, stop the child gracefully, close the server and the reaper."""
        notify.stopping()
        if self.child is not None:
            await self.child.stop()
        if self._server is not None:
            await self._server.aclose()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper

    async def proxy_state(self) -> dict[str, Any]:
        """The proxy's (or exec child's) state for ``/health``."""
        proxy = self.proxy
        if proxy is not None:
            if not self.ready:
                return {"kind": proxy.name, "state": "starting"}
            master = await asyncio.to_thread(getattr(proxy, "master", lambda: None))
            pid = getattr(master, "pid", None)
            return {"kind": proxy.name, "state": "up" if master is not None else "down",
                    "pid": pid}
        if self.child is not None:
            if not self.child.started:
                return {"kind": "exec", "state": "starting"}
            pid = self.child.pid
            return {"kind": "exec", "state": "up" if pid else "down", "pid": pid,
                    "exit_code": self.child.exit_code}
        return {"kind": "none", "state": "none"}

    def _status_line(self, what: str) -> str:
        health = telemetry.HEALTH
        line = f"{what} at {time.strftime('%H:%M:%S')}"
        if health.last_reload_at is not None:
            when = time.strftime("%H:%M:%S", time.localtime(health.last_reload_at))
            line += f"; last reload: {health.last_reload} at {when}"
        return line
