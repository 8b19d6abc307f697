"""``ctmpl register`` against a real etcd, read back by ctmpl's etcd catalog and served by nginx."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.daemon import Daemon, daemon, render_once, wait_for
from tests.fixtures_etcd import EtcdServer, free_port
from tests.fixtures_haproxy import HaproxyEnv
from tests.fixtures_nginx import Backend, NginxEnv
from tests.test_daemon_haproxy import setup as haproxy_setup

FAST = ["-interval", "200ms", "-rise", "1", "-fall", "2", "-ttl", "2s", "-log-level", "debug"]
UPSTREAM = """\
upstream backend {
{% for i in service("calico.web") %}
    server {{ i.Address }}:{{ i.Port }};
{% else %}
    server 127.0.0.1:9 down;
{% endfor %}
}
"""


def register_args(etcd: EtcdServer, backend_port: int, *extra: str) -> list[str]:
    return ["register", "-catalog", f"etcd://{etcd.endpoint}/services",
            "-address", f"127.0.0.1:{backend_port}", *FAST, *extra]


@contextlib.contextmanager
def sidekick(tmp_path: Path, args: list[str], name: str = "sidekick") -> Iterator[Daemon]:
    with daemon(args, tmp_path / f"{name}.log") as proc:
        yield proc


def key_of(port: int) -> str:
    return f"/services/web/127.0.0.1:{port}"


class TcpBackend:
    """A loopback listener that accepts and closes connections until stopped."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)


@pytest.fixture
def tcp_backend() -> Iterator[TcpBackend]:
    backend = TcpBackend()
    yield backend
    backend.stop()


def test_health_drives_nginx_through_etcd(
    tmp_path: Path, etcd: EtcdServer, nginx_env: NginxEnv, make_backend: Callable[[str], Backend]
) -> None:
    a, b = make_backend("a"), make_backend("b")
    template = tmp_path / "upstream.j2"
    template.write_text(UPSTREAM)
    # The last instance leaves on purpose: no shrink guard holding the old config.
    ctmpl = ["-catalog", f"etcd://{etcd.endpoint}/services", "-wait", "0s", "-shrink-guard=false",
             "-template", f"{template}:{nginx_env.conf_d / 'upstream.conf'}",
             "-proxy", "nginx", "-nginx-conf", str(nginx_env.config),
             "-nginx-pid", str(nginx_env.pid_file)]
    check = ["-service", "web", "-tag", "calico", "-check", "http:/"]
    with sidekick(tmp_path, register_args(etcd, a.port, *check), "a") as side_a, \
            sidekick(tmp_path, register_args(etcd, b.port, *check), "b") as side_b, \
            daemon(ctmpl, tmp_path / "ctmpl.log"):
        wait_for(lambda: etcd.get(key_of(a.port)) and etcd.get(key_of(b.port)), what="keys")
        assert json.loads(etcd.get(key_of(a.port)) or "") == {
            "Address": "127.0.0.1", "Port": a.port, "Tags": ["calico"], "Meta": {}}
        wait_for(lambda: {"a", "b"} <= served(nginx_env), what="nginx serving a and b")

        a.stop()  # the backend dies: gone from etcd after `fall` failed checks, then from nginx
        wait_for(lambda: etcd.get(key_of(a.port)) is None, what="a's key removed")
        side_a.wait_log("unhealthy (connection refused)")
        side_a.wait_log(f"etcd key {key_of(a.port)}: deregistered")
        conf = nginx_env.conf_d / "upstream.conf"
        wait_for(lambda: f":{a.port};" not in conf.read_text(), what="a out of the config")
        wait_for(lambda: served(nginx_env) == {"b"}, what="nginx serving only b")

        assert side_b.stop() == 0  # SIGTERM: the key goes before the sidekick exits
        assert etcd.get(key_of(b.port)) is None
        wait_for(lambda: "server 127.0.0.1:9 down;" in conf.read_text(), what="empty upstream")


def served(env: NginxEnv, tries: int = 8) -> set[str]:
    names = set()
    for _ in range(tries):
        answer = env.try_fetch()
        if answer and answer[0] == 200:
            names.add(answer[1].strip())
    return names


def test_sigkill_leaves_the_key_to_its_lease(
    tmp_path: Path, etcd: EtcdServer, tcp_backend: TcpBackend
) -> None:
    with sidekick(tmp_path, register_args(etcd, tcp_backend.port, "-service", "web")) as proc:
        proc.wait_log("registered (lease")
        proc.signal(signal.SIGKILL)
        proc.proc.wait(10)
        assert etcd.get(key_of(tcp_backend.port)) == f"127.0.0.1:{tcp_backend.port}"
        wait_for(lambda: etcd.get(key_of(tcp_backend.port)) is None, what="lease expiry")


def test_restored_after_etcd_restarts_empty_or_loses_the_key(
    tmp_path: Path, etcd: EtcdServer, tcp_backend: TcpBackend
) -> None:
    key = key_of(tcp_backend.port)
    with sidekick(tmp_path, register_args(etcd, tcp_backend.port, "-service", "web")) as proc:
        wait_for(lambda: etcd.get(key), what="registered")
        etcd.delete(key)
        wait_for(lambda: etcd.get(key), what="key written again")
        proc.wait_log("registration lost (the key is missing); registered again")

        etcd.stop()
        shutil.rmtree(etcd.data_dir)  # a dev cluster restarted from scratch: leases gone too
        proc.wait_log("registry unreachable")
        etcd.start()
        wait_for(lambda: etcd.get(key), what="registration restored")
        assert proc.alive()
        proc.wait_log("registry reachable again")
        proc.wait_log("registered again")


def test_once_registers_deregisters_and_reads_back_flat(
    tmp_path: Path, etcd: EtcdServer, tcp_backend: TcpBackend
) -> None:
    key = f"/services/web/127.0.0.1:{tcp_backend.port}"
    args = ["-catalog", f"etcd://{etcd.endpoint}/services/web", "-address",
            f"127.0.0.1:{tcp_backend.port}", "-ttl", "60s", "-once"]
    done = run_register(args)
    assert done.returncode == 0, done.stderr
    assert etcd.get(key) == f"127.0.0.1:{tcp_backend.port}"
    src, dest = tmp_path / "t.j2", tmp_path / "out.conf"
    src.write_text('{% for i in service("web") %}{{ i.ID }}={{ i.Address }}:{{ i.Port }}\n'
                   "{% endfor %}")
    rendered = render_once(["-catalog", f"etcd://{etcd.endpoint}/services/web"], src, dest)
    assert rendered.returncode == 0, rendered.stderr
    assert dest.read_text() == f"127.0.0.1:{tcp_backend.port}=127.0.0.1:{tcp_backend.port}\n"

    again = run_register(args)  # a second run keeps the same lease alive
    assert again.returncode == 0 and "registered already (lease" in again.stderr, again.stderr
    lease = done.stderr.split("registered (lease ", 1)[1].split(",", 1)[0]
    assert f"registered already (lease {lease}," in again.stderr
    tcp_backend.stop()
    done = run_register(args)
    assert done.returncode == 10, done.stderr
    assert etcd.get(key) is None


def test_once_with_unreachable_etcd_is_one_line_exit_5(tcp_backend: TcpBackend) -> None:
    done = run_register(["-catalog", f"etcd://127.0.0.1:{free_port()}/services", "-service",
                         "web", "-address", f"127.0.0.1:{tcp_backend.port}", "-once",
                         "-log-level", "err"])
    assert done.returncode == 5
    assert done.stderr.startswith("ctmpl register: etcd: connection refused (127.0.0.1:")
    assert done.stderr.count("\n") == 1


def test_daemon_keeps_running_while_etcd_is_unreachable(tcp_backend: TcpBackend,
                                                        tmp_path: Path) -> None:
    args = ["register", "-catalog", f"etcd://127.0.0.1:{free_port()}/services", "-service",
            "web", "-address", f"127.0.0.1:{tcp_backend.port}", *FAST]
    with sidekick(tmp_path, args) as proc:
        proc.wait_log("registry unreachable: etcd: connection refused")
        wait_for(lambda: proc.text().count("retrying in") >= 3, what="retries")
        assert proc.alive()
        assert proc.text().count("[WARNING]") == 1, "one warning per outage"
        assert proc.stop() == 0


def run_register(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ctmpl", "register", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def once_via(server: EtcdServer, port: int, extra: list[str]) -> None:
    """-once succeeds with ``extra`` settings and fails in one line (exit 5) without."""
    args = ["-catalog", f"etcd://{server.endpoint}/services", "-service", "web",
            "-address", f"127.0.0.1:{port}", "-once"]
    done = run_register([*args, *extra])
    assert done.returncode == 0, done.stderr
    assert server.get(key_of(port)) == f"127.0.0.1:{port}"
    done = run_register([*args, "-log-level", "err"])
    assert done.returncode == 5
    assert done.stderr.startswith("ctmpl register: etcd: ") and done.stderr.count("\n") == 1


def test_tls_uses_the_catalog_connection(etcd_tls: EtcdServer, tcp_backend: TcpBackend) -> None:
    files = etcd_tls.tls
    assert files is not None
    once_via(etcd_tls, tcp_backend.port, [
        "-etcd-ca-cert", str(files.ca), "-etcd-cert", str(files.client_cert),
        "-etcd-key", str(files.client_key)])


def test_auth_uses_the_catalog_connection(etcd: EtcdServer, tcp_backend: TcpBackend) -> None:
    etcd.enable_auth("ctmpl", "s3cret")  # user ctmpl may only read: register as root
    once_via(etcd, tcp_backend.port, ["-etcd-username", "root", "-etcd-password", "s3cret"])


def test_shipped_nginx_template_renders_what_register_writes(
    tmp_path: Path, etcd: EtcdServer, tcp_backend: TcpBackend
) -> None:
    url = f"etcd://{etcd.endpoint}//services"  # a slash-led prefix: both halves parse it alike
    done = run_register(["-catalog", url, "-service", "web", "-tag", "calico", "-meta",
                         "weight=5", "-address", f"127.0.0.1:{tcp_backend.port}", "-once",
                         "-ttl", "60s"])
    assert done.returncode == 0, done.stderr
    dest = tmp_path / "upstreams.conf"
    rendered = render_once(["-catalog", url], ROOT / "templates" / "nginx.conf.j2", dest)
    assert rendered.returncode == 0, rendered.stderr
    text = dest.read_text()
    assert "upstream web {" in text and "server_name web.example.com;" in text
    assert f"    server 127.0.0.1:{tcp_backend.port} " in text and "weight=5;" in text


def test_health_drives_haproxy_through_etcd(
    tmp_path: Path, etcd: EtcdServer, haproxy_env: HaproxyEnv,
    make_backend: Callable[[str], Backend],
) -> None:
    a, b = make_backend("a"), make_backend("b")
    _, args = haproxy_setup(tmp_path, haproxy_env)
    args[args.index("-catalog") + 1] = f"etcd://{etcd.endpoint}/services"
    side = ["-service", "web", "-check", "http:/", "-id"]
    with sidekick(tmp_path, register_args(etcd, a.port, *side, "a"), "a"), \
            sidekick(tmp_path, register_args(etcd, b.port, *side, "b"), "b"):
        # registered first: HAProxy refuses a config without the frontend's default backend
        wait_for(lambda: etcd.get("/services/web/a") and etcd.get("/services/web/b"), what="keys")
        with daemon(args, tmp_path / "ctmpl.log") as ctmpl:
            wait_for(lambda: haproxy_env.bodies() == {"a", "b"}, what=f"a, b\n{ctmpl.text()}")
            a.stop()
            wait_for(lambda: etcd.get("/services/web/a") is None, what="a's key removed")
            haproxy_env.wait_bodies({"b"})
