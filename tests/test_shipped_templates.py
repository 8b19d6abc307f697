"""The shipped nginx and HAProxy templates, rendered through the CLI and checked by the real
binaries; hostile catalog values must never reach the output."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.foundation_util import ROOT, run_cli

NGINX = shutil.which("nginx") or (("/usr/sbin/nginx") if Path("/usr/sbin/nginx").exists() else None)
HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
)

HOSTILE = """
  "evil;}":
    - {id: evil-1, address: 10.9.9.9, port: 80, tags: [calico]}
  hostile-addr:
    - {id: h-1, address: "1.1.1.1; include /etc/passwd", port: 80, tags: [calico]}
  newline-tag:
    - {id: nl-1, address: 10.8.8.8, port: 8088, tags: ["calico\\ninclude /etc/passwd;"]}
  sneaky:
    - {id: "s-1;}", address: 10.7.7.7, port: 80, tags: [calico]}
    - {id: s-2, address: 10.7.7.8, port: 80, tags: [calico], meta: {x: "a;}"}}
"""


def render(tmp_path: Path, template: str, catalog: Path, *extra: str) -> str:
    out = tmp_path / "out.conf"
    proc = run_cli(["-once", "-catalog", f"file://{catalog}",
                    "-template", f"{ROOT / 'templates' / template}:{out}", *extra], tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out.read_text()


def nginx_check(tmp_path: Path, snippet: str) -> subprocess.CompletedProcess[str]:
    assert NGINX is not None
    prefix = tmp_path / "prefix"
    (prefix / "logs").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/logs/error.log;\n"
        "events {}\n"
        "http {\n"
        f"    access_log {prefix}/logs/access.log;\n"
        f"    client_body_temp_path {prefix}/body;\n"
        f"    proxy_temp_path {prefix}/proxy;\n"
        f"    fastcgi_temp_path {prefix}/fastcgi;\n"
        f"    uwsgi_temp_path {prefix}/uwsgi;\n"
        f"    scgi_temp_path {prefix}/scgi;\n"
        f"    include {snippet};\n"
        "}\n"
    )
    return subprocess.run([NGINX, "-t", "-p", str(prefix), "-c", str(conf)],
                          capture_output=True, text=True, timeout=30, check=False)


def hostile_catalog(tmp_path: Path) -> Path:
    text = (ROOT / "examples" / "catalog.yaml").read_text()
    text = text.replace("services:\n", "services:\n" + HOSTILE.lstrip("\n"), 1)
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    return path


def assert_no_injection(text: str) -> None:
    for bad in ("evil", "1.1.1.1", "/etc/passwd", "10.8.8.8", "s-1", "a;}"):
        assert bad not in text, bad


def test_nginx_template_renders_expected_upstreams(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    text = render(tmp_path, "nginx.conf.j2", ROOT / "examples" / "catalog.yaml",
                  "-var", f"log_dir={logs}")
    assert "upstream web-app {" in text and "upstream api-svc {" in text
    assert "server 10.0.0.11:8080" in text and "server 10.0.0.12:8080" in text
    assert "10.0.0.13" not in text  # critical instance
    assert "upstream batch" not in text and "batch" not in text  # no healthy instance
    assert "upstream db" not in text  # not tagged calico
    assert "upstream web-app {\n}" not in text
    assert "server_name web.app.example.com;" in text
    assert f"access_log {logs}/web-app.access.log;" in text


def test_nginx_template_output_is_deterministic(tmp_path: Path) -> None:
    catalog = ROOT / "examples" / "catalog.yaml"
    first = render(tmp_path, "nginx.conf.j2", catalog)
    (tmp_path / "out.conf").unlink()
    assert render(tmp_path, "nginx.conf.j2", catalog) == first


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_nginx_template_passes_nginx_t(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    render(tmp_path, "nginx.conf.j2", ROOT / "examples" / "catalog.yaml",
           "-var", f"log_dir={logs}")
    proc = nginx_check(tmp_path, str(tmp_path / "out.conf"))
    assert proc.returncode == 0, proc.stderr
    assert "test is successful" in proc.stderr


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_hostile_catalog_values_never_reach_nginx(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    text = render(tmp_path, "nginx.conf.j2", hostile_catalog(tmp_path), "-var", f"log_dir={logs}")
    assert_no_injection(text)
    assert "upstream web-app {" in text and "upstream api-svc {" in text
    assert "server 10.7.7.8:80" in text  # s-2 kept, its bad meta dropped
    proc = nginx_check(tmp_path, str(tmp_path / "out.conf"))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed")
def test_haproxy_template_passes_haproxy_c(tmp_path: Path) -> None:
    text = render(tmp_path, "haproxy.cfg.j2", ROOT / "examples" / "catalog.yaml",
                  "-var", "bind=127.0.0.1:18080")
    assert "backend web-app" in text and "server web-app-1 10.0.0.11:8080 check" in text
    assert "batch" not in text and "web-app-3" not in text
    assert HAPROXY is not None
    proc = subprocess.run([HAPROXY, "-c", "-f", str(tmp_path / "out.conf")],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed")
def test_hostile_catalog_values_never_reach_haproxy(tmp_path: Path) -> None:
    text = render(tmp_path, "haproxy.cfg.j2", hostile_catalog(tmp_path),
                  "-var", "bind=127.0.0.1:18080")
    assert_no_injection(text)
    assert HAPROXY is not None
    proc = subprocess.run([HAPROXY, "-c", "-f", str(tmp_path / "out.conf")],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
