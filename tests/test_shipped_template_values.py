"""The shipped templates with IPv6 instances, big upstreams, hostile metadata and their
listen/domain variables, each checked by the real nginx -t / haproxy -c."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.test_shipped_templates import HAPROXY, NGINX, nginx_check
from tests.test_shipped_templates_property import render

needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed")


def inst(ident: str, address: str, port: int = 8080, **meta: str) -> dict[str, Any]:
    return {"id": ident, "node": "n1", "address": address, "port": port,
            "tags": ["calico"], "meta": meta}


def nginx_render(tmp_path: Path, services: dict[str, Any], **variables: str) -> str:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    text = render(tmp_path, "nginx.conf.j2", {"services": services},
                  **{"log_dir": str(logs), "listen": "127.0.0.1:1", **variables})
    out = tmp_path / "out.conf"
    out.write_text(text)
    proc = nginx_check(tmp_path, str(out))
    assert proc.returncode == 0, proc.stderr
    return text


def haproxy_render(tmp_path: Path, services: dict[str, Any], **variables: str) -> str:
    text = render(tmp_path, "haproxy.cfg.j2", {"services": services},
                  **{"bind": "127.0.0.1:1", **variables})
    out = tmp_path / "out.cfg"
    out.write_text(text)
    assert HAPROXY is not None
    proc = subprocess.run([HAPROXY, "-c", "-f", str(out)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return text


WEB6 = {"web": [inst("v6", "::1"), inst("v4", "10.0.0.1"), inst("v6b", "2001:db8::7", 9000)]}


@needs_nginx
def test_nginx_ipv6_instances(tmp_path: Path) -> None:
    text = nginx_render(tmp_path, WEB6)
    assert "    server [::1]:8080 max_fails" in text
    assert "    server [2001:db8::7]:9000 max_fails" in text
    assert "    server 10.0.0.1:8080 max_fails" in text


@needs_haproxy
def test_haproxy_ipv6_instances(tmp_path: Path) -> None:
    text = haproxy_render(tmp_path, WEB6)
    assert "    server v6 [::1]:8080 check" in text
    assert "    server v6b [2001:db8::7]:9000 check" in text
    assert "    server v4 10.0.0.1:8080 check" in text


@needs_nginx
@pytest.mark.parametrize("count", [1, 1000, 5000])
def test_nginx_zone_fits_the_upstream(tmp_path: Path, count: int) -> None:
    services = {"big": [inst(f"b{i}", f"2001:db8:aaaa:bbbb:cccc:dddd:{i // 65536:x}:{i % 65536:x}",
                             65535) for i in range(count)]}
    text = nginx_render(tmp_path, services)
    assert text.count("    server [2001:db8:") == count


HOSTILE_META = {"web": [
    inst("a", "10.0.0.1", weight="1 down", max_fails="3 #", fail_timeout="10s backup"),
    inst("b", "10.0.0.2", weight="5", max_fails="0", fail_timeout="2m"),
    inst("c", "10.0.0.3", weight="100000", fail_timeout="500ms"),
]}


@needs_nginx
def test_nginx_hostile_meta_falls_back_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    text = nginx_render(tmp_path, HOSTILE_META)
    assert "server 10.0.0.1:8080 max_fails=3 fail_timeout=60 weight=1;" in text
    assert "server 10.0.0.2:8080 max_fails=0 fail_timeout=2m weight=5;" in text
    assert "server 10.0.0.3:8080 max_fails=3 fail_timeout=60 weight=1;" in text
    for bad in ("down", "#", "backup", "500ms", "100000"):
        assert bad not in text.split("upstream", 1)[1].split("}", 1)[0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("instance a: meta weight='1 down'" in w for w in warnings) == 1, warnings
    assert sum("instance c: meta fail_timeout='500ms'" in w for w in warnings) == 1, warnings
    again_dir = tmp_path / "again"
    again_dir.mkdir()
    nginx_render(again_dir, HOSTILE_META)  # the same catalog again: no new warning
    again = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(again) == len(warnings)


@needs_haproxy
def test_haproxy_hostile_meta_and_duplicate_ids(tmp_path: Path) -> None:
    services = {"web": [
        {**inst("web", "10.0.0.1", weight="1 #"), "node": "n1"},
        {**inst("web", "10.0.0.2", weight="7"), "node": "n2"},  # same ID on another node
        inst("odd@id", "10.0.0.3"),
    ]}
    text = haproxy_render(tmp_path, services)
    lines = [line.split() for line in text.splitlines() if line.startswith("    server ")]
    names = [parts[1] for parts in lines]
    assert len(set(names)) == 3 and "web" in names and "odd@id" not in " ".join(names)
    assert {parts[2]: parts[-1] for parts in lines} == {
        "10.0.0.1:8080": "1", "10.0.0.2:8080": "7", "10.0.0.3:8080": "1"}


@needs_nginx
def test_nginx_listen_and_domain_come_from_vars(tmp_path: Path) -> None:
    services = {"web-app": [inst("a", "10.0.0.1")]}
    text = nginx_render(tmp_path, services, listen="127.0.0.1:8181", domain="test.internal")
    assert "    listen 127.0.0.1:8181;" in text
    assert "    server_name web.app.test.internal;" in text


def test_nginx_defaults_are_todays_values(tmp_path: Path) -> None:
    text = render(tmp_path, "nginx.conf.j2", {"services": {"web": [inst("a", "10.0.0.1")]}})
    assert "    listen 80;" in text
    assert "    server_name web.example.com;" in text
    assert "    access_log /var/log/nginx/web.access.log;" in text


def test_haproxy_defaults_are_todays_values(tmp_path: Path) -> None:
    text = render(tmp_path, "haproxy.cfg.j2", {"services": {"web": [inst("a", "10.0.0.1")]}})
    assert "    bind *:80" in text
    assert "hdr(host) -i web.example.com" in text



UNTAGGED = {"web": [{"id": "w1", "node": "n1", "address": "10.0.0.5", "port": 8080}],
            "api": [{"id": "a1", "node": "n1", "address": "10.0.0.6", "port": 9000,
                     "tags": ["calico"]}]}


@needs_nginx
def test_nginx_empty_tag_publishes_every_service(tmp_path: Path) -> None:
    (tmp_path / "calico").mkdir()
    (tmp_path / "all").mkdir()
    assert "upstream web {" not in nginx_render(tmp_path / "calico", UNTAGGED)
    text = nginx_render(tmp_path / "all", UNTAGGED, tag="")
    assert "upstream web {" in text and "    server 10.0.0.5:8080 max_fails" in text
    assert "upstream api {" in text


@needs_haproxy
def test_haproxy_empty_tag_publishes_every_service(tmp_path: Path) -> None:
    assert "backend web\n" not in haproxy_render(tmp_path, UNTAGGED)
    text = haproxy_render(tmp_path, UNTAGGED, tag="")
    assert "backend web\n" in text and "10.0.0.5:8080" in text and "backend api\n" in text
