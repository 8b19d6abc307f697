"""``-status-addr``: /health JSON and Prometheus /metrics of a running daemon, scraped."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.daemon import daemon, wait_for, write_catalog
from tests.fixtures_nginx import Backend, NginxEnv, free_port
from tests.test_daemon_nginx import instance, setup

WEB = [{"id": "w1", "address": "127.0.0.1", "port": 8081}]
TEMPLATE = '{% for i in service("web") %}{{ i.Address }}:{{ i.Port }}\n{% endfor %}'


def get(port: int, path: str) -> tuple[int, str]:
    """GET ``path`` from the status server."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def try_get(port: int, path: str) -> tuple[int, str] | None:
    """Like :func:`get`, None while nothing listens."""
    try:
        return get(port, path)
    except OSError:
        return None


def health(port: int) -> tuple[int, dict[str, Any]]:
    """The /health status and document."""
    status, body = get(port, "/health")
    return status, json.loads(body)


def metrics(port: int) -> dict[str, float]:
    """Every sample of /metrics, parsed by prometheus_client, as ``name{labels}`` → value."""
    status, body = get(port, "/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return samples


def file_args(tmp_path: Path, port: int, config: str = "") -> list[str]:
    """A daemon over a file catalog with one template (plus an HCL config when given)."""
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {"web": WEB})
    source = tmp_path / "web.tmpl"
    source.write_text(TEMPLATE)
    args = ["-catalog", f"file://{catalog}", "-wait", "0s", "-status-addr", f"127.0.0.1:{port}"]
    if config:
        hcl = tmp_path / "ctmpl.hcl"
        hcl.write_text(config.format(src=source, dest=tmp_path / "out.txt"))
        return [*args, "-config", str(hcl)]
    return [*args, "-template", f"{source}:{tmp_path / 'out.txt'}"]


def test_off_by_default(tmp_path: Path) -> None:
    port = free_port()
    args = [a for a in file_args(tmp_path, port) if "status-addr" not in a and str(port) not in a]
    with daemon(args, tmp_path / "log") as proc:
        wait_for((tmp_path / "out.txt").exists, what="render")
        assert try_get(port, "/health") is None
        assert "status server" not in proc.text()


def test_health_and_metrics_of_a_healthy_daemon(tmp_path: Path) -> None:
    port = free_port()
    with daemon(file_args(tmp_path, port), tmp_path / "log") as proc:
        wait_for(lambda: try_get(port, "/health"), what=f"status server\n{proc.text()}")
        wait_for(lambda: [t["state"] for t in health(port)[1]["templates"].values()]
                 == ["rendered"], what="the template rendered in /health")
        status, doc = health(port)
        assert status == 200, doc
        assert doc["status"] == "ok"
        assert doc["source"] == "file"
        assert doc["proxy"] == {"kind": "none", "state": "none"}
        assert [w["state"] for w in doc["watches"].values()] == ["ok"]
        (template,) = doc["templates"].values()
        assert template["state"] == "rendered"
        assert template["destination"] == str(tmp_path / "out.txt")
        assert template["last_render"] > 0
        seen = metrics(port)
        name = str(tmp_path / "web.tmpl")
        assert seen[f"ctmpl_renders_total{{outcome=complete,template={name}}}"] >= 1
        assert seen["ctmpl_watched_queries"] == 1
        assert seen["ctmpl_render_duration_seconds_count"] >= 1
        assert seen["ctmpl_last_successful_render_timestamp_seconds"] > 1e9
        assert seen["ctmpl_checks_failed_total"] == 0
        assert seen["ctmpl_consul_requests_total"] == 0


CHECKED = """\
template {{
  source = "{src}"
  destination = "{dest}"
  check = "grep -q 8081 {{{{staged}}}}"
}}
"""


def test_failed_check_answers_503_until_a_check_passes(tmp_path: Path) -> None:
    port = free_port()
    with daemon(file_args(tmp_path, port, CHECKED), tmp_path / "log") as proc:
        wait_for(lambda: try_get(port, "/health") and health(port)[0] == 200,
                 what=f"healthy\n{proc.text()}")
        write_catalog(tmp_path / "catalog.yaml", {"web": [{**WEB[0], "port": 9090}]})
        wait_for(lambda: health(port)[0] == 503, what="503 after a failed check")
        doc = health(port)[1]
        assert doc["check"]["state"] == "failed"
        assert "grep -q 8081" in doc["check"]["error"]
        assert metrics(port)["ctmpl_checks_failed_total"] == 1
        write_catalog(tmp_path / "catalog.yaml", {"web": [*WEB, {**WEB[0], "id": "w2"}]})
        wait_for(lambda: health(port)[0] == 200, what="healthy again")


def test_source_errors_and_consul_requests_are_counted(tmp_path: Path) -> None:
    port, dead = free_port(), free_port()
    source = tmp_path / "web.tmpl"
    source.write_text(TEMPLATE)
    args = ["-consul-addr", f"127.0.0.1:{dead}", "-consul-retry-backoff", "50ms",
            "-consul-retry-max-backoff", "200ms", "-status-addr", f"127.0.0.1:{port}",
            "-template", f"{source}:{tmp_path / 'out.txt'}"]
    with daemon(args, tmp_path / "log") as proc:
        wait_for(lambda: try_get(port, "/metrics"), what=f"status server\n{proc.text()}")
        wait_for(lambda: metrics(port).get("ctmpl_source_errors_total{source=consul}", 0) >= 2,
                 what="source errors counted")
        assert metrics(port)["ctmpl_consul_requests_total"] >= 2
        doc = health(port)[1]
        (watch,) = doc["watches"].values()
        assert watch["state"] == "error"
        assert "connection refused" in watch["error"]
        (template,) = doc["templates"].values()
        assert template["state"] == "waiting"


def test_taken_address_is_a_config_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with daemon(file_args(tmp_path, port), tmp_path / "log") as proc:
            wait_for(lambda: not proc.alive(), what="exit")
            assert proc.proc.returncode == 3
            assert f"status_addr 127.0.0.1:{port}: cannot listen" in proc.text()


def test_503_when_nginx_is_down(tmp_path: Path, nginx_env: NginxEnv,
                                make_backend: Callable[[str], Backend]) -> None:
    port = free_port()
    catalog, args = setup(tmp_path, nginx_env, wait="0s")
    write_catalog(catalog, {"web": [instance(make_backend("a"))]})
    with daemon([*args, "-status-addr", f"127.0.0.1:{port}"], tmp_path / "log") as proc:
        nginx_env.wait_body("a\n")
        wait_for(lambda: health(port)[0] == 200, what=f"healthy\n{proc.text()}")
        doc = health(port)[1]
        assert doc["proxy"] == {"kind": "nginx", "state": "up", "pid": nginx_env.master_pid()}
        assert metrics(port)["ctmpl_reloads_total{outcome=started}"] >= 1
        nginx_env.stop()
        wait_for(lambda: health(port)[0] == 503, what="503 once nginx is gone")
        assert health(port)[1]["proxy"]["state"] == "down"


def test_shrink_guard_holds_are_reported(tmp_path: Path) -> None:
    port = free_port()
    with daemon(file_args(tmp_path, port), tmp_path / "log"):
        wait_for((tmp_path / "out.txt").exists, what="render")
        assert health(port)[1]["shrink_guard"] == {}
        write_catalog(tmp_path / "catalog.yaml", {"web": []})
        held = wait_for(lambda: health(port)[1]["shrink_guard"], what="the hold in /health")
        (dest, state), = held.items()
        assert dest == str(tmp_path / "out.txt")
        assert (state["before"], state["after"], state["reason"]) == (1, 0, "drop")
        assert metrics(port)["ctmpl_shrink_guard_held"] == 1
        assert metrics(port)["ctmpl_shrink_guard_holds_total"] == 1
        write_catalog(tmp_path / "catalog.yaml", {"web": WEB})  # recovered
        wait_for(lambda: not health(port)[1]["shrink_guard"], what="the release")
        assert metrics(port)["ctmpl_shrink_guard_held"] == 0
