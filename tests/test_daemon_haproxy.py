"""ctmpl with -proxy haproxy end to end: file catalog → daemon or -once → real HAProxy."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.daemon import daemon, render_once, wait_for, write_catalog
from tests.fixtures_haproxy import HaproxyEnv
from tests.fixtures_nginx import Backend

MakeBackend = Callable[[str], Backend]

BACKENDS = """\
{% if "web" not in services() | map(attribute="Name") | list %}
backend web
{% endif %}
{% for svc in services() %}
backend {{ svc.Name }}
    balance roundrobin
{% for i in service(svc.Name ~ "|passing,warning,maintenance") %}
{% set state = {"maintenance": " disabled", "warning": " weight 0"}.get(i.Status, "") %}
    server {{ i.ID }} {{ i.Address }}:{{ i.Port }}{{ state }}
{% endfor %}
{% endfor %}
{{ keyOrDefault("extra", "") }}
"""


def instance(backend: Backend, status: str = "passing") -> dict[str, Any]:
    return {"id": backend.name, "address": "127.0.0.1", "port": backend.port, "status": status}


def setup(tmp_path: Path, env: HaproxyEnv) -> tuple[Path, list[str]]:
    """Template and catalog paths; the ctmpl arguments driving ``env``'s HAProxy."""
    template = tmp_path / "backends.j2"
    template.write_text(BACKENDS)
    catalog = tmp_path / "catalog.yaml"
    args = [
        "-catalog", f"file://{catalog}",
        "-template", f"{template}:{env.backends}",
        "-proxy", "haproxy",
        "-config", str(tmp_path / "haproxy.hcl"),
        "-wait", "100ms:500ms",
        "-log-level", "debug",
    ]
    (tmp_path / "haproxy.hcl").write_text(
        "haproxy {\n"
        f'  config = ["{env.base}", "{env.backends}"]\n'
        f'  master_socket = "{env.master_socket}"\n'
        f'  admin_socket = "{env.admin_socket}"\n'
        f'  pid_file = "{env.pid_file}"\n'
        "}\n")
    return catalog, args


def reloads(env: HaproxyEnv) -> int:
    """The master's reload counter."""
    return env.wait_proc().reloads


def test_daemon_runtime_updates_and_one_reload_per_new_backend(
        tmp_path: Path, haproxy_env: HaproxyEnv, make_backend: MakeBackend) -> None:
    a, b, api = make_backend("a"), make_backend("b"), make_backend("api")
    catalog, args = setup(tmp_path, haproxy_env)
    write_catalog(catalog, {"web": [instance(a)]})
    with daemon(args, tmp_path / "ctmpl.log") as proc:
        wait_for(lambda: haproxy_env.bodies() == {"a"}, what=f"a served\n{proc.text()}")
        proc.wait_log("haproxy started")
        write_catalog(catalog, {"web": [instance(a), instance(b)]})
        haproxy_env.wait_bodies({"a", "b"})
        write_catalog(catalog, {"web": [instance(a), instance(b, "maintenance")]})
        haproxy_env.wait_bodies({"a"})
        assert haproxy_env.servers()["b"].in_maintenance
        assert reloads(haproxy_env) == 0
        proc.wait_log("through the runtime API, no reload")

        write_catalog(catalog, {"web": [instance(a)], "api": [instance(api)]})
        haproxy_env.wait_bodies({"api"}, host="api")
        assert reloads(haproxy_env) == 1
        assert "section added: backend api" in proc.text()

        # A render HAProxy refuses is never installed; the last good config keeps serving.
        good = haproxy_env.backends.read_text()
        write_catalog(catalog, {"web": [instance(a), instance(b)], "api": [instance(api)]},
                      kv={"extra": "backend broken\n    bogus_keyword 1"})
        proc.wait_log("bogus_keyword")
        assert haproxy_env.backends.read_text() == good
        assert haproxy_env.bodies() == {"a"} and reloads(haproxy_env) == 1


def test_once_starts_then_reloads(
        tmp_path: Path, haproxy_env: HaproxyEnv, make_backend: MakeBackend) -> None:
    a, b = make_backend("a"), make_backend("b")
    catalog, args = setup(tmp_path, haproxy_env)
    template = tmp_path / "backends.j2"
    write_catalog(catalog, {"web": [instance(a)]})
    first = render_once(args[:2] + args[4:], template, haproxy_env.backends)
    assert first.returncode == 0, first.stderr
    assert "haproxy started" in first.stderr
    assert haproxy_env.bodies() == {"a"}
    write_catalog(catalog, {"web": [instance(a), instance(b)]})
    second = render_once(args[:2] + args[4:], template, haproxy_env.backends)
    assert second.returncode == 0, second.stderr
    assert "haproxy reloaded" in second.stderr
    assert haproxy_env.bodies() == {"a", "b"}
    broken = tmp_path / "broken.j2"
    broken.write_text("backend web\n    bogus_keyword 1\n")
    third = render_once(args[:2] + args[4:], broken, haproxy_env.backends)
    assert third.returncode == 8, third.stderr
    assert "bogus_keyword" in third.stderr
    assert haproxy_env.bodies() == {"a", "b"}


def test_failed_reload_is_retried_until_the_config_is_live(
        tmp_path: Path, haproxy_env: HaproxyEnv, make_backend: MakeBackend) -> None:
    a = make_backend("a")
    catalog, args = setup(tmp_path, haproxy_env)
    write_catalog(catalog, {"web": [instance(a)]})
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with daemon(args, tmp_path / "ctmpl.log") as proc:
            wait_for(lambda: haproxy_env.bodies() == {"a"}, what=f"a served\n{proc.text()}")
            # A valid config whose new listener cannot bind: the reload fails, old workers serve.
            write_catalog(catalog, {"web": [instance(a)]},
                          kv={"extra": f"listen extra\n    bind 127.0.0.1:{port}"})
            proc.wait_log("keep serving the last good config")
            assert haproxy_env.bodies() == {"a"}
            taken.close()  # the port is free: the next attempt (with backoff) succeeds
            proc.wait_log("the installed config is live again")
            assert reloads(haproxy_env) >= 2
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass  # the new listener is HAProxy's now
    finally:
        taken.close()
