"""End to end: ``python -m ctmpl -catalog etcd://…`` as a subprocess against a real etcd."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.daemon import RenderDaemon, render_daemons, render_once
from tests.fixtures_etcd import EtcdServer

TEMPLATE = """\
# upstreams
{% for s in services() %}service {{ s.Name }}
{% endfor %}{% for s in service("web") %}server {{ s.ID }} {{ s.Address }}:{{ s.Port }} \
tags={{ s.Tags | join(",") }};
{% endfor %}{% for s in service("calico.web") %}calico {{ s.ID }};
{% endfor %}mode={{ key("app/mode") }}
"""


def expected(
    servers: list[str], *, services: tuple[str, ...] = ("web",), calico: tuple[str, ...] = (),
    mode: str = "blue",
) -> str:
    lines = ["# upstreams", *(f"service {s}" for s in services), *servers]
    lines += [f"calico {c};" for c in calico]
    return "\n".join([*lines, f"mode={mode}"]) + "\n"


@pytest.fixture
def ctmpl(tmp_path: Path, etcd: EtcdServer) -> Iterator[Callable[[], RenderDaemon]]:
    """Starts ctmpl daemons (stopped after the test); ``app/mode`` is set for ``key()``."""
    etcd.put("app/mode", "blue")
    with render_daemons(tmp_path, TEMPLATE, catalog_args(etcd)) as start:
        yield start


def catalog_args(etcd: EtcdServer) -> list[str]:
    return ["-catalog", f"etcd://{etcd.endpoint}/services"]


def server(id: str, address: str, port: int = 80, tags: str = "") -> str:
    return f"server {id} {address}:{port} tags={tags};"


def test_once(tmp_path: Path, etcd: EtcdServer) -> None:
    etcd.put("/services/web/a", "10.0.0.1:80")
    etcd.put("app/mode", "blue")
    src, dest = tmp_path / "t.tmpl", tmp_path / "out.conf"
    src.write_text(TEMPLATE)
    done = render_once(catalog_args(etcd), src, dest)
    assert done.returncode == 0, done.stderr
    assert dest.read_text() == expected([server("a", "10.0.0.1")], mode="blue")


def test_put_delete_retag(etcd: EtcdServer, ctmpl: Callable[[], RenderDaemon]) -> None:
    etcd.put("/services/web/a", "10.0.0.1:80")
    proc = ctmpl()
    proc.wait_for(expected([server("a", "10.0.0.1")]))

    etcd.put("/services/web/b", "10.0.0.2:8080")
    proc.wait_for(expected([server("a", "10.0.0.1"), server("b", "10.0.0.2", 8080)]))

    etcd.put("/services/web/a", json.dumps({"Address": "10.0.0.1", "Port": 80,
                                           "Tags": ["calico", "v2"]}))
    proc.wait_for(expected(
        [server("a", "10.0.0.1", tags="calico,v2"), server("b", "10.0.0.2", 8080)],
        calico=("a",),
    ))

    etcd.delete("/services/web/b")
    etcd.put("app/mode", "green")
    etcd.put("/services/db/x", "10.0.1.1:5432")
    proc.wait_for(expected(
        [server("a", "10.0.0.1", tags="calico,v2")],
        services=("db", "web"), calico=("a",), mode="green",
    ))


def test_lease_expiry_removes_instance(etcd: EtcdServer, ctmpl: Callable[[], RenderDaemon]) -> None:
    etcd.put("/services/web/a", "10.0.0.1:80")
    etcd.lease_put("/services/web/b", "10.0.0.2:80", ttl=2)
    proc = ctmpl()
    # The lease may expire before the first render; the file must still end without b.
    proc.wait_for(expected([server("a", "10.0.0.1")]))
    assert etcd.get("/services/web/b") is None


def test_restart_mid_watch(etcd: EtcdServer, ctmpl: Callable[[], RenderDaemon]) -> None:
    etcd.put("/services/web/a", "10.0.0.1:80")
    etcd.put("/services/web/b", "10.0.0.2:80")
    proc = ctmpl()
    proc.wait_for(expected([server("a", "10.0.0.1"), server("b", "10.0.0.2")]))

    etcd.stop()
    proc.wait_log("retrying")
    assert proc.read() == expected([server("a", "10.0.0.1"), server("b", "10.0.0.2")])
    etcd.start()
    etcd.delete("/services/web/a")
    etcd.put("/services/web/c", "10.0.0.3:80")
    proc.wait_for(expected([server("b", "10.0.0.2"), server("c", "10.0.0.3")]))
    etcd.put("/services/web/d", "10.0.0.4:80")
    proc.wait_for(expected(
        [server("b", "10.0.0.2"), server("c", "10.0.0.3"), server("d", "10.0.0.4")]
    ))


def test_compaction(etcd: EtcdServer, ctmpl: Callable[[], RenderDaemon]) -> None:
    etcd.put("/services/web/a", "10.0.0.1:80")
    etcd.put("/services/web/b", "10.0.0.2:80")
    proc = ctmpl()
    proc.wait_for(expected([server("a", "10.0.0.1"), server("b", "10.0.0.2")]))

    etcd.stop()
    proc.wait_log("retrying")
    etcd.start()
    for n in range(20):
        etcd.put("/services/web/churn", f"10.0.9.{n}:80")
    etcd.delete("/services/web/churn")
    etcd.delete("/services/web/a")
    etcd.put("/services/web/b", "10.0.0.2:81")
    etcd.put("/services/web/c", "10.0.0.3:80")
    etcd.compact()
    proc.wait_for(expected([server("b", "10.0.0.2", 81), server("c", "10.0.0.3")]))
    etcd.put("/services/web/e", "10.0.0.5:80")
    proc.wait_for(expected(
        [server("b", "10.0.0.2", 81), server("c", "10.0.0.3"), server("e", "10.0.0.5")]
    ))


def test_down_at_start(etcd: EtcdServer, ctmpl: Callable[[], RenderDaemon]) -> None:
    etcd.put("/services/web/a", "10.0.0.1:80")
    etcd.put("app/mode", "green")
    etcd.stop()
    proc = ctmpl()
    proc.wait_log("connection refused")
    assert proc.read() is None, "rendered without data"
    etcd.start()
    want = expected([server("a", "10.0.0.1")], mode="green")

    def never_partial(text: str) -> None:
        assert text == want, f"wrote an incomplete file:\n{text}"

    proc.wait_for(want, check=never_partial)
