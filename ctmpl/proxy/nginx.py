"""Built-in nginx control: check the config, reload a live master or cold-start nginx.

Synchronous on purpose: the runner calls it through ``asyncio.to_thread``. The decision is
the one ``scripts/nginx.sh`` makes for ``-template src:dest:command`` users:

1. ``nginx -t`` must accept the config (else :class:`CheckFailed`, nothing is signalled);
2. a live master (see :mod:`ctmpl.proxy.nginx_procs`) gets SIGHUP, and the reload counts
   only once its set of worker pids has changed;
3. otherwise the stale pid file and any orphaned workers are cleared and nginx is started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Literal

import psutil

from ctmpl.config.model import NginxConfig
from ctmpl.errors import CheckFailed, ProxyError
from ctmpl.proxy import nginx_procs as procs

log = logging.getLogger(__name__)

Outcome = Literal["reloaded", "started", "checked"]
Reconciled = Literal["reloaded", "started", "current"]

CHECK_TIMEOUT = 60.0  # nginx -t resolves upstream host names: allow slow DNS
ORPHAN_GRACE = 3.0  # seconds between SIGQUIT and SIGKILL for orphaned workers
PROBLEM_GRACE = 0.5  # after an [emerg] during reload, how long new workers may still appear
POLL = 0.05
CLOCK_SLACK = 2.0  # process start times are derived from boot time in whole seconds


class NginxController:
    """Validate, reload and start the nginx described by an :class:`NginxConfig`."""

    name = "nginx"

    def __init__(self, cfg: NginxConfig) -> None:
        self.cfg = cfg
        self._foreground: list[subprocess.Popen[bytes]] = []

    # -- commands ------------------------------------------------------------------------

    def _args(self, config: str | None = None) -> list[str]:
        args = [self.cfg.binary]
        if self.cfg.prefix:
            args += ["-p", self.cfg.prefix]
        args += ["-c", config or self.cfg.config]
        if self.cfg.globals:
            args += ["-g", self.cfg.globals]
        return args

    def _missing_binary(self, exc: OSError) -> ProxyError:
        return ProxyError(
            f"nginx: cannot run {self.cfg.binary!r}: {exc.strerror or exc}"
            " (install nginx or set nginx.binary)"
        )

    def error_log(self) -> str | None:
        """The error log file to read failures from: configured, else the config's own."""
        if self.cfg.error_log:
            return self.cfg.error_log
        return procs.config_error_log(self.cfg.config, self.cfg.prefix)

    # -- public API ----------------------------------------------------------------------

    def test(self, config_path: str | None = None) -> None:
        """Run ``nginx -t`` on ``config_path`` (default: the main config); raise CheckFailed."""
        path = config_path or self.cfg.config
        try:
            res = subprocess.run(
                [*self._args(path), "-t"], stdin=subprocess.DEVNULL, capture_output=True,
                timeout=CHECK_TIMEOUT, check=False,
            )
        except OSError as exc:
            raise self._missing_binary(exc) from exc
        except subprocess.TimeoutExpired as exc:
            raise CheckFailed(f"nginx -t -c {path}: no answer after {CHECK_TIMEOUT:g}s") from exc
        if res.returncode != 0:
            output = (res.stderr + res.stdout).decode("utf-8", errors="replace")
            raise CheckFailed(f"nginx -t -c {path}: {_summary(output, res.returncode)}")
        log.info("nginx: config %s checked", path)

    def check_staged(self, changes: Mapping[Path, bytes]) -> None:
        """Nothing before install: nginx -t judges the whole installed config in apply()."""

    def master(self) -> psutil.Process | None:
        """The live nginx master named by the pid file, or None (no file, stale, zombie, …)."""
        self._reap()
        return procs.master_from_pid_file(self.cfg.pid_file)

    def apply(self) -> Outcome:
        """Check the config, then reload the live master or cold-start nginx."""
        self.test()
        master = self.master()
        if master is not None:
            self.reload(master)
            return "reloaded"
        self.start()
        return "started"

    def reconcile(self, files: Iterable[Path]) -> Reconciled:
        """Make sure nginx runs what ``files`` hold now (startup, or after a failed reload).

        After a crash between install and reload the files are current but the master may
        still run the old config. It provably loaded them only when it started after their
        last change; otherwise check and reload once.
        """
        master = self.master()
        if master is None:
            self.start()
            return "started"
        changed = max((m for f in files if (m := _mtime(f)) is not None), default=0.0)
        with contextlib.suppress(psutil.Error):
            if master.create_time() > changed + CLOCK_SLACK:
                log.debug("nginx: master %d started after the last install", master.pid)
                return "current"
        self.test()
        self.reload(master)
        return "reloaded"

    def reload(self, master: psutil.Process) -> None:
        """SIGHUP the master and wait until new workers replace the old ones."""
        before = procs.active_workers(master)
        error_log = self.error_log()
        offset = procs.log_size(error_log)
        try:
            master.send_signal(signal.SIGHUP)
        except psutil.Error as exc:
            raise ProxyError(f"nginx: cannot signal master {master.pid}: {exc}") from exc
        deadline = time.monotonic() + self.cfg.reload_timeout
        refused = False
        while True:
            if not procs.is_live_master(master):
                lines = procs.problem_lines(error_log, offset)
                raise ProxyError(f"nginx: master {master.pid} exited during reload"
                                 + _detail(lines))
            now = procs.active_workers(master)
            if now and not now & before:
                log.info("nginx: reloaded master %d (workers %s)", master.pid, _pids(now))
                return
            problems = procs.problem_lines(error_log, offset)
            if _has_emerg(problems) and not refused:
                # nginx logged why the new config was refused; it keeps the old workers.
                refused = True
                deadline = min(deadline, time.monotonic() + PROBLEM_GRACE)
            if refused and time.monotonic() >= deadline:
                raise ProxyError(f"nginx: reload of master {master.pid} failed, "
                                 "old config still live" + _detail(problems))
            if time.monotonic() >= deadline:
                raise ProxyError(f"nginx: reload of master {master.pid} did not take effect "
                                 f"within {self.cfg.reload_timeout:g}s: no new worker processes")
            time.sleep(POLL)

    def start(self) -> None:
        """Cold start: clear a stale pid file and orphaned workers, run nginx, await the master."""
        self._clear_stale()
        error_log = self.error_log()
        offset = procs.log_size(error_log)
        with tempfile.TemporaryFile() as err:
            try:
                # stderr goes to a file: a daemonized master keeps it open, a pipe would hang.
                proc = subprocess.Popen(
                    self._args(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=err, start_new_session=True,
                )
            except OSError as exc:
                raise self._missing_binary(exc) from exc
            master = self._await_master(proc, err, error_log, offset)
        if proc.poll() is None:
            self._foreground.append(proc)  # "daemon off": the master is our child, reap it later
        log.info("nginx: started master %d with %s", master.pid, self.cfg.config)

    # -- helpers -------------------------------------------------------------------------

    def _await_master(self, proc: subprocess.Popen[bytes], err: IO[bytes],
                      error_log: str | None, offset: int) -> psutil.Process:
        deadline = time.monotonic() + self.cfg.reload_timeout
        while True:
            master = procs.master_from_pid_file(self.cfg.pid_file)
            if master is not None:
                return master
            rc = proc.poll()
            problems = procs.problem_lines(error_log, offset)
            # A daemonized start exits 0 at once; a master that fails later logs [emerg].
            if rc is not None and (rc != 0 or _has_emerg(problems)):
                if (master := procs.master_from_pid_file(self.cfg.pid_file)) is not None:
                    return master
                err.seek(0)
                output = err.read().decode("utf-8", errors="replace")
                lines = problems or [_summary(output, rc)]
                raise ProxyError(f"nginx: start failed (exit code {rc})" + _detail(lines))
            if time.monotonic() >= deadline:
                if rc is None:
                    proc.kill()
                    proc.wait()
                raise ProxyError(f"nginx: no live master in {self.cfg.pid_file} after "
                                 f"{self.cfg.reload_timeout:g}s" + _detail(problems))
            time.sleep(POLL)

    def _clear_stale(self) -> None:
        if os.path.lexists(self.cfg.pid_file):
            # "nginx -t" leaves an empty pid file behind when there was none: not worth a line.
            if (pid := procs.read_pid(self.cfg.pid_file)) is not None:
                log.info("nginx: removing stale pid file %s (pid %d)", self.cfg.pid_file, pid)
            try:
                os.unlink(self.cfg.pid_file)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise ProxyError(f"nginx: cannot remove stale pid file "
                                 f"{self.cfg.pid_file}: {exc.strerror}") from exc
        exe = shutil.which(self.cfg.binary)
        orphans = procs.orphan_workers(self.error_log(), exe)
        if orphans:
            log.warning("nginx: stopping orphaned workers %s left by a killed master",
                        _pids(p.pid for p in orphans))
            procs.stop_processes(orphans, ORPHAN_GRACE)

    def _reap(self) -> None:
        self._foreground = [p for p in self._foreground if p.poll() is None]


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _summary(output: str, rc: int) -> str:
    """nginx's ``[emerg]`` lines, else its last line, else the exit code."""
    problems = procs.problems_in(output)
    if problems:
        return "; ".join(problems)
    lines = [line.removeprefix("nginx: ").strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {rc}"


def _has_emerg(lines: list[str]) -> bool:
    return any(line.startswith("[emerg]") for line in lines)


def _detail(lines: list[str]) -> str:
    return ": " + "; ".join(lines) if lines else ""


def _pids(pids: Iterable[int]) -> str:
    return ",".join(str(p) for p in sorted(pids))
