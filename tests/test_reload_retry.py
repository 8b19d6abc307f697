"""A reload nginx refuses at runtime (a listen port taken) is retried with backoff until the
installed config is live — without waiting for another catalog change."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from tests.daemon import daemon, wait_for, write_catalog
from tests.fixtures_nginx import Backend, NginxEnv, free_port
from tests.test_daemon_nginx import instance, seen_backends

TEMPLATE = """\
upstream backend {
{% for i in service("web") %}
    server {{ i | hostPort }};
{% endfor %}
}
{% if service("web") | length > 1 %}
server { listen 127.0.0.1:%d; return 200 "extra\\n"; }
{% endif %}
"""


def test_failed_reload_is_retried_until_it_takes(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: Callable[[str], Backend]
) -> None:
    a, b = make_backend("a"), make_backend("b")
    busy_port = free_port()
    template = tmp_path / "upstream.tmpl"
    template.write_text(TEMPLATE.replace("%d", str(busy_port)))
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {"web": [instance(a)]})
    args = ["-catalog", f"file://{catalog}",
            "-template", f"{template}:{nginx_env.conf_d / 'upstream.conf'}",
            "-proxy", "nginx", "-nginx-conf", str(nginx_env.config),
            "-nginx-pid", str(nginx_env.pid_file), "-wait", "50ms:200ms"]
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    try:
        with daemon(args, tmp_path / "ctmpl.log") as proc:
            nginx_env.wait_body("a\n")
            blocker.bind(("127.0.0.1", busy_port))
            blocker.listen(1)
            write_catalog(catalog, {"web": [instance(a), instance(b)]})
            proc.wait_log("attempt 2 to run the installed config failed")
            assert seen_backends(nginx_env) == {"a"}  # the old config still serves
            blocker.close()
            wait_for(lambda: seen_backends(nginx_env) == {"a", "b"},
                     what=f"the retried reload to take effect\n{proc.text()}")
            proc.wait_log("succeeded (reloaded)")
            assert nginx_env.fetch(port=busy_port) == (200, "extra\n")
    finally:
        blocker.close()
