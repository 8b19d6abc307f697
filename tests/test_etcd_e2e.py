"""End to end: ``python -m ctmpl -catalog etcd://…`` as a subprocess against a real etcd."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures_etcd import EtcdServer

# Generous: a re-render normally lands in well under a second.
TIMEOUT = 20.0

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


class Ctmpl:
    """A running ``python -m ctmpl`` daemon rendering TEMPLATE into ``dest``."""

    def __init__(self, tmp_path: Path, endpoint: str) -> None:
        self.src = tmp_path / "upstreams.tmpl"
        self.dest = tmp_path / "upstreams.conf"
        self.log = tmp_path / "ctmpl.log"
        self.src.write_text(TEMPLATE)
        args = [
            sys.executable, "-m", "ctmpl", "-catalog", f"etcd://{endpoint}/services",
            "-template", f"{self.src}:{self.dest}", "-wait", "0s", "-log-level", "debug",
        ]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def read(self) -> str | None:
        try:
            return self.dest.read_text()
        except FileNotFoundError:
            return None

    def wait_for(self, want: str, check: Callable[[str], None] | None = None) -> None:
        """Poll the rendered file until it equals ``want``; ``check`` sees every version."""
        deadline = time.monotonic() + TIMEOUT
        text = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"ctmpl exited:\n{self.log.read_text()}"
            text = self.read()
            if text is not None and check is not None:
                check(text)
            if text == want:
                return
            time.sleep(0.02)
        pytest.fail(f"file never became\n{want}\nlast:\n{text}\nlog:\n{self.log.read_text()}")

    def wait_log(self, needle: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if needle in self.log.read_text(errors="replace"):
                return
            assert self.proc.poll() is None, f"ctmpl exited:\n{self.log.read_text()}"
            time.sleep(0.05)
        pytest.fail(f"{needle!r} never logged:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def ctmpl(tmp_path: Path, etcd: EtcdServer) -> Iterator[Callable[[], Ctmpl]]:
    """Starts ctmpl daemons (stopped after the test); ``app/mode`` is set for ``key()``."""
    etcd.put("app/mode", "blue")
    started: list[Ctmpl] = []

    def start() -> Ctmpl:
        started.append(Ctmpl(tmp_path, etcd.endpoint))
        return started[-1]

    yield start
    for proc in started:
        proc.stop()


def server(id: str, address: str, port: int = 80, tags: str = "") -> str:
    return f"server {id} {address}:{port} tags={tags};"


def test_once(tmp_path: Path, etcd: EtcdServer) -> None:
    etcd.put("services/web/a", "10.0.0.1:80")
    etcd.put("app/mode", "blue")
    src, dest = tmp_path / "t.tmpl", tmp_path / "out.conf"
    src.write_text(TEMPLATE)
    done = subprocess.run(
        [sys.executable, "-m", "ctmpl", "-catalog", f"etcd://{etcd.endpoint}/services",
         "-template", f"{src}:{dest}", "-once"],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert dest.read_text() == expected([server("a", "10.0.0.1")], mode="blue")


def test_put_delete_retag(etcd: EtcdServer, ctmpl: Callable[[], Ctmpl]) -> None:
    etcd.put("services/web/a", "10.0.0.1:80")
    proc = ctmpl()
    proc.wait_for(expected([server("a", "10.0.0.1")]))

    etcd.put("services/web/b", "10.0.0.2:8080")
    proc.wait_for(expected([server("a", "10.0.0.1"), server("b", "10.0.0.2", 8080)]))

    etcd.put("services/web/a", json.dumps({"Address": "10.0.0.1", "Port": 80,
                                           "Tags": ["calico", "v2"]}))
    proc.wait_for(expected(
        [server("a", "10.0.0.1", tags="calico,v2"), server("b", "10.0.0.2", 8080)],
        calico=("a",),
    ))

    etcd.delete("services/web/b")
    etcd.put("app/mode", "green")
    etcd.put("services/db/x", "10.0.1.1:5432")
    proc.wait_for(expected(
        [server("a", "10.0.0.1", tags="calico,v2")],
        services=("db", "web"), calico=("a",), mode="green",
    ))


def test_lease_expiry_removes_instance(etcd: EtcdServer, ctmpl: Callable[[], Ctmpl]) -> None:
    etcd.put("services/web/a", "10.0.0.1:80")
    etcd.lease_put("services/web/b", "10.0.0.2:80", ttl=2)
    proc = ctmpl()
    # The lease may expire before the first render; the file must still end without b.
    proc.wait_for(expected([server("a", "10.0.0.1")]))
    assert etcd.get("services/web/b") is None


def test_restart_mid_watch(etcd: EtcdServer, ctmpl: Callable[[], Ctmpl]) -> None:
    etcd.put("services/web/a", "10.0.0.1:80")
    etcd.put("services/web/b", "10.0.0.2:80")
    proc = ctmpl()
    proc.wait_for(expected([server("a", "10.0.0.1"), server("b", "10.0.0.2")]))

    etcd.stop()
    proc.wait_log("retrying")
    assert proc.read() == expected([server("a", "10.0.0.1"), server("b", "10.0.0.2")])
    etcd.start()
    etcd.delete("services/web/a")
    etcd.put("services/web/c", "10.0.0.3:80")
    proc.wait_for(expected([server("b", "10.0.0.2"), server("c", "10.0.0.3")]))
    etcd.put("services/web/d", "10.0.0.4:80")
    proc.wait_for(expected(
        [server("b", "10.0.0.2"), server("c", "10.0.0.3"), server("d", "10.0.0.4")]
    ))


def test_compaction(etcd: EtcdServer, ctmpl: Callable[[], Ctmpl]) -> None:
    etcd.put("services/web/a", "10.0.0.1:80")
    etcd.put("services/web/b", "10.0.0.2:80")
    proc = ctmpl()
    proc.wait_for(expected([server("a", "10.0.0.1"), server("b", "10.0.0.2")]))

    etcd.stop()
    proc.wait_log("retrying")
    etcd.start()
    for n in range(20):
        etcd.put("services/web/churn", f"10.0.9.{n}:80")
    etcd.delete("services/web/churn")
    etcd.delete("services/web/a")
    etcd.put("services/web/b", "10.0.0.2:81")
    etcd.put("services/web/c", "10.0.0.3:80")
    etcd.compact()
    proc.wait_for(expected([server("b", "10.0.0.2", 81), server("c", "10.0.0.3")]))
    etcd.put("services/web/e", "10.0.0.5:80")
    proc.wait_for(expected(
        [server("b", "10.0.0.2", 81), server("c", "10.0.0.3"), server("e", "10.0.0.5")]
    ))


def test_down_at_start(etcd: EtcdServer, ctmpl: Callable[[], Ctmpl]) -> None:
    etcd.put("services/web/a", "10.0.0.1:80")
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
