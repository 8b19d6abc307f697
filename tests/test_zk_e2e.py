"""End to end: ``python -m ctmpl -catalog zk://…`` as a subprocess against a real ZooKeeper."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.daemon import RenderDaemon, render_daemons, render_once, wait_for
from tests.fixtures_zk import ZkServer

TEMPLATE = """\
{% for s in services() %}service {{ s.Name }}
{% endfor %}{% for s in service("web") %}server {{ s.ID }} {{ s.Address }}:{{ s.Port }};
{% endfor %}mode={{ key("APP/mode") }}
"""


def expected(*servers: str, mode: str = "blue") -> str:
    lines = ["service web"] if servers else []
    lines += [f"server {s};" for s in servers]
    return "\n".join([*lines, f"mode={mode}"]) + "\n"


@pytest.fixture
def app(zk: KazooClient, zk_prefix: str) -> str:
    """The raw KV node folder of the test (outside the catalog prefix), mode=blue."""
    folder = zk_prefix.rsplit("/", 1)[0] + "/app"
    zk.create(f"{folder}/mode", b"blue", makepath=True)
    return folder


@pytest.fixture
def ctmpl(tmp_path: Path, zk_server: ZkServer, zk_prefix: str, app: str
          ) -> Iterator[Callable[[], RenderDaemon]]:
    """Starts ctmpl daemons on the test's prefix with 2 s sessions (stopped after the test)."""
    config = tmp_path / "zk.hcl"
    config.write_text('zk {\n  session_timeout = "2s"\n}\n')
    args = ["-catalog", f"zk://{zk_server.hosts}{zk_prefix}", "-config", str(config)]
    with render_daemons(tmp_path, TEMPLATE.replace("APP", app[1:]), args) as start:
        yield start


def sessions(server: ZkServer) -> set[str]:
    """The session ids of the server's client connections."""
    return set(re.findall(r"sid=(0x[0-9a-f]+)", server.four("cons")))


def test_once(tmp_path: Path, zk_server: ZkServer, zk: KazooClient, zk_prefix: str,
              app: str) -> None:
    zk.create(f"{zk_prefix}/web/10.0.0.1:80", makepath=True)
    src, dest = tmp_path / "t.tmpl", tmp_path / "out.conf"
    src.write_text(TEMPLATE.replace("APP", app[1:]))
    done = render_once(["-catalog", f"zk://{zk_server.hosts}{zk_prefix}"], src, dest)
    assert done.returncode == 0, done.stderr
    assert dest.read_text() == expected("10.0.0.1:80 10.0.0.1:80")
    assert "Zookeeper connection established" not in done.stderr  # kazoo's chatter: DEBUG


def test_instances_come_and_go(zk_server: ZkServer, zk: KazooClient, zk_prefix: str,
                               app: str, ctmpl: Callable[[], RenderDaemon]) -> None:
    zk.create(f"{zk_prefix}/web/a", b"10.0.0.1:80", makepath=True)
    owner = zk_server.client()
    try:
        owner.create(f"{zk_prefix}/web/10.0.0.2:8080", ephemeral=True)
        proc = ctmpl()
        proc.wait_for(expected("10.0.0.2:8080 10.0.0.2:8080", "a 10.0.0.1:80"))
        zk.create(f"{zk_prefix}/web/c", b'{"Address": "10.0.0.3", "Port": 81}')
        zk.set(f"{app}/mode", b"green")
        proc.wait_for(expected("10.0.0.2:8080 10.0.0.2:8080", "a 10.0.0.1:80",
                               "c 10.0.0.3:81", mode="green"))
    finally:
        owner.stop()  # the instance's session ends: its ephemeral node goes with it
        owner.close()
    proc.wait_for(expected("a 10.0.0.1:80", "c 10.0.0.3:81", mode="green"))
    zk.delete(f"{zk_prefix}/web/a")
    proc.wait_for(expected("c 10.0.0.3:81", mode="green"))


def test_session_expiry_loses_no_update(zk_server: ZkServer, zk: KazooClient, zk_prefix: str,
                                        ctmpl: Callable[[], RenderDaemon]) -> None:
    zk.create(f"{zk_prefix}/web/a", b"10.0.0.1:80", makepath=True)
    zk.create(f"{zk_prefix}/web/b", b"10.0.0.2:80")
    proc = ctmpl()
    proc.wait_for(expected("a 10.0.0.1:80", "b 10.0.0.2:80"))
    ours = f"{zk.client_id[0]:#x}"
    daemon = sessions(zk_server) - {ours}
    assert daemon, zk_server.four("cons")
    proc.signal(signal.SIGSTOP)  # a frozen process (a GC pause, a suspended VM) …
    try:
        # … outlives its 2 s session: the server expires it and drops its watches.
        wait_for(lambda: not sessions(zk_server) & daemon, what="the session to expire")
        zk.delete(f"{zk_prefix}/web/a")
        zk.create(f"{zk_prefix}/web/c", b"10.0.0.3:80")
    finally:
        proc.signal(signal.SIGCONT)
    proc.wait_for(expected("b 10.0.0.2:80", "c 10.0.0.3:80"))
    proc.wait_log("with a new session; reading the watched nodes again")


def test_server_restart_loses_no_update(zk_server: ZkServer, zk: KazooClient, zk_prefix: str,
                                        ctmpl: Callable[[], RenderDaemon]) -> None:
    zk.create(f"{zk_prefix}/web/a", b"10.0.0.1:80", makepath=True)
    zk.create(f"{zk_prefix}/web/b", b"10.0.0.2:80")
    proc = ctmpl()
    before = expected("a 10.0.0.1:80", "b 10.0.0.2:80")
    proc.wait_for(before)
    zk_server.stop()
    proc.wait_log("connection lost (reconnecting; keeping the last good data)")
    assert proc.read() == before
    zk_server.start()
    zk.retry(zk.delete, f"{zk_prefix}/web/a")
    zk.retry(zk.create, f"{zk_prefix}/web/c", b"10.0.0.3:80")
    proc.wait_for(expected("b 10.0.0.2:80", "c 10.0.0.3:80"))
    proc.wait_log("recovered after")
    assert proc.text().count("[WARNING]") == 1, proc.text()
