"""pytest plugin: one real ZooKeeper server on a random loopback port for the whole session.

``zk_server`` yields a ``ZkServer``: ``.hosts`` ("127.0.0.1:PORT"), ``stop()``/``start()``
that keep the port and the data, ``four(cmd)`` for four-letter-word commands, and
``client()`` for a kazoo client the test writes with. The JVM takes a few seconds to start,
so the server is shared; each test works under its own ``zk_prefix``. Skipped when the
Debian package ``zookeeper`` (its jar and java) is not installed.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.fixtures_etcd import free_port, kill_server

JAR = Path(os.environ.get("CTMPL_ZOOKEEPER_JAR", "/usr/share/java/zookeeper.jar"))
START_TIMEOUT = 60.0
TICK_MS = 200  # sessions may be as short as 2 ticks: tests expire them in a second or two
_prefixes = itertools.count(1)


class ZkServer:
    """A standalone ZooKeeper (``ZooKeeperServerMain``) with its own zoo.cfg."""

    def __init__(self, java: str, directory: Path) -> None:
        self.java = java
        self.port = free_port()
        self.hosts = f"127.0.0.1:{self.port}"
        self.config = directory / "zoo.cfg"
        self.data_dir = directory / "data"
        self.log_path = directory / "zookeeper.log"
        (directory / "data").mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f"tickTime={TICK_MS}\n"
            f"dataDir={directory / 'data'}\n"
            f"clientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\n"
            "4lw.commands.whitelist=ruok,cons,stat\n"
            "maxClientCnxns=0\n"
            "autopurge.purgeInterval=0\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """True while the java process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (same port and data every time); wait until it answers imok."""
        assert not self.running, "zookeeper is already running"
        args = [self.java, "-Xmx128m", "-Xss512k", "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1", "-Dzookeeper.jmx.log4j.disable=true",
                "-cp", str(JAR), "org.apache.zookeeper.server.ZooKeeperServerMain",
                str(self.config)]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while self.four("ruok") != "imok":
            if not self.running:
                raise RuntimeError(f"zookeeper exited at start:\n{self._log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"zookeeper not up after {START_TIMEOUT}s:\n"
                                   f"{self._log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill the server (SIGKILL), as a crash or a lost host would."""
        proc, self._proc = self._proc, None
        kill_server(proc)

    def wipe(self) -> None:
        """Lose every node and session, as a ZooKeeper recreated without its volume does."""
        assert not self.running, "stop zookeeper first"
        shutil.rmtree(self.data_dir)
        self.data_dir.mkdir()

    def four(self, command: str) -> str:
        """A four-letter-word command's answer ("" when the server does not answer)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(command.encode())
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError:
            return ""
        return b"".join(chunks).decode(errors="replace")

    def client(self, **kwargs: object) -> KazooClient:
        """A started kazoo client; stop it with ``client.stop(); client.close()``."""
        client = KazooClient(hosts=self.hosts, **kwargs)
        client.start(timeout=15)
        return client

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"


def java() -> str:
    """The java binary (the test is skipped when ZooKeeper is not installed)."""
    java = shutil.which("java")
    if not java or not JAR.is_file():
        pytest.skip("ZooKeeper not installed (apt-get install zookeeper)")
    return java


@pytest.fixture(scope="session")
def zk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkServer]:
    """The session's ZooKeeper server; always killed at the end. A test that stops it must
    start it again."""
    server = ZkServer(java(), tmp_path_factory.mktemp("zookeeper"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def zk(zk_server: ZkServer) -> Iterator[KazooClient]:
    """A kazoo client of the shared server for the test to write with (running server
    guaranteed at the start)."""
    if not zk_server.running:
        zk_server.start()
    client = zk_server.client()
    try:
        yield client
    finally:
        client.stop()
        client.close()


@pytest.fixture
def zk_prefix() -> str:
    """A node path no other test of the session uses."""
    return f"/t{next(_prefixes)}-{os.getpid()}/services"
