"""pytest plugin: a private nginx (own prefix, port, pid file, logs) and loopback backends.

List it in ``pytest_plugins``. ``nginx_env`` gives an :class:`NginxEnv` whose main config
listens on a random free 127.0.0.1 port and proxies ``/`` to ``upstream backend`` written in
``conf.d/upstream.conf``; ``make_backend(name)`` starts an HTTP server answering its name.
Teardown kills every nginx process of the env, orphans included. Tests skip when nginx is
not installed.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from ctmpl.config.model import NginxConfig
from ctmpl.proxy.nginx_procs import wait_gone

NGINX_BIN = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
TIMEOUT = 15.0

MAIN_CONF = """\
daemon on;
master_process on;
worker_processes 1;
pid {pid_file};
error_log {error_log} notice;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {conf_d}/*.conf;
    server {{
        listen 127.0.0.1:{port};
        location = /_health {{ return 200 "ok\\n"; }}
        location / {{
            proxy_pass http://backend;
            proxy_connect_timeout 2s;
        }}
    }}
}}
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond: Callable[[], object], timeout: float = TIMEOUT, what: str = "") -> None:
    """Poll ``cond`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what or cond}")
        time.sleep(0.05)


def _title(proc: psutil.Process) -> str:
    try:
        return " ".join(p for p in proc.cmdline() if p)
    except psutil.Error:
        return ""


@dataclass
class Backend:
    """A loopback HTTP server answering every GET with ``name``."""

    name: str
    server: ThreadingHTTPServer

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def start_backend(name: str, host: str = "127.0.0.1") -> Backend:
    """Start a threaded HTTP server on a random port of ``host`` answering ``name``."""
    body = f"{name}\n".encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive when the client asks (HAProxy does)

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server_class = _V6Server if ":" in host else ThreadingHTTPServer
    server = server_class((host, 0), Handler)
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return Backend(name, server)


class NginxEnv:
    """A private nginx prefix: main config, conf.d, pid file, error log and temp dirs."""

    def __init__(self, root: Path, binary: str) -> None:
        self.root = root
        self.binary = binary
        self.port = free_port()
        self.conf_d = root / "conf.d"
        self.config = root / "nginx.conf"
        self.pid_file = root / "run" / "nginx.pid"
        self.error_log = root / "logs" / "error.log"
        for d in (self.conf_d, self.pid_file.parent, self.error_log.parent, root / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        self.config.write_text(self.main_conf())
        self.set_backends()
        self.cfg = NginxConfig(binary=binary, config=str(self.config),
                               pid_file=str(self.pid_file), reload_timeout=TIMEOUT)

    def main_conf(self, port: int | None = None) -> str:
        """The main config text, listening on ``port`` (default: this env's port)."""
        return MAIN_CONF.format(pid_file=self.pid_file, error_log=self.error_log,
                                tmp=self.root / "tmp", conf_d=self.conf_d,
                                port=port or self.port)

    def set_backends(self, *ports: int) -> None:
        """Write ``upstream backend`` with these ports (none: one server marked down → 502)."""
        servers = [f"    server 127.0.0.1:{p};" for p in ports] or ["    server 127.0.0.1:9 down;"]
        text = "upstream backend {\n" + "\n".join(servers) + "\n}\n"
        (self.conf_d / "upstream.conf").write_text(text)

    def write_conf_d(self, name: str, text: str) -> Path:
        """Write a snippet into conf.d."""
        path = self.conf_d / name
        path.write_text(text)
        return path

    # -- processes -----------------------------------------------------------------------

    def start(self) -> int:
        """Start nginx directly (not through ctmpl) and return the master pid."""
        for _ in range(3):
            with tempfile.TemporaryFile() as err:  # a file: the daemon may keep stderr open
                res = subprocess.run([self.binary, "-c", str(self.config)], timeout=TIMEOUT,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=err, start_new_session=True, check=False)
                err.seek(0)
                output = err.read().decode(errors="replace")
            if res.returncode == 0:
                break
            if "Address already in use" not in output:
                pytest.fail(f"nginx did not start: {output}")
            # Another process took the port between free_port() and now: pick another.
            self.port = free_port()
            self.config.write_text(self.main_conf())
        else:
            pytest.fail(f"nginx did not start: {output}")
        wait_until(lambda: self.master_pid() is not None, what="nginx master")
        wait_until(self.worker_pids, what="nginx workers")
        pid = self.master_pid()
        assert pid is not None
        return pid

    def master_pid(self) -> int | None:
        """The pid file's pid when it names a live nginx master."""
        try:
            pid = int(self.pid_file.read_text().strip())
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE and _title(proc).startswith(
                    "nginx: master process"):
                return pid
        except (OSError, ValueError, psutil.Error):
            pass
        return None

    def worker_pids(self) -> set[int]:
        """Pids of the live master's active workers."""
        pid = self.master_pid()
        if pid is None:
            return set()
        with contextlib.suppress(psutil.Error):
            return {c.pid for c in psutil.Process(pid).children()
                    if _title(c).startswith("nginx: worker process")
                    and "shutting down" not in _title(c)}
        return set()

    def wait_new_workers(self, old: set[int], timeout: float = TIMEOUT) -> set[int]:
        """Wait until the active workers are all new; return them."""
        wait_until(lambda: (w := self.worker_pids()) and not w & old, timeout,
                   what="new nginx workers")
        return self.worker_pids()

    def processes(self) -> list[psutil.Process]:
        """Every live nginx process of this env: master, workers and orphans."""
        log = os.path.realpath(self.error_log)
        found = []
        for proc in psutil.process_iter():
            if not _title(proc).startswith("nginx:"):
                continue
            with contextlib.suppress(psutil.Error):
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                if any(os.path.realpath(f.path) == log for f in proc.open_files()):
                    found.append(proc)
        return found

    def kill_master(self) -> tuple[int, set[int]]:
        """SIGKILL the master only, leaving its workers orphaned; return (master, workers)."""
        pid = self.master_pid()
        assert pid is not None
        workers = self.worker_pids()
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: self.master_pid() is None, what="master to die")
        return pid, workers

    def stop(self) -> None:
        """Kill every process of this env and wait for them to go."""
        for _ in range(5):
            procs = self.processes()
            if not procs:
                return
            # Masters first: a master whose worker dies forks a new one.
            procs.sort(key=lambda p: not _title(p).startswith("nginx: master process"))
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            wait_gone(procs, TIMEOUT)

    # -- traffic and logs ----------------------------------------------------------------

    def fetch(self, path: str = "/", port: int | None = None) -> tuple[int, str]:
        """GET ``path`` through nginx; return (status, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    def try_fetch(self, path: str = "/") -> tuple[int, str] | None:
        """Like :meth:`fetch`, but None when nothing answers."""
        try:
            return self.fetch(path)
        except OSError:
            return None

    def wait_body(self, body: str, timeout: float = TIMEOUT) -> None:
        """Wait until ``/`` answers 200 with ``body``."""
        wait_until(lambda: self.try_fetch() == (200, body), timeout,
                   what=f"nginx to answer {body!r}")

    def log_text(self) -> str:
        """The whole error log."""
        try:
            return self.error_log.read_text(errors="replace")
        except OSError:
            return ""

    def reload_count(self) -> int:
        """How many SIGHUP reloads nginx has logged."""
        return len(re.findall(r"#\d+: reconfiguring$", self.log_text(), re.MULTILINE))


@pytest.fixture
def nginx_env(tmp_path: Path) -> Iterator[NginxEnv]:
    """A private, not yet started nginx; every process of it is killed at teardown."""
    if NGINX_BIN is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    env = NginxEnv(tmp_path / "nginx", NGINX_BIN)
    try:
        yield env
    finally:
        env.stop()


@pytest.fixture
def make_backend() -> Iterator[Callable[[str], Backend]]:
    """Factory for loopback HTTP backends; all are stopped at teardown."""
    backends: list[Backend] = []

    def make(name: str) -> Backend:
        backend = start_backend(name)
        backends.append(backend)
        return backend

    yield make
    for backend in backends:
        backend.stop()
