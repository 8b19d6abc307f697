"""HAProxy's two command sockets as the controller speaks to them.

The *master CLI* (``haproxy -W -S <path>``) belongs to the master process of master-worker
mode: ``show proc`` lists the master and its workers, ``reload`` re-executes the master with
the config files on disk, and ``@1 <command>`` forwards a command to the current worker.
The *admin socket* is a worker's ``stats socket … level admin``: the runtime API
(``set server``, ``add server``, ``show servers state`` …).

A *generation* of workers is the set started by one (re)load: ``show proc`` counts, for each
worker, the reloads it has lived through, so the current generation is the workers at 0.
One command per connection: the socket is half-closed after the command so HAProxy answers
and closes (the master CLI of 2.6 otherwise keeps the connection open).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

TIMEOUT = 5.0
MAX_ANSWER = 64 << 20

_MASTER = re.compile(r"^(\d+)\s+master\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?")
_WORKER = re.compile(r"^(\d+)\s+worker\s+(\d+)")


class CliError(OSError):
    """A socket that cannot be reached or that closed without a complete answer."""


def command(path: str, line: str, timeout: float = TIMEOUT) -> str:
    """Send one command to a HAProxy unix socket and return its whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            sock.sendall(line.encode("utf-8") + b"\n")
            sock.shutdown(socket.SHUT_WR)
            chunks: list[bytes] = []
            size = 0
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_ANSWER:
                    raise CliError(f"{path}: answer to {line.split(maxsplit=1)[0]!r} is too large")
        except CliError:
            raise
        except OSError as exc:
            raise CliError(f"{path}: {exc.strerror or exc}") from exc
    return b"".join(chunks).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Worker:
    """One worker in ``show proc``: its pid and how many reloads it has lived through."""

    pid: int
    reloads: int


@dataclass(frozen=True)
class ProcTable:
    """The master CLI's ``show proc``: master pid, reload counters and workers."""

    master: int
    reloads: int
    failed: int
    workers: tuple[Worker, ...]

    @property
    def current(self) -> frozenset[int]:
        """Pids of the newest generation (workers started by the last successful load)."""
        return frozenset(w.pid for w in self.workers if w.reloads == 0)

    @property
    def pids(self) -> frozenset[int]:
        """Every worker pid, old generations included."""
        return frozenset(w.pid for w in self.workers)


def parse_show_proc(text: str) -> ProcTable | None:
    """Parse ``show proc``; None when the text has no master line (not a master CLI)."""
    master: tuple[int, int, int] | None = None
    workers: list[Worker] = []
    for line in text.splitlines():
        if m := _MASTER.match(line):
            master = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
        elif m := _WORKER.match(line):
            workers.append(Worker(int(m.group(1)), int(m.group(2))))
    if master is None:
        return None
    return ProcTable(master[0], master[1], master[2], tuple(workers))


@dataclass(frozen=True)
class ServerState:
    """One line of ``show servers state``: the fields the controller compares."""

    backend: str
    name: str
    address: str
    admin: int  # srv_admin_state bit field: 0x01 forced maint, 0x08 forced drain, …
    weight: int  # srv_uweight: the weight in use
    port: int

    @property
    def in_maintenance(self) -> bool:
        """True when any maintenance flag other than "configured as disabled" is set."""
        return bool(self.admin & 0x23)


def parse_servers_state(text: str) -> dict[tuple[str, str], ServerState]:
    """``show servers state`` (format 1) by (backend, server); unparsable lines are skipped."""
    found: dict[tuple[str, str], ServerState] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 19 or line.startswith("#") or not parts[0].isdigit():
            continue
        try:
            state = ServerState(parts[1], parts[3], parts[4], int(parts[6]), int(parts[7]),
                                int(parts[18]))
        except ValueError:
            continue
        found[(state.backend, state.name)] = state
    return found
