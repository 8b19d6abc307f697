"""Built-in HAProxy control: check, then change servers at runtime, reload or cold-start.

Synchronous on purpose: the runner calls it through ``asyncio.to_thread``. HAProxy runs in
master-worker mode with a master CLI socket (``haproxy -W -S …``). After ctmpl installed a
new config:

1. no master answers on the master CLI → ``haproxy -c``, then a cold start (workers left by a
   SIGKILLed master are stopped first);
2. only ``server`` lines of existing backends changed (see :mod:`ctmpl.proxy.haproxy_plan`)
   → the runtime API applies them, and ``show servers state`` confirms them: no reload;
3. anything else, or a runtime command HAProxy refuses → ``haproxy -c``, the server state is
   saved to the ``server-state-file``, and ``reload`` goes to the master CLI; the reload
   counts only when ``show proc`` lists a new generation of workers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from ctmpl.config.model import HaproxyConfig
from ctmpl.errors import CheckFailed, ProxyError
from ctmpl.proxy import haproxy_files as files
from ctmpl.proxy import haproxy_plan as hplan
from ctmpl.proxy import haproxy_procs as procs
from ctmpl.proxy.haproxy_cli import CliError, ProcTable, command, parse_show_proc
from ctmpl.proxy.haproxy_runtime import RuntimeApi, RuntimeRefused

log = logging.getLogger(__name__)

POLL = 0.05


class HaproxyController:
    """Validate, update, reload and start the HAProxy described by a :class:`HaproxyConfig`."""

    name = "haproxy"

    def __init__(self, cfg: HaproxyConfig) -> None:
        self.cfg = cfg
        self.runtime = RuntimeApi(cfg.admin_socket, cfg.master_socket)
        self._loaded: tuple[hplan.Section, ...] | None = None  # what the workers run, if known

    # -- checks --------------------------------------------------------------------------

    def test(self, replace: Mapping[Path, Path] | None = None) -> None:
        """``haproxy -c`` on every config file (``replace`` swaps some for staged copies)."""
        replace = replace or {}
        loaded = files.config_files(self.cfg.config)
        procs.check(self.cfg.binary, [str(replace.get(p, p)) for p in loaded])
        staged = [str(p) for p in loaded if p in replace]
        if staged:
            log.info("haproxy: new render of %s checked (haproxy -c)", ", ".join(staged))
        else:
            log.info("haproxy: config %s checked", " ".join(str(p) for p in loaded))

    def check_staged(self, changes: Mapping[Path, bytes]) -> None:
        """Check the whole config with staged copies of the changed files in their places."""
        known = set(files.config_files(self.cfg.config))
        wanted = {dest: content for dest, content in changes.items()
                  if files.absolute(dest) in known}
        if not wanted:
            return  # not one of the -f files (a map, an errorfile): checked after install
        with files.staged_copies(wanted) as replace:
            try:
                self.test(replace)
            except CheckFailed as exc:
                text = str(exc)
                for dest, staged in replace.items():
                    text = text.replace(str(staged), str(dest))
                raise CheckFailed(f"{text} (in the new render; not installed)") from None

    def master(self) -> ProcTable | None:
        """``show proc`` from the master CLI; None when no master answers.

        A master re-executing itself for a reload does not answer for a moment: while the
        pid file names a live HAProxy process, keep asking (up to ``reload_timeout``).
        """
        deadline = time.monotonic() + self.cfg.reload_timeout
        while True:
            try:
                return parse_show_proc(command(self.cfg.master_socket, "show proc"))
            except CliError:
                if time.monotonic() >= deadline or not procs.pid_alive(
                        self.cfg.pid_file, self.cfg.binary):
                    return None
            time.sleep(POLL)

    # -- public API ----------------------------------------------------------------------

    def apply(self) -> str:
        """Bring the running HAProxy to the installed config; say how it was done."""
        new = hplan.parse(files.read_config(self.cfg.config))
        table = self.master()
        if table is None:
            self.test()
            self.start()
            self._loaded = new
            return "started"
        self.runtime.retry_deletions(new)
        if self._loaded is None:
            log.info("haproxy: reload: ctmpl does not know the running config yet")
        elif not self.cfg.runtime_api:
            log.info("haproxy: reload: runtime_api is off")
        else:
            plan = hplan.plan(self._loaded, new)
            if not plan.reload_reason:
                try:
                    count = self.runtime.apply(plan)
                    self._loaded = new
                    return f"updated {count} server(s) through the runtime API, no reload"
                except RuntimeRefused as exc:
                    log.warning("%s; falling back to a checked reload", exc)
            else:
                log.info("haproxy: reload: %s", plan.reload_reason)
        self.test()
        self.reload(table, new)
        return "reloaded"

    def reconcile(self, files_: Iterable[Path]) -> str:
        """Make sure HAProxy runs the installed config (startup, or after a failed reload).

        Unknown to ctmpl, the workers provably run the files only when they started after
        the last change of every config file; otherwise check and reload once.
        """
        installed = hplan.parse(files.read_config(self.cfg.config))
        table = self.master()
        if table is None:
            self.test()
            self.start()
            self._loaded = installed
            return "started"
        if self._loaded == installed:
            return "current"
        paths = [*files.config_files(self.cfg.config), *files_]
        if procs.started_after(table.current, paths):
            log.debug("haproxy: workers %s started after the last install", _pids(table.current))
            self._loaded = installed
            return "current"
        self.test()
        self.reload(table, installed)
        return "reloaded"

    def reload(self, before: ProcTable, new: tuple[hplan.Section, ...]) -> None:
        """Save server state, send ``reload`` to the master CLI, await a new generation."""
        old, self._loaded = self._loaded, None  # unknown until the new generation is confirmed
        self.runtime.save_state(new, old)
        try:
            command(self.cfg.master_socket, "reload")
        except CliError as exc:
            raise ProxyError(f"haproxy: cannot send reload to the master CLI: {exc}") from exc
        deadline = time.monotonic() + self.cfg.reload_timeout
        while True:
            table = self.master()  # None while the master re-executes itself
            if table is not None and table.reloads > before.reloads:
                if table.failed or not table.current - before.pids:
                    raise ProxyError(
                        f"haproxy: reload of master {table.master} failed, the old workers "
                        f"{_pids(table.pids)} keep serving the last good config "
                        f"(run haproxy -c -f … by hand, or see HAProxy's log for why)")
                log.info("haproxy: reloaded master %d (reload %d, workers %s)",
                         table.master, table.reloads, _pids(table.current))
                self._loaded = new
                self.runtime.forget_deletions()
                return
            if time.monotonic() >= deadline:
                raise ProxyError(f"haproxy: reload did not take effect within "
                                 f"{self.cfg.reload_timeout:g}s: no new workers")
            time.sleep(POLL)

    def start(self) -> None:
        """Cold start: stop workers left by a dead master, run HAProxy, await a worker."""
        procs.stop_orphans(self.cfg.binary, self.cfg.master_socket)
        for directory in files.socket_dirs(hplan.parse(files.read_config(self.cfg.config))):
            directory.mkdir(parents=True, exist_ok=True)
        launch = procs.launch(self.cfg, files.config_files(self.cfg.config))
        deadline = time.monotonic() + self.cfg.reload_timeout
        while True:
            table = self.master()
            if table is not None and table.current:
                log.info("haproxy: started master %d (workers %s) with %s", table.master,
                         _pids(table.current), " ".join(self.cfg.config))
                self.runtime.forget_deletions()
                launch.close()
                return
            problem = launch.failure()
            if problem is not None:
                raise ProxyError(f"haproxy: start failed: {problem}")
            if time.monotonic() >= deadline:
                raise ProxyError(f"haproxy: no master answered on {self.cfg.master_socket} "
                                 f"after {self.cfg.reload_timeout:g}s")
            time.sleep(POLL)


def _pids(pids: frozenset[int] | set[int]) -> str:
    return ",".join(str(p) for p in sorted(pids)) or "none"

