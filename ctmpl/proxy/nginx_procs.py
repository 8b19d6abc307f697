"""nginx processes and files as the controller sees them: pid file, master, workers, error log.

A pid file is only a hint. It counts when it names a live, non-zombie process whose title is
``nginx: master process …``: after a crash or a reboot the pid may be dead or reused by an
unrelated process. Workers whose master was killed with SIGKILL keep running and keep the
listen sockets, so a cold start has to find and stop them first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

MASTER_TITLE = "nginx: master process"
WORKER_TITLE = "nginx: worker process"
HELPER_TITLES = (WORKER_TITLE, "nginx: cache manager process", "nginx: cache loader process")
SHUTTING_DOWN = "is shutting down"
_PROBLEM = re.compile(r"(\[(?:emerg|alert|crit)\]) (?:\d+#\d+: )?(?:\*\d+ )?(.*)$")

_ERROR_LOG = re.compile(r"""^\s*error_log\s+("[^"]*"|'[^']*'|[^\s;]+)""")


def title(proc: psutil.Process) -> str:
    """The process title (``nginx: worker process``), or "" when it cannot be read."""
    try:
        return " ".join(part for part in proc.cmdline() if part).strip()
    except (psutil.Error, OSError):
        return ""


def is_live_master(proc: psutil.Process) -> bool:
    """True for a running, non-zombie process titled ``nginx: master process``."""
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
    except (psutil.Error, OSError):
        return False
    return title(proc).startswith(MASTER_TITLE)


def read_pid(path: str) -> int | None:
    """The pid in ``path``; None when the file is missing, empty or not a positive number."""
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    return pid if pid > 0 else None


def master_from_pid_file(path: str) -> psutil.Process | None:
    """The live nginx master the pid file names, or None for a stale or unreadable file."""
    pid = read_pid(path)
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
    except (psutil.Error, OSError):
        return None
    return proc if is_live_master(proc) else None


def active_workers(master: psutil.Process) -> set[int]:
    """Pids of the master's workers that serve new connections (not ``is shutting down``)."""
    try:
        children = master.children()
    except (psutil.Error, OSError):
        return set()
    found = set()
    for child in children:
        name = title(child)
        if name.startswith(WORKER_TITLE) and SHUTTING_DOWN not in name:
            found.add(child.pid)
    return found


def _holds_file(proc: psutil.Process, path: str) -> bool:
    try:
        return any(os.path.realpath(f.path) == path for f in proc.open_files())
    except (psutil.Error, OSError):
        return False


def _same_exe(proc: psutil.Process, exe: str) -> bool:
    try:
        return os.path.realpath(proc.exe()) == exe
    except (psutil.Error, OSError):
        return False


def _parent_is_master(proc: psutil.Process) -> bool:
    try:
        parent = proc.parent()
    except (psutil.Error, OSError):
        return False
    return parent is not None and is_live_master(parent)


def orphan_workers(error_log: str | None, exe: str | None) -> list[psutil.Process]:
    """nginx worker/cache processes whose master is gone, started from the same config.

    "The same config" means the process has ``error_log`` open (every nginx process keeps
    its error log open); when no file error log is known, the same nginx binary is required.
    """
    want_log = os.path.realpath(error_log) if error_log else None
    want_exe = os.path.realpath(exe) if exe else None
    if want_log is None and want_exe is None:
        return []
    found = []
    for proc in psutil.process_iter():
        name = title(proc)
        if not name.startswith(HELPER_TITLES) or _parent_is_master(proc):
            continue
        if proc.pid == os.getpid():
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except (psutil.Error, OSError):
            continue
        same = _holds_file(proc, want_log) if want_log else _same_exe(proc, str(want_exe))
        if same:
            found.append(proc)
    return found


def stop_processes(procs: Iterable[psutil.Process], grace: float) -> None:
    """SIGQUIT (nginx's graceful stop), then SIGKILL whatever is left after ``grace`` seconds."""
    procs = list(procs)
    for proc in procs:
        _signal(proc, signal.SIGQUIT)
    alive = wait_gone(procs, grace)
    for proc in alive:
        log.warning("nginx: process %d ignored SIGQUIT, sending SIGKILL", proc.pid)
        _signal(proc, signal.SIGKILL)
    wait_gone(alive, grace)


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has exited; return those still running after ``timeout``.

    A zombie counts as gone: a process that is not our child may stay a zombie for long
    when the init process does not reap orphans (some container inits do not).
    """
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in procs if _running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, OSError):
        return False


def _signal(proc: psutil.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.send_signal(sig)


def config_error_log(config: str, prefix: str) -> str | None:
    """The file named by the first main-context ``error_log`` of ``config``, if it is a file.

    ``stderr``, ``syslog:`` and ``memory:`` targets and unreadable configs give None.
    """
    try:
        text = Path(config).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    depth = 0
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        if depth == 0 and (m := _ERROR_LOG.match(code)):
            return _file_target(m.group(1).strip("\"'"), prefix)
        depth += code.count("{") - code.count("}")
    return None


def _file_target(target: str, prefix: str) -> str | None:
    if target == "stderr" or target.startswith(("syslog:", "memory:")):
        return None
    if os.path.isabs(target):
        return target
    return os.path.join(prefix, target) if prefix else None


def log_size(path: str | None) -> int:
    """Current size of the error log (0 when unknown), to read only what comes after."""
    if not path:
        return 0
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def problem_lines(path: str | None, offset: int = 0) -> list[str]:
    """``[emerg]``, ``[alert]`` and ``[crit]`` lines written to the log after ``offset``."""
    if not path:
        return []
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size < offset:
                offset = 0  # rotated or truncated since: read it all
            f.seek(offset)
            data = f.read(1 << 20)
    except OSError:
        return []
    return problems_in(data.decode("utf-8", errors="replace"))


def problems_in(text: str) -> list[str]:
    """The ``[emerg]``/``[alert]``/``[crit]`` lines of nginx output or log, deduplicated.

    Both forms come out alike: ``nginx: [emerg] …`` from the command line and
    ``2024/01/01 00:00:00 [emerg] 12#12: …`` from the error log become ``[emerg] …``.
    """
    lines: list[str] = []
    for line in text.splitlines():
        m = _PROBLEM.search(line)
        if m is not None and (clean := f"{m.group(1)} {m.group(2)}".strip()) not in lines:
            lines.append(clean)
    return lines
