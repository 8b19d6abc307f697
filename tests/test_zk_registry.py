"""``ctmpl register`` against a real ZooKeeper: an ephemeral node, read back by ctmpl's
ZooKeeper catalog."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from tests.daemon import Daemon, daemon, render_once, wait_for
from tests.fixtures_zk import ZkServer
from tests.test_etcd_registry import TcpBackend, run_register

# The server's tick is 200 ms: a 1 s session ends a second after its client is gone.
FAST = ["-interval", "200ms", "-rise", "1", "-fall", "2", "-ttl", "1s", "-log-level", "debug"]
TEMPLATE = '{% for i in service("calico.web") %}{{ i.ID }}={{ i.Address }}:{{ i.Port }}\n' \
    "{% endfor %}"


@pytest.fixture
def backend() -> Iterator[TcpBackend]:
    backend = TcpBackend()
    yield backend
    backend.stop()


def sidekick(tmp_path: Path, zk_server: ZkServer, prefix: str, port: int,
             name: str = "sidekick") -> AbstractContextManager[Daemon]:
    args = ["register", "-catalog", f"zk://{zk_server.hosts}{prefix}", "-service", "web",
            "-tag", "calico", "-address", f"127.0.0.1:{port}", *FAST]
    return daemon(args, tmp_path / f"{name}.log")


def node_of(prefix: str, port: int) -> str:
    return f"{prefix}/web/127.0.0.1:{port}"


def data(zk: KazooClient, path: str) -> bytes | None:
    try:
        return zk.get(path)[0]  # type: ignore[no-any-return]
    except NoNodeError:
        return None


def rendered(tmp_path: Path, zk_server: ZkServer, prefix: str) -> str:
    src, dest = tmp_path / "t.j2", tmp_path / "out.conf"
    src.write_text(TEMPLATE)
    dest.unlink(missing_ok=True)
    done = render_once(["-catalog", f"zk://{zk_server.hosts}{prefix}"], src, dest)
    assert done.returncode == 0, done.stderr
    return dest.read_text() if dest.exists() else ""


def test_health_drives_the_node_and_the_catalog_reads_it(
    tmp_path: Path, zk_server: ZkServer, zk: KazooClient, zk_prefix: str, backend: TcpBackend
) -> None:
    path = node_of(zk_prefix, backend.port)
    with sidekick(tmp_path, zk_server, zk_prefix, backend.port) as proc:
        wait_for(lambda: data(zk, path) is not None, what="node registered")
        assert json.loads(data(zk, path) or b"") == {
            "Address": "127.0.0.1", "Port": backend.port, "Tags": ["calico"], "Meta": {}}
        assert zk.exists(path).ephemeralOwner != 0  # type: ignore[union-attr]
        proc.wait_log(f"ZooKeeper node {path}: registered (session ")
        line = f"127.0.0.1:{backend.port}=127.0.0.1:{backend.port}\n"
        assert rendered(tmp_path, zk_server, zk_prefix) == line

        backend.stop()  # the instance dies: its node goes after `fall` failed checks
        wait_for(lambda: data(zk, path) is None, what="node deleted")
        proc.wait_log(f"ZooKeeper node {path}: deregistered")
        assert rendered(tmp_path, zk_server, zk_prefix) == ""
        assert proc.stop() == 0


def test_a_stop_removes_the_node_and_a_kill_leaves_it_to_the_session(
    tmp_path: Path, zk_server: ZkServer, zk: KazooClient, zk_prefix: str, backend: TcpBackend
) -> None:
    path = node_of(zk_prefix, backend.port)
    with sidekick(tmp_path, zk_server, zk_prefix, backend.port) as proc:
        wait_for(lambda: data(zk, path) is not None, what="node registered")
        assert proc.stop() == 0
        assert data(zk, path) is None
    with sidekick(tmp_path, zk_server, zk_prefix, backend.port, "b") as proc:
        wait_for(lambda: data(zk, path) is not None, what="node registered again")
        proc.signal(signal.SIGKILL)
        proc.proc.wait(10)
        assert data(zk, path) is not None  # until ZooKeeper ends the silent session
        wait_for(lambda: data(zk, path) is None, what="session expiry")


def test_registered_again_after_a_deletion_and_after_zookeeper_lost_its_data(
    tmp_path: Path, zk_server: ZkServer, zk: KazooClient, zk_prefix: str, backend: TcpBackend
) -> None:
    path = node_of(zk_prefix, backend.port)
    with sidekick(tmp_path, zk_server, zk_prefix, backend.port) as proc:
        wait_for(lambda: data(zk, path) is not None, what="node registered")
        zk.delete(path)
        wait_for(lambda: data(zk, path) is not None, what="node created again")
        proc.wait_log("registration lost (the node is missing); registered again")

        zk_server.stop()
        zk_server.wipe()  # a ZooKeeper recreated without its volume
        proc.wait_log("registry unreachable: ZooKeeper")
        zk_server.start()
        client = zk_server.client()
        try:
            wait_for(lambda: data(client, path) is not None, timeout=30,
                     what="registration restored")
        finally:
            client.stop()
            client.close()
        proc.wait_log("registry reachable again")
        assert proc.alive()
        assert proc.stop() == 0


def test_once_is_refused_with_zookeeper(zk_server: ZkServer, backend: TcpBackend) -> None:
    done = run_register(["-catalog", f"zk://{zk_server.hosts}/services", "-service", "web",
                         "-address", f"127.0.0.1:{backend.port}", "-once"])
    assert done.returncode == 2
    assert "ephemeral node" in done.stderr and done.stderr.count("\n") == 1, done.stderr
