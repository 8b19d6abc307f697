"""pytest plugin: a private HAProxy (own sockets, pid and state file) on a loopback port.

``haproxy_env`` gives an :class:`HaproxyEnv` whose config is two ``-f`` files: ``base.cfg``
(global with the admin socket and server-state-file, defaults, a frontend on a random
127.0.0.1 port) and ``backends.cfg`` (the part ctmpl renders). Backends come from the
``make_backend`` fixture. Teardown kills every process started with this env's master
socket. Tests skip when haproxy is not installed.
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import psutil
import pytest

from ctmpl.config.model import HaproxyConfig
from ctmpl.proxy.haproxy_cli import (
    CliError,
    ProcTable,
    ServerState,
    command,
    parse_servers_state,
    parse_show_proc,
)
from ctmpl.proxy.haproxy_procs import leftovers
from ctmpl.proxy.nginx_procs import wait_gone
from tests.fixtures_nginx import TIMEOUT, free_port, wait_until

HAPROXY_BIN = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")

BASE_CFG = """\
global
    stats socket {admin} mode 600 level admin
    server-state-file {state}

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    load-server-state-from-file global

frontend fe
    bind 127.0.0.1:{port}
    use_backend %[req.hdr(host),lower,word(1,:)] if {{ req.hdr(host),lower,word(1,:) -m found }}
    default_backend web
"""


def backends_text(backends: Mapping[str, Sequence[str]]) -> str:
    """``backend <name>`` sections with these server lines (``"a 127.0.0.1:8080"`` …)."""
    parts = []
    for name, servers in backends.items():
        lines = [f"backend {name}", "    balance roundrobin"]
        lines += [f"    server {server}" for server in servers]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


class HaproxyEnv:
    """A private HAProxy: config files, master and admin sockets, pid and state files."""

    def __init__(self, root: Path, binary: str) -> None:
        self.root = root
        self.binary = binary
        self.port = free_port()
        run = root / "run"
        run.mkdir(parents=True, exist_ok=True)
        self.master_socket = run / "master.sock"
        self.admin_socket = run / "admin.sock"
        self.pid_file = run / "haproxy.pid"
        self.state_file = root / "state" / "servers"
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.base = root / "base.cfg"
        self.backends = root / "backends.cfg"
        self.write_base()
        self.set_backends({"web": ["down 127.0.0.1:9 disabled"]})
        self.cfg = HaproxyConfig(
            binary=binary, config=(str(self.base), str(self.backends)),
            master_socket=str(self.master_socket), admin_socket=str(self.admin_socket),
            pid_file=str(self.pid_file), reload_timeout=TIMEOUT,
        )

    def write_base(self, port: int | None = None) -> None:
        """The global/defaults/frontend file, listening on ``port`` (default: this env's)."""
        self.base.write_text(BASE_CFG.format(admin=self.admin_socket, state=self.state_file,
                                             port=port or self.port))

    def set_backends(self, backends: Mapping[str, Sequence[str]]) -> None:
        """Write ``backends.cfg`` as ctmpl's install would."""
        self.backends.write_text(backends_text(backends))

    # -- sockets -------------------------------------------------------------------------

    def show_proc(self) -> ProcTable | None:
        """The master CLI's ``show proc``; None when no master answers."""
        try:
            return parse_show_proc(command(str(self.master_socket), "show proc"))
        except CliError:
            return None

    def wait_proc(self) -> ProcTable:
        """``show proc``, waiting while the master re-executes itself for a reload."""
        deadline = time.monotonic() + TIMEOUT
        while (table := self.show_proc()) is None:
            if time.monotonic() > deadline:
                pytest.fail("the HAProxy master CLI does not answer")
            time.sleep(0.05)
        return table

    def admin(self, cmd: str) -> str:
        """A runtime API command on the admin socket."""
        return command(str(self.admin_socket), cmd)

    def servers(self, backend: str = "web") -> dict[str, ServerState]:
        """``show servers state`` of a backend by server name."""
        states = parse_servers_state(self.admin(f"show servers state {backend}"))
        return {name: state for (_, name), state in states.items()}

    # -- traffic -------------------------------------------------------------------------

    def fetch(self, host: str = "web") -> tuple[int, str]:
        """GET / through HAProxy for backend ``host``; (status, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/", headers={"Host": host})
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    def bodies(self, host: str = "web", count: int = 8) -> set[str]:
        """The bodies of ``count`` requests (round robin spreads them over the servers)."""
        found = set()
        for _ in range(count):
            with contextlib.suppress(OSError):
                status, body = self.fetch(host)
                found.add(body.strip() if status == 200 else str(status))
        return found

    def wait_bodies(self, want: set[str], host: str = "web") -> None:
        """Wait until requests are answered by exactly the backends named ``want``."""
        wait_until(lambda: self.bodies(host) == want, what=f"HAProxy to serve {want}")

    # -- processes -----------------------------------------------------------------------

    def processes(self) -> list[psutil.Process]:
        """Every live process started with this env's master socket."""
        return leftovers(self.binary, str(self.master_socket))

    def stop(self) -> None:
        """Kill every process of this env and wait for them to go."""
        for _ in range(5):
            procs = self.processes()
            if not procs:
                return
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            wait_gone(procs, TIMEOUT)


@pytest.fixture
def haproxy_env(tmp_path: Path) -> Iterator[HaproxyEnv]:
    """A private, not yet started HAProxy; every process of it is killed at teardown."""
    if HAPROXY_BIN is None:
        pytest.skip("haproxy is not installed (Debian: apt-get install haproxy)")
    env = HaproxyEnv(tmp_path / "haproxy", HAPROXY_BIN)
    try:
        yield env
    finally:
        env.stop()
