"""The classic consul-template nginx template (``.ctmpl``) drives a real nginx unchanged.

Services tagged ``calico`` get an ``upstream`` and a ``server`` block whose ``server_name``
is built with ``toLower | split "-" | join "."``; ctmpl runs as a daemon with ``-proxy nginx``
and nginx routes by host name to the registered backends as they come and go.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from pathlib import Path

from tests.daemon import daemon, wait_for
from tests.fixtures_consul import ConsulFixture
from tests.fixtures_nginx import Backend, NginxEnv, free_port

CLASSIC = """\
{{range services}}{{ if in .Tags "calico" }}{{ $name := .Name }}{{ $service := service .Name }}
upstream {{$name}} {
  zone upstream-{{$name}} 64k;
  {{range $service}}server {{.Address}}:{{.Port}} max_fails=3 fail_timeout=60 weight=1;
  {{else}}server 127.0.0.1:65535; # force a 502
  {{end}}
}
{{end}}{{end}}
{{range services}}{{ if in .Tags "calico" }}{{$name := .Name}}
server {
  listen 127.0.0.1:LISTEN;
  server_name {{ $name | toLower | split "-" | join "." }}.example.test;
  location / {
    proxy_pass http://{{$name}};
    proxy_set_header Host $host;
  }
}
{{end}}{{end}}
"""


def fetch_host(port: int, host: str) -> str | None:
    """The body nginx answers for ``Host: host``, None unless 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": host})
        resp = conn.getresponse()
        body = resp.read().decode()
        return body.strip() if resp.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


def seen(port: int, host: str, tries: int = 10) -> set[str]:
    """Backends answering for ``host`` over several requests."""
    return {b for b in (fetch_host(port, host) for _ in range(tries)) if b}


def test_classic_ctmpl_drives_nginx(
    tmp_path: Path,
    nginx_env: NginxEnv,
    make_backend: Callable[[str], Backend],
    consul: ConsulFixture,
) -> None:
    a, b, c = make_backend("a"), make_backend("b"), make_backend("c")
    port = free_port()
    template = tmp_path / "nginx.ctmpl"
    template.write_text(CLASSIC.replace("LISTEN", str(port)))
    dest = nginx_env.conf_d / "services.conf"
    consul.register("web-app-1", "Web-App", "127.0.0.1", a.port, tags=["calico", "http"])
    consul.register("api-1", "api-gateway", "127.0.0.1", b.port, tags=["calico"])
    consul.register("queue-1", "queue", "127.0.0.1", 5672, tags=["amqp"])
    args = ["-consul-addr", consul.addr, "-template", f"{template}:{dest}",
            "-proxy", "nginx", "-nginx-conf", str(nginx_env.config),
            "-nginx-pid", str(nginx_env.pid_file), "-wait", "0s", "-log-level", "debug"]
    with daemon(args, tmp_path / "ctmpl.log") as proc:
        wait_for(lambda: seen(port, "web.app.example.test") == {"a"}, what="web.app → a")
        assert seen(port, "api.gateway.example.test") == {"b"}
        text = dest.read_text()
        assert "upstream queue" not in text
        assert "server_name web.app.example.test;" in text
        consul.register("web-app-2", "Web-App", "127.0.0.1", c.port, tags=["calico"])
        wait_for(lambda: seen(port, "web.app.example.test") == {"a", "c"}, what="a and c")
        consul.set_status("web-app-1", "critical")
        wait_for(lambda: seen(port, "web.app.example.test") == {"c"}, what="failing a to leave")
        consul.set_status("api-1", "critical")
        wait_for(lambda: "server 127.0.0.1:65535; # force a 502" in dest.read_text(),
                 what="an upstream with no healthy instance")
        wait_for(lambda: fetch_host(port, "api.gateway.example.test") is None,
                 what="api.gateway to answer 502")
        assert proc.alive(), proc.text()
