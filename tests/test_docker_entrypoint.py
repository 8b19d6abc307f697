"""The image's entrypoint, run here as a script with real nginx: what ``docker run`` does.

No Docker engine runs in the test environment, so the test plays the image: the mounted
template directory is the repository's ``templates/`` (``-v ./templates:/etc/ctmpl/templates``),
nginx is the test's private instance, and everything else is the entrypoint's defaults.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.daemon import wait_for, write_catalog
from tests.fixtures_consul import ConsulFixture
from tests.fixtures_nginx import Backend, NginxEnv, free_port

ENTRYPOINT = ROOT / "contrib" / "docker" / "ctmpl-entrypoint.sh"


class Container:
    """The entrypoint running with the image's layout mapped onto the test's nginx."""

    def __init__(self, tmp_path: Path, env: NginxEnv, settings: dict[str, str]) -> None:
        env.config.write_text(env.main_conf().replace("daemon on;\n", ""))
        self.port = free_port()
        self.log = tmp_path / "container.log"
        logs = tmp_path / "access"
        logs.mkdir()
        environ = {
            **os.environ,
            "CTMPL_BIN": str(Path(sys.executable).with_name("ctmpl")),
            "CTMPL_TEMPLATES": str(ROOT / "templates"),
            "CTMPL_OUTPUT_DIR": str(env.conf_d),
            "CTMPL_CONFIG": str(tmp_path / "absent.d"),
            "CTMPL_WAIT": "0s",
            "NGINX_BIN": env.binary,
            "NGINX_CONF": str(env.config),
            "NGINX_PID": str(env.pid_file),
            **settings,
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(ENTRYPOINT), "-var", f"listen=127.0.0.1:{self.port}",
                 "-var", f"log_dir={logs}", "-log-level", "debug"],
                env=environ, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, host: str) -> tuple[int, str] | None:
        """GET / with a Host header through nginx; None while nothing answers."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/", headers={"Host": host})
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        except OSError:
            return None
        finally:
            conn.close()

    def wait_serving(self, host: str, body: str) -> None:
        """Wait until nginx answers ``body`` for ``host``; fail with the container's log."""
        try:
            wait_for(lambda: self.get(host) == (200, body), what=f"{host} to answer {body!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.text()}") from None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def container(tmp_path: Path, nginx_env: NginxEnv) -> Iterator[Callable[..., Container]]:
    started: list[Container] = []

    def start(**settings: str) -> Container:
        started.append(Container(tmp_path, nginx_env, settings))
        return started[-1]

    yield start
    for c in started:
        c.stop()


def test_serves_the_shipped_template_from_a_file_catalog(
    tmp_path: Path, container: Callable[..., Container], nginx_env: NginxEnv,
    make_backend: Callable[[str], Backend],
) -> None:
    a = make_backend("a")
    catalog = tmp_path / "catalog.yaml"
    web = {"id": "a", "address": "127.0.0.1", "port": a.port, "tags": ["calico"]}
    write_catalog(catalog, {"web-app": [web]})
    box = container(CTMPL_CATALOG=f"file://{catalog}")
    box.wait_serving("web.app.example.com", "a\n")
    rendered = (nginx_env.conf_d / "nginx.conf").read_text()
    assert "upstream web-app" in rendered
    assert not (nginx_env.conf_d / "haproxy.cfg").exists(), "only *.conf templates render"

    b = make_backend("b")
    write_catalog(catalog, {"web-app": [{**web, "id": "b", "port": b.port}]})
    wait_for(lambda: box.get("web.app.example.com") == (200, "b\n"), what="reload to b")
    wait_for(lambda: "nginx: reloaded master" in box.text(), what="the verified reload")

    assert box.stop() == 0
    assert "exec: sending SIGQUIT" in box.text()
    wait_for(lambda: not nginx_env.processes(), what="nginx to be gone")


def test_serves_from_consul(
    container: Callable[..., Container], consul: ConsulFixture,
    make_backend: Callable[[str], Backend],
) -> None:
    a = make_backend("a")
    consul.register("api-1", "api", "127.0.0.1", a.port, tags=["calico"])
    box = container(CONSUL_HTTP_ADDR=consul.addr)
    box.wait_serving("api.example.com", "a\n")


def test_without_templates_it_says_what_to_mount(
    tmp_path: Path, nginx_env: NginxEnv
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    res = subprocess.run(
        [str(ENTRYPOINT)], capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "CTMPL_TEMPLATES": str(empty), "CTMPL_CONFIG": str(tmp_path / "x")},
    )
    assert res.returncode == 2
    assert f"no NAME.conf.j2 (or .tmpl, .ctmpl) template in {empty}" in res.stderr


def test_two_templates_for_one_file_are_refused(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "site.conf.j2").write_text("x\n")
    (templates / "site.conf.ctmpl").write_text("x\n")
    res = subprocess.run(
        [str(ENTRYPOINT)], capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "CTMPL_TEMPLATES": str(templates), "CTMPL_OUTPUT_DIR": "/out"},
    )
    assert res.returncode == 2
    assert "render /out/site.conf: keep one of site.conf.j2, .tmpl, .ctmpl" in res.stderr


def test_dockerfile_matches_the_entrypoint() -> None:
    """What the image copies and runs is what the entrypoint and this test expect."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    entrypoint = ENTRYPOINT.read_text()
    assert dockerfile.startswith("#") and "\nFROM nginx:" in dockerfile  # the official image
    assert "COPY contrib/docker/ctmpl-entrypoint.sh /usr/local/bin/ctmpl-entrypoint" in dockerfile
    assert 'ENTRYPOINT ["/usr/local/bin/ctmpl-entrypoint"]' in dockerfile
    assert "python3 -m venv /opt/ctmpl" in dockerfile
    assert "CTMPL_BIN:-/opt/ctmpl/bin/ctmpl}" in entrypoint
    assert "COPY templates/nginx.conf.j2 /etc/ctmpl/templates/upstreams.conf.j2" in dockerfile
    assert "CTMPL_TEMPLATES:-/etc/ctmpl/templates}" in entrypoint
    for source in ("pyproject.toml", "README.md", "ctmpl", "templates/nginx.conf.j2"):
        assert (ROOT / source).exists(), source
    assert os.access(ENTRYPOINT, os.X_OK)
    shellcheck = Path(sys.executable).with_name("shellcheck")
    if shellcheck.exists():
        res = subprocess.run([str(shellcheck), str(ENTRYPOINT)], capture_output=True,
                             text=True, timeout=60, check=False)
        assert res.returncode == 0, res.stdout
