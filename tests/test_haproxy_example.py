"""The shipped HAProxy setup end to end: examples/haproxy/ctmpl.hcl + templates/haproxy.cfg.j2
driving a real HAProxy from a file catalog (paths moved into a temp directory)."""

from __future__ import annotations

import contextlib
import http.client
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from ctmpl.proxy.haproxy_cli import CliError, command, parse_servers_state, parse_show_proc
from ctmpl.proxy.haproxy_procs import leftovers
from tests.daemon import daemon, wait_for, write_catalog
from tests.fixtures_haproxy import HAPROXY_BIN
from tests.fixtures_nginx import Backend, free_port
from tests.foundation_util import ROOT

MakeBackend = Callable[[str], Backend]


class Example:
    """The example config with every path under ``root`` and the frontend on a free port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.master = root / "run" / "master.sock"
        self.admin = root / "run" / "admin.sock"
        self.catalog = root / "catalog.yaml"
        text = (ROOT / "examples" / "haproxy" / "ctmpl.hcl").read_text()
        for old, new in {
            "/etc/ctmpl/haproxy.cfg.j2": str(ROOT / "templates" / "haproxy.cfg.j2"),
            "/etc/haproxy/haproxy.cfg": str(root / "haproxy.cfg"),
            "/run/haproxy-master.sock": str(self.master),
            "/run/haproxy/admin.sock": str(self.admin),
            "/run/haproxy.pid": str(root / "run" / "haproxy.pid"),
            "/var/lib/haproxy/server-state": str(root / "server-state"),
            '"*:80"': f'"127.0.0.1:{self.port}"',
        }.items():
            assert old in text, old
            text = text.replace(old, new)
        self.config = root / "ctmpl.hcl"
        self.config.write_text(text)

    def args(self) -> list[str]:
        return ["-config", str(self.config), "-catalog", f"file://{self.catalog}",
                "-wait", "100ms:500ms"]

    def bodies(self, host: str = "web.app.example.com") -> set[str]:
        found = set()
        for _ in range(8):
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                try:
                    conn.request("GET", "/", headers={"Host": host})
                    resp = conn.getresponse()
                    body = resp.read().decode().strip()
                    found.add(body if resp.status == 200 else str(resp.status))
                finally:
                    conn.close()
        return found

    def reloads(self) -> int:
        """The master's reload counter (asking again while it does not answer)."""
        found: list[int] = []

        def ask() -> bool:
            with contextlib.suppress(CliError):
                if table := parse_show_proc(command(str(self.master), "show proc")):
                    found.append(table.reloads)
            return bool(found)

        wait_for(ask, what="the HAProxy master CLI")
        return found[0]

    def in_maintenance(self, server: str) -> bool:
        states = parse_servers_state(command(str(self.admin), "show servers state web-app"))
        return states[("web-app", server)].in_maintenance


@pytest.fixture
def example(tmp_path: Path) -> Iterator[Example]:
    if HAPROXY_BIN is None:
        pytest.skip("haproxy is not installed")
    ex = Example(tmp_path)
    try:
        yield ex
    finally:
        for proc in leftovers(HAPROXY_BIN, str(ex.master)):
            with contextlib.suppress(psutil.Error):
                proc.kill()


def web(*instances: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {"web-app": list(instances)}


def inst(backend: Backend, **meta: str) -> dict[str, Any]:
    return {"id": backend.name, "address": "127.0.0.1", "port": backend.port,
            "tags": ["calico"], "meta": meta}


def test_shipped_setup_serves_and_updates_servers_without_reloads(
        example: Example, make_backend: MakeBackend, tmp_path: Path) -> None:
    a, b, api = make_backend("a"), make_backend("b"), make_backend("api")
    write_catalog(example.catalog, web(inst(a)))
    with daemon(example.args(), tmp_path / "ctmpl.log") as proc:
        wait_for(lambda: example.bodies() == {"a"}, what=f"HAProxy serving a\n{proc.text()}")
        assert example.reloads() == 0
        for catalog, want in [
            (web(inst(a), inst(b)), {"a", "b"}),  # added
            (web(inst(a), inst(b, admin_state="drain")), {"a"}),  # drained (weight 0)
            (web(inst(a), inst(b, admin_state="maint")), {"a"}),  # maintenance
            (web(inst(a), inst(b, weight="3")), {"a", "b"}),  # ready again
            (web(inst(b)), {"b"}),  # removed
        ]:
            write_catalog(example.catalog, catalog)
            wait_for(lambda want=want: example.bodies() == want,  # type: ignore[misc]
                     what=f"HAProxy serving {want}\n{proc.text()}")
        assert example.reloads() == 0, proc.text()
        assert "through the runtime API, no reload" in proc.text()
        write_catalog(example.catalog, {**web(inst(b)), "api-svc": [inst(api)]})
        wait_for(lambda: example.bodies("api.svc.example.com") == {"api"},
                 what=f"the new backend\n{proc.text()}")
        assert example.reloads() == 1
