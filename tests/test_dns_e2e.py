"""End to end: ``python -m ctmpl -catalog dns://…`` as a subprocess against a real dnsmasq.

The shrink guard is off in the daemons here, so what is tested is the DNS catalog's own
rule: one empty answer never empties an upstream; only a repeated one does.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.daemon import TIMEOUT, RenderDaemon, render_daemons, render_once
from tests.fixtures_dns import DnsServer

TEMPLATE = """\
{% for s in services() %}service {{ s.Name }} tags={{ s.Tags | join(",") }}
{% endfor %}{% for i in service("web") %}server {{ i | hostPort }};
{% endfor %}"""


def expected(*servers: str, services: str = "service web tags=calico\n") -> str:
    return services + "".join(f"server {s};\n" for s in servers)


def watch_file(proc: RenderDaemon, until: Callable[[], bool], check: Callable[[str], None],
               timeout: float = TIMEOUT) -> None:
    """Check every version of the rendered file until ``until()`` holds."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out\n{proc.text()}"
        assert proc.alive(), proc.text()
        text = proc.read()
        assert text is not None
        check(text)
        time.sleep(0.02)


def test_swarm_tasks_added_and_removed_ipv6_too(tmp_path: Path, dns_server: DnsServer) -> None:
    dns_server.set_hosts({"tasks.web": ["10.0.0.1"]})
    url = f"{dns_server.url}?services=web&tags=calico&port=8080"
    with render_daemons(tmp_path, TEMPLATE, ["-catalog", url, "-shrink-guard=false"]) as run:
        proc = run()
        proc.wait_for(expected("10.0.0.1:8080"))
        dns_server.set_hosts({"tasks.web": ["10.0.0.1", "10.0.0.2", "fd00::2"]})
        proc.wait_for(expected("10.0.0.1:8080", "10.0.0.2:8080", "[fd00::2]:8080"))
        dns_server.set_hosts({"tasks.web": ["fd00::2", "10.0.0.2"]})
        proc.wait_for(expected("10.0.0.2:8080", "[fd00::2]:8080"))
        assert "catalog dns 127.0.0.1:" in proc.text()


def test_one_nxdomain_keeps_the_upstream_a_repeated_one_empties_it(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    dns_server.set_hosts({"tasks.web": ["10.0.0.1", "10.0.0.2"]})
    # Polls every 3 s (TTL 1 s clamped): room to restore the name before the confirming ask.
    url = f"{dns_server.url}?services=web&tags=calico&ttl_min=3s&ttl_max=3s"
    full = expected("10.0.0.1:80", "10.0.0.2:80")
    with render_daemons(tmp_path, TEMPLATE, ["-catalog", url, "-shrink-guard=false"]) as run:
        proc = run()
        proc.wait_for(full)
        dns_server.set_hosts({})
        proc.wait_log("dns tasks.web: NXDOMAIN; keeping its 2 instance(s)")
        asked = dns_server.queries("tasks.web")
        dns_server.set_hosts({"tasks.web": ["10.0.0.1", "10.0.0.2"]})

        def unchanged(text: str) -> None:
            assert text == full, f"one NXDOMAIN changed the file:\n{text}\n{proc.text()}"

        # The confirming ask (after ttl_min) finds the name again: the file never changed.
        watch_file(proc, lambda: dns_server.queries("tasks.web") >= asked + 2, unchanged)
        dns_server.set_hosts({})
        proc.wait_for(expected(), timeout=TIMEOUT)
        proc.wait_log("dns tasks.web: NXDOMAIN again; it has no instances now")


def test_server_that_stops_answering_keeps_the_last_good_file(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    dns_server.set_hosts({"tasks.web": ["10.0.0.1"]})
    url = f"{dns_server.url}?services=web&tags=calico&timeout=1s"
    with render_daemons(tmp_path, TEMPLATE, ["-catalog", url, "-shrink-guard=false"]) as run:
        proc = run()
        proc.wait_for(expected("10.0.0.1:80"))
        dns_server.pause()
        failing = (f"tasks.web A: no answer from the resolver {dns_server.address} within 1s "
                   "(retrying; keeping the last good data)")
        proc.wait_log(failing)
        dns_server.set_hosts({"tasks.web": ["10.0.0.3"]}, reload=False)
        # A few more failed attempts (backoff 0.25 s, 0.5 s, 1 s …): still one WARNING.
        proc.wait_log("(attempt 3)")
        assert proc.read() == expected("10.0.0.1:80")
        dns_server.resume()
        dns_server.reload()
        proc.wait_for(expected("10.0.0.3:80"))
        proc.wait_log("dns.service(web|passing): recovered after")
        assert proc.text().count("retrying; keeping the last good data") == 1


def test_refused_answers_keep_the_last_good_file(tmp_path: Path, dns_server: DnsServer) -> None:
    dns_server.set_hosts({"tasks.web": ["10.0.0.1"]})
    url = f"{dns_server.url}?services=web&tags=calico"
    with render_daemons(tmp_path, TEMPLATE, ["-catalog", url, "-shrink-guard=false"]) as run:
        proc = run()
        proc.wait_for(expected("10.0.0.1:80"))
        dns_server.set_hosts({}, reload=False)
        dns_server.refuse(True)
        proc.wait_log(f"tasks.web A: the resolver {dns_server.address} answered REFUSED "
                      "(retrying; keeping the last good data)")
        assert proc.read() == expected("10.0.0.1:80")
        dns_server.set_hosts({"tasks.web": ["10.0.0.4"]}, reload=False)
        dns_server.refuse(False)
        proc.wait_for(expected("10.0.0.4:80"))
        proc.wait_log("dns.service(web|passing): recovered after")


def test_consul_dns_srv_ports_tags_and_a_fallback(tmp_path: Path, dns_server: DnsServer) -> None:
    dns_server.set_hosts({"node1.node.dc1.consul": ["10.0.1.1"],
                          "node2.node.dc1.consul": ["fd00::12"],
                          "api.service.consul": ["10.0.2.1"]})
    dns_server.set_srv([("web.service.consul", "node1.node.dc1.consul", 8080),
                        ("web.service.consul", "node2.node.dc1.consul", 8081),
                        ("calico.web.service.consul", "node2.node.dc1.consul", 8081)])
    template = (
        '{% for i in service("web") %}web {{ i | hostPort }} node={{ i.Node }}\n{% endfor %}'
        '{% for i in service("calico.web") %}calico {{ i | hostPort }}\n{% endfor %}'
        '{% for i in service("api") %}api {{ i | hostPort }}\n{% endfor %}'
    )
    url = f"{dns_server.url}?mode=consul&ports=api:9000"
    with render_daemons(tmp_path, template, ["-catalog", url, "-shrink-guard=false"]) as run:
        proc = run()
        proc.wait_for("web 10.0.1.1:8080 node=node1.node.dc1.consul\n"
                      "web [fd00::12]:8081 node=node2.node.dc1.consul\n"
                      "calico [fd00::12]:8081\n"
                      "api 10.0.2.1:9000\n")
        dns_server.set_srv([("web.service.consul", "node1.node.dc1.consul", 8090)])
        proc.wait_for("web 10.0.1.1:8090 node=node1.node.dc1.consul\napi 10.0.2.1:9000\n")


def test_shipped_nginx_template_once_over_ipv6_resolver(
    tmp_path: Path, dns_server: DnsServer
) -> None:
    root = Path(__file__).resolve().parent.parent
    dns_server.set_hosts({"tasks.web": ["10.0.0.1", "fd00::1"], "tasks.api": ["10.0.0.9"]})
    dest = tmp_path / "upstreams.conf"
    url = f"dns://[::1]:{dns_server.port}?services=web,api,gone&tags=calico&ports=api:9000"
    done = render_once(["-catalog", url, "-var", f"log_dir={tmp_path}"],
                       root / "templates" / "nginx.conf.j2", dest)
    assert done.returncode == 0, done.stderr
    text = dest.read_text()
    assert "upstream api {" in text and "server 10.0.0.9:9000 " in text
    assert "upstream web {" in text and "server [fd00::1]:80 " in text
    assert "server 10.0.0.1:80 " in text and "gone" not in text


@pytest.mark.parametrize("template, message", [
    ('{{ key("app/x") }}', "key('app/x'): not available with the dns catalog"),
    ('{{ ls("app") }}', "ls/tree('app'): not available with the dns catalog"),
])
def test_key_value_functions_are_one_line_errors(
    tmp_path: Path, dns_server: DnsServer, template: str, message: str
) -> None:
    src, dest = tmp_path / "t.j2", tmp_path / "out"
    src.write_text(template)
    done = render_once(["-catalog", dns_server.url], src, dest)
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert not dest.exists()


def test_sighup_applies_a_new_dns_block(tmp_path: Path, dns_server: DnsServer) -> None:
    dns_server.set_hosts({"tasks.web": ["10.0.0.1"], "tasks.api": ["10.0.0.9"]})
    config = tmp_path / "dns.hcl"
    config.write_text(f'dns {{\n  resolver = "{dns_server.address}"\n  services = ["web"]\n'
                      '  tags = ["calico"]\n}\n')
    args = ["-config", str(config), "-catalog", "dns://", "-shrink-guard=false"]
    with render_daemons(tmp_path, TEMPLATE, args) as run:
        proc = run()
        proc.wait_for(expected("10.0.0.1:80"))
        config.write_text(f'dns {{\n  resolver = "{dns_server.address}"\n'
                          '  services = ["api", "web"]\n  tags = ["edge"]\n  port = 8080\n}\n')
        proc.signal(signal.SIGHUP)
        proc.wait_for(expected("10.0.0.1:8080", services="service api tags=edge\n"
                                                         "service web tags=edge\n"))
