"""End to end: ``python -m ctmpl -consul-addr …`` as a subprocess against the ``consul`` fixture."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.daemon import RenderDaemon, render_daemons, render_once
from tests.fixtures_consul import ConsulFixture

ROOT = Path(__file__).resolve().parent.parent
NGINX_TEMPLATE = ROOT / "templates" / "nginx.conf.j2"

TEMPLATE = """\
# upstreams
{% for s in services() %}service {{ s.Name }}
{% endfor %}{% for s in service("web") %}server {{ s.ID }} {{ s.Address }}:{{ s.Port }} \
tags={{ s.Tags | join(",") }};
{% endfor %}{% for s in service("calico.web") %}calico {{ s.ID }};
{% endfor %}{% for p in tree("app/cfg") %}cfg {{ p.Key }}={{ p.Value }}
{% endfor %}mode={{ key("app/mode") }}
"""


def expected(
    servers: list[str],
    *,
    services: tuple[str, ...] = ("consul", "web"),
    calico: tuple[str, ...] = (),
    cfg: tuple[str, ...] = (),
    mode: str = "blue",
) -> str:
    lines = ["# upstreams", *(f"service {s}" for s in services), *servers]
    lines += [f"calico {c};" for c in calico]
    lines += [f"cfg {c}" for c in cfg]
    return "\n".join([*lines, f"mode={mode}"]) + "\n"


def server(id: str, address: str, port: int = 80, tags: str = "") -> str:
    return f"server {id} {address}:{port} tags={tags};"


@pytest.fixture
def ctmpl(tmp_path: Path, consul: ConsulFixture) -> Iterator[Callable[[], RenderDaemon]]:
    """Starts ctmpl daemons against ``consul`` (stopped after the test)."""
    with render_daemons(tmp_path, TEMPLATE, ["-consul-addr", consul.addr], cwd=ROOT) as start:
        yield start


def run_once(consul: ConsulFixture, src: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    return render_once(["-consul-addr", consul.addr], src, dest, cwd=ROOT)


def test_once(tmp_path: Path, consul: ConsulFixture) -> None:
    consul.register("web-1", "web", "10.0.0.1", 80, tags=["calico"])
    consul.put("app/mode", "blue")
    consul.put("app/cfg/a", "1")
    src, dest = tmp_path / "t.tmpl", tmp_path / "out.conf"
    src.write_text(TEMPLATE)
    done = run_once(consul, src, dest)
    assert done.returncode == 0, done.stderr
    assert dest.read_text() == expected([server("web-1", "10.0.0.1", tags="calico")],
                                        calico=("web-1",), cfg=("a=1",))


def test_shipped_nginx_template(tmp_path: Path, consul: ConsulFixture) -> None:
    assert NGINX_TEMPLATE.is_file(), "templates/nginx.conf.j2 is shipped"
    consul.register("web-app-1", "web-app", "10.0.0.11", 8080, tags=["calico", "v1"])
    consul.register("web-app-2", "web-app", "10.0.0.12", 8080, tags=["calico", "v1"])
    consul.register("web-app-3", "web-app", "10.0.0.13", 8080, tags=["calico"],
                    status="critical")
    consul.register("api-1", "api", "10.0.0.21", 9090, tags=["calico"])
    consul.register("db-1", "db", "10.0.0.31", 5432, tags=["postgres"])
    dest = tmp_path / "nginx.conf"
    done = run_once(consul, NGINX_TEMPLATE, dest)
    assert done.returncode == 0, done.stderr
    text = dest.read_text()
    assert "upstream web-app {" in text and "upstream api {" in text
    assert "server 10.0.0.11:8080 max_fails=3" in text
    assert "server 10.0.0.12:8080 max_fails=3" in text
    assert "10.0.0.13" not in text  # critical
    assert "server_name web.app.example.com;" in text
    assert "proxy_pass http://api;" in text
    assert "db" not in text.replace("Generated", "")  # not tagged calico


def test_changes_rerender(consul: ConsulFixture, ctmpl: Callable[[], RenderDaemon]) -> None:
    consul.register("web-1", "web", "10.0.0.1", 80, tags=["calico"])
    consul.put("app/mode", "blue")
    proc = ctmpl()
    proc.wait_for(expected([server("web-1", "10.0.0.1", tags="calico")], calico=("web-1",)))

    consul.register("web-2", "web", "10.0.0.2", 8080)
    two = [server("web-1", "10.0.0.1", tags="calico"), server("web-2", "10.0.0.2", 8080)]
    proc.wait_for(expected(two, calico=("web-1",)))

    consul.set_status("web-1", "critical")
    proc.wait_for(expected([server("web-2", "10.0.0.2", 8080)]))

    consul.set_status("web-1", "passing")
    consul.retag("web-2", ["calico", "v2"])
    proc.wait_for(expected([server("web-1", "10.0.0.1", tags="calico"),
                            server("web-2", "10.0.0.2", 8080, tags="calico,v2")],
                           calico=("web-1", "web-2")))

    consul.deregister("web-1")
    consul.put("app/mode", "green")
    consul.put("app/cfg/x", "y")
    proc.wait_for(expected([server("web-2", "10.0.0.2", 8080, tags="calico,v2")],
                           calico=("web-2",), cfg=("x=y",), mode="green"))

    consul.register("db-1", "db", "10.0.1.1", 5432)
    proc.wait_for(expected([server("web-2", "10.0.0.2", 8080, tags="calico,v2")],
                           services=("consul", "db", "web"), calico=("web-2",), cfg=("x=y",),
                           mode="green"))


def test_consul_restart(consul: ConsulFixture, ctmpl: Callable[[], RenderDaemon]) -> None:
    consul.register("web-1", "web", "10.0.0.1", 80)
    consul.register("web-2", "web", "10.0.0.2", 80)
    consul.put("app/mode", "blue")
    proc = ctmpl()
    before = expected([server("web-1", "10.0.0.1"), server("web-2", "10.0.0.2")])
    proc.wait_for(before)

    consul.stop()
    proc.wait_log("retrying")
    assert proc.read() == before, "the last good file must stay while Consul is down"
    consul.start()  # a restarted dev agent comes back empty; registrations come back
    consul.register("web-2", "web", "10.0.0.2", 80)
    consul.register("web-3", "web", "10.0.0.3", 80)
    consul.put("app/mode", "green")
    proc.wait_for(expected([server("web-2", "10.0.0.2"), server("web-3", "10.0.0.3")],
                           mode="green"))
    consul.register("web-4", "web", "10.0.0.4", 80)
    proc.wait_for(expected([server("web-2", "10.0.0.2"), server("web-3", "10.0.0.3"),
                            server("web-4", "10.0.0.4")], mode="green"))


def test_consul_down_at_start(consul: ConsulFixture, ctmpl: Callable[[], RenderDaemon]) -> None:
    consul.stop()
    proc = ctmpl()
    proc.wait_log("connection refused")
    assert proc.read() is None, "rendered without data"
    consul.start()
    consul.register("web-1", "web", "10.0.0.1", 80)
    consul.put("app/mode", "green")  # last: key() holds the render until it exists
    want = expected([server("web-1", "10.0.0.1")], mode="green")

    def never_partial(text: str) -> None:
        assert text == want, f"wrote an incomplete file:\n{text}"

    proc.wait_for(want, check=never_partial)
