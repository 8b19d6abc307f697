"""HAProxy processes: ``haproxy -c``, the cold-start launch, and workers of a dead master.

In master-worker mode the master holds the listening sockets and its workers exit when it
dies, but not at once: a SIGKILLed master can leave workers that still hold the ports for a
moment, or for long when they hang. A process counts as ours when it runs the same binary
with our master CLI socket on its command line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

from ctmpl.config.model import HaproxyConfig
from ctmpl.errors import CheckFailed, ProxyError
from ctmpl.proxy.nginx_procs import read_pid, wait_gone

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 60.0  # haproxy -c resolves server host names: allow slow DNS
ORPHAN_GRACE = 3.0
CLOCK_SLACK = 2.0  # process start times are derived from boot time in whole seconds
_GENERIC = ("Fatal errors found", "Error(s) found in configuration file")
_PREFIX = re.compile(r"^\[(ALERT|WARNING|NOTICE)\]\s*\(\d+\)\s*:\s*")


def _missing_binary(binary: str, exc: OSError) -> ProxyError:
    return ProxyError(f"haproxy: cannot run {binary!r}: {exc.strerror or exc}"
                      " (install haproxy or set haproxy.binary)")


def summary(output: str, rc: int | None) -> str:
    """HAProxy's ``[ALERT]`` lines without their prefix, else its last line, else the code."""
    alerts = [_PREFIX.sub("", line).strip().removeprefix("config : ")
              for line in output.splitlines() if line.startswith("[ALERT]")]
    alerts = [a for a in alerts if not a.startswith(_GENERIC)] or alerts
    if alerts:
        return "; ".join(dict.fromkeys(alerts))
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {rc}"


def check(binary: str, paths: Sequence[str]) -> None:
    """``haproxy -c -f …`` on these files; CheckFailed carries HAProxy's alerts."""
    args = [binary, "-c"] + [arg for path in paths for arg in ("-f", path)]
    try:
        res = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                             timeout=CHECK_TIMEOUT, check=False)
    except OSError as exc:
        raise _missing_binary(binary, exc) from exc
    except subprocess.TimeoutExpired as exc:
        raise CheckFailed(f"haproxy -c: no answer after {CHECK_TIMEOUT:g}s") from exc
    if res.returncode != 0:
        output = (res.stderr + res.stdout).decode("utf-8", errors="replace")
        raise CheckFailed(f"haproxy -c -f {' -f '.join(paths)}: {summary(output, res.returncode)}")


@dataclass
class Launch:
    """A ``haproxy -W -D`` launcher: it exits once the master runs on its own."""

    proc: subprocess.Popen[bytes]
    err: IO[bytes]

    def failure(self) -> str | None:
        """Why the start failed, once the launcher exited non-zero; else None."""
        rc = self.proc.poll()
        if rc is None or rc == 0:
            return None
        self.err.seek(0)
        output = self.err.read().decode("utf-8", errors="replace")
        self.err.close()
        return f"exit code {rc}: {summary(output, rc)}"

    def close(self) -> None:
        """Reap the launcher if it exited and drop its output."""
        self.proc.poll()
        self.err.close()


def launch(cfg: HaproxyConfig, files: Sequence[Path]) -> Launch:
    """Run ``haproxy -W -D -p <pid> -S <master socket> -f …`` (master-worker, daemon)."""
    for path in (cfg.pid_file, cfg.master_socket):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    args = [cfg.binary, "-W", "-D", "-p", cfg.pid_file, "-S", f"{cfg.master_socket},mode,600"]
    args += [arg for path in files for arg in ("-f", str(path))]
    # stderr goes to a file: the daemonized master keeps it open, a pipe would hang.
    err = tempfile.TemporaryFile()  # noqa: SIM115 - closed by Launch.close()
    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
    except OSError as exc:
        err.close()
        raise _missing_binary(cfg.binary, exc) from exc
    return Launch(proc, err)


def _ours(proc: psutil.Process, exe: str, socket_path: str) -> bool:
    try:
        if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if os.path.realpath(proc.exe()) != exe:
            return False
        args = proc.cmdline()
    except (psutil.Error, OSError):
        return False
    return any(a == socket_path or a.startswith(f"{socket_path},") for a in args)


def _exe(binary: str) -> str | None:
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/local/sbin")
    return os.path.realpath(found) if found else None


def pid_alive(pid_file: str, binary: str) -> bool:
    """True when the pid file names a live, non-zombie process running ``binary``."""
    pid, exe = read_pid(pid_file), _exe(binary)
    if pid is None or exe is None:
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and os.path.realpath(proc.exe()) == exe
    except (psutil.Error, OSError):
        return False


def leftovers(binary: str, socket_path: str) -> list[psutil.Process]:
    """HAProxy processes started with this master socket (a dead master's workers)."""
    exe = _exe(binary)
    if exe is None:
        return []
    return [p for p in psutil.process_iter() if _ours(p, exe, socket_path)]


def stop_orphans(binary: str, socket_path: str) -> None:
    """SIGTERM, then SIGKILL, every process of a master that no longer answers."""
    procs = leftovers(binary, socket_path)
    if not procs:
        return
    log.warning("haproxy: stopping processes %s left by a master that no longer answers",
                ",".join(str(p.pid) for p in procs))
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    for proc in wait_gone(procs, ORPHAN_GRACE):
        with contextlib.suppress(psutil.Error):
            proc.kill()
    wait_gone(procs, ORPHAN_GRACE)


def started_after(pids: Iterable[int], paths: Iterable[Path]) -> bool:
    """True when every process in ``pids`` (at least one) started after the files changed."""
    changed = 0.0
    for path in paths:
        with contextlib.suppress(OSError):
            changed = max(changed, path.stat().st_mtime)
    starts = []
    for pid in pids:
        try:
            starts.append(psutil.Process(pid).create_time())
        except (psutil.Error, OSError):
            return False
    return bool(starts) and min(starts) > changed + CLOCK_SLACK
