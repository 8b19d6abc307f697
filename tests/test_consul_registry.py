"""``ctmpl register`` through the Consul agent API (the double, or a real agent), read by ctmpl."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import daemon, render_daemons, wait_for
from tests.fixtures_consul import ConsulFixture
from tests.fixtures_etcd import free_port
from tests.test_etcd_registry import FAST, TcpBackend

TEMPLATE = ('{% for i in service("web") %}{{ i.ID }} {{ i.Address }}:{{ i.Port }} '
            '{{ i.Tags|join(",") }}\n{% endfor %}')


@pytest.fixture
def backend() -> Iterator[TcpBackend]:
    server = TcpBackend()
    yield server
    server.stop()


def register_args(consul: ConsulFixture, port: int, *extra: str) -> list[str]:
    return ["register", "-consul-addr", consul.addr, "-service", "web", "-id", "web-1",
            "-address", f"127.0.0.1:{port}", "-tag", "calico", *FAST, *extra]


def checks(consul: ConsulFixture) -> list[tuple[str, str]]:
    """(CheckID, Status) of web-1's service checks; [] when it is not registered."""
    entries: list[dict[str, Any]] = consul.call("GET", "/v1/health/service/web") or []
    return [(c["CheckID"], c["Status"]) for e in entries if e["Service"]["ID"] == "web-1"
            for c in e["Checks"] if c.get("ServiceID")]


def test_ttl_check_follows_health_and_ctmpl_renders_it(
    tmp_path: Path, consul: ConsulFixture, backend: TcpBackend
) -> None:
    line = f"web-1 127.0.0.1:{backend.port} calico\n"
    with daemon(register_args(consul, backend.port), tmp_path / "side.log") as side, \
            render_daemons(tmp_path, TEMPLATE,  # the last instance leaves on purpose
                           ["-consul-addr", consul.addr, "-shrink-guard=false"]) as start:
        ctmpl = start()
        ctmpl.wait_for(line)
        assert checks(consul) == [("service:web-1", "passing")]
        side.wait_log("registered as passing")

        backend.stop()
        wait_for(lambda: checks(consul) == [("service:web-1", "critical")], what="critical")
        ctmpl.wait_for("")
        side.wait_log("unhealthy (connection refused)")

        assert side.stop() == 0  # SIGTERM: deregistered before the sidekick exits
        assert checks(consul) == []
        assert "consul service web-1" in side.text() and "deregistered" in side.text()


def test_registered_again_after_the_agent_restarts(
    tmp_path: Path, consul: ConsulFixture, backend: TcpBackend
) -> None:
    with daemon(register_args(consul, backend.port), tmp_path / "side.log") as side:
        wait_for(lambda: checks(consul) == [("service:web-1", "passing")], what="registered")
        consul.stop()
        side.wait_log("registry unreachable")
        consul.start()  # a dev agent starts empty
        wait_for(lambda: checks(consul) == [("service:web-1", "passing")], what="re-registered")
        assert side.alive()
        side.wait_log("registered again")


def test_agent_losing_the_service_registers_it_again(
    tmp_path: Path, consul: ConsulFixture, backend: TcpBackend
) -> None:
    with daemon(register_args(consul, backend.port), tmp_path / "side.log") as side:
        wait_for(lambda: checks(consul) == [("service:web-1", "passing")], what="registered")
        consul.call("PUT", "/v1/agent/service/deregister/web-1")
        side.wait_log("registered again")  # (a slow answer may have been the first to tell)
        wait_for(lambda: checks(consul) == [("service:web-1", "passing")], what="re-registered")


def test_once_and_an_unreachable_agent(consul: ConsulFixture, backend: TcpBackend) -> None:
    done = run_register(register_args(consul, backend.port, "-once"))
    assert done.returncode == 0, done.stderr
    wait_for(lambda: checks(consul) == [("service:web-1", "passing")], what="registered")
    done = run_register(["register", "-consul-addr", f"127.0.0.1:{free_port()}", "-service",
                         "web", "-address", f"127.0.0.1:{backend.port}", "-once",
                         "-log-level", "err"])
    assert done.returncode == 5
    assert done.stderr.startswith("ctmpl register: consul: connection refused (127.0.0.1:")
    assert done.stderr.count("\n") == 1


def run_register(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ctmpl", *args], capture_output=True,
                          text=True, timeout=60, check=False)
