"""HaproxyController against a real HAProxy: check, cold start, reload, runtime updates."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import time
from collections.abc import Callable

import msgspec
import pytest

from ctmpl.errors import CheckFailed, ProxyError
from ctmpl.proxy import HaproxyController
from ctmpl.proxy.haproxy_cli import ProcTable
from tests.fixtures_haproxy import HaproxyEnv, backends_text
from tests.fixtures_nginx import Backend, start_backend, wait_until

MakeBackend = Callable[[str], Backend]


def started(env: HaproxyEnv, make_backend: MakeBackend, *names: str
            ) -> tuple[HaproxyController, dict[str, Backend]]:
    """Servers ``names`` in backend web, HAProxy started by the controller."""
    backends = {name: make_backend(name) for name in names}
    env.set_backends({"web": [f"{n} 127.0.0.1:{b.port}" for n, b in backends.items()]})
    ctl = HaproxyController(env.cfg)
    assert ctl.apply() == "started"
    env.wait_bodies(set(names))
    return ctl, backends


def table(env: HaproxyEnv) -> ProcTable:
    return env.wait_proc()


def test_start_check_failure_names_file_and_line(haproxy_env: HaproxyEnv) -> None:
    haproxy_env.backends.write_text("backend web\n    bogus_keyword 1\n")
    with pytest.raises(CheckFailed, match=r"backends\.cfg:2.*bogus_keyword"):
        HaproxyController(haproxy_env.cfg).apply()
    assert haproxy_env.show_proc() is None


def test_missing_binary(haproxy_env: HaproxyEnv) -> None:
    ctl = HaproxyController(msgspec.structs.replace(haproxy_env.cfg, binary="/nonexistent/haproxy"))
    with pytest.raises(ProxyError, match="cannot run '/nonexistent/haproxy'"):
        ctl.apply()


def test_staged_check_never_installs_a_broken_render(
        haproxy_env: HaproxyEnv, make_backend: MakeBackend) -> None:
    ctl, _ = started(haproxy_env, make_backend, "a")
    before = haproxy_env.backends.read_bytes()
    broken = b"backend web\n    server a 127.0.0.1:1 bogus_kw\n"
    with pytest.raises(CheckFailed, match=r"backends\.cfg:2.*bogus_kw"):
        ctl.check_staged({haproxy_env.backends: broken})
    assert haproxy_env.backends.read_bytes() == before
    assert not [p for p in haproxy_env.root.iterdir() if ".staged." in p.name]
    assert haproxy_env.bodies() == {"a"}
    ctl.check_staged({haproxy_env.backends: before})  # the good one passes


def test_runtime_updates_need_no_reload_and_keep_connections(
        haproxy_env: HaproxyEnv, make_backend: MakeBackend,
        caplog: pytest.LogCaptureFixture) -> None:
    ctl, b = started(haproxy_env, make_backend, "a", "b")
    c, d = make_backend("c"), make_backend("d")
    first = table(haproxy_env)
    conn = http.client.HTTPConnection("127.0.0.1", haproxy_env.port, timeout=5)
    conn.request("GET", "/", headers={"Host": "web"})
    assert conn.getresponse().read()
    sock = conn.sock

    def update(servers: list[str], want: set[str]) -> None:
        haproxy_env.set_backends({"web": servers})
        assert "runtime API" in ctl.apply()
        assert haproxy_env.bodies() == want
        conn.request("GET", "/", headers={"Host": "web"})  # the long-lived connection
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read().strip().decode() in want
        assert conn.sock is sock

    a, bb = f"a 127.0.0.1:{b['a'].port}", f"b 127.0.0.1:{b['b'].port}"
    update([a, bb, f"c 127.0.0.1:{c.port}"], {"a", "b", "c"})  # added
    update([a, f"c 127.0.0.1:{c.port}"], {"a", "c"})  # removed
    update([a, f"c 127.0.0.1:{c.port} weight 0"], {"a"})  # drained
    update([a, f"c 127.0.0.1:{c.port} disabled"], {"a"})  # maintenance
    assert haproxy_env.servers()["c"].in_maintenance
    update([a, f"c 127.0.0.1:{c.port}"], {"a", "c"})  # ready again
    update([a, f"c 127.0.0.1:{d.port}"], {"a", "d"})  # re-addressed
    v6 = start_backend("v6", "::1")
    try:
        update([a, f"c [::1]:{v6.port}"], {"a", "v6"})  # IPv6
    finally:
        v6.stop()
    last = table(haproxy_env)
    assert (last.master, last.reloads, last.current) == (first.master, first.reloads,
                                                          first.current)
    assert "server web/c added" in caplog.text and "server web/b removed" in caplog.text
    conn.close()


def test_new_backend_is_exactly_one_reload(
        haproxy_env: HaproxyEnv, make_backend: MakeBackend,
        caplog: pytest.LogCaptureFixture) -> None:
    ctl, b = started(haproxy_env, make_backend, "a")
    api = make_backend("api")
    first = table(haproxy_env)
    haproxy_env.set_backends({"web": [f"a 127.0.0.1:{b['a'].port}"],
                              "api": [f"api1 127.0.0.1:{api.port}"]})
    assert ctl.apply() == "reloaded"
    after = table(haproxy_env)
    assert after.reloads == first.reloads + 1
    assert after.master == first.master and not after.current & first.current
    assert "section added: backend api" in caplog.text
    assert haproxy_env.bodies("api") == {"api"}


def test_refused_runtime_command_falls_back_to_reload(
        haproxy_env: HaproxyEnv, make_backend: MakeBackend,
        caplog: pytest.LogCaptureFixture) -> None:
    ctl, b = started(haproxy_env, make_backend, "a")
    c = make_backend("c")
    first = table(haproxy_env)
    # "cookie" is valid in a config but not accepted for a dynamic server.
    haproxy_env.set_backends({"web": [f"a 127.0.0.1:{b['a'].port}",
                                      f"c 127.0.0.1:{c.port} cookie c"]})
    assert ctl.apply() == "reloaded"
    assert "runtime API refused 'add server web/c" in caplog.text
    assert table(haproxy_env).reloads == first.reloads + 1
    assert haproxy_env.bodies() == {"a", "c"}


def test_server_state_survives_a_reload(
        haproxy_env: HaproxyEnv, make_backend: MakeBackend) -> None:
    ctl, b = started(haproxy_env, make_backend, "a", "b")
    assert haproxy_env.admin("set server web/b state maint").strip() == ""  # an operator
    haproxy_env.wait_bodies({"a"})
    api = make_backend("api")
    haproxy_env.set_backends({"web": [f"a 127.0.0.1:{b['a'].port}", f"b 127.0.0.1:{b['b'].port}"],
                              "api": [f"api1 127.0.0.1:{api.port}"]})
    assert ctl.apply() == "reloaded"
    assert haproxy_env.servers()["b"].in_maintenance
    assert haproxy_env.bodies() == {"a"}


def test_start_creates_the_stats_socket_directory(
        haproxy_env: HaproxyEnv, make_backend: MakeBackend) -> None:
    gone = haproxy_env.root / "gone" / "admin.sock"
    haproxy_env.base.write_text(haproxy_env.base.read_text().replace(
        str(haproxy_env.admin_socket), str(gone)))
    haproxy_env.cfg = msgspec.structs.replace(haproxy_env.cfg, admin_socket=str(gone))
    started(haproxy_env, make_backend, "a")
    assert gone.is_socket()


def test_killed_master_means_cold_start(
        haproxy_env: HaproxyEnv, make_backend: MakeBackend) -> None:
    ctl, _ = started(haproxy_env, make_backend, "a")
    os.kill(table(haproxy_env).master, signal.SIGKILL)
    wait_until(lambda: haproxy_env.show_proc() is None, what="master to die")
    assert ctl.apply() == "started"
    assert haproxy_env.bodies() == {"a"}


def test_failed_reload_keeps_old_workers_serving(
        haproxy_env: HaproxyEnv, make_backend: MakeBackend) -> None:
    ctl, _ = started(haproxy_env, make_backend, "a")
    first = table(haproxy_env)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        haproxy_env.write_base(port=taken.getsockname()[1])  # valid, but cannot bind
        with pytest.raises(ProxyError, match=r"reload .* failed, the old workers"):
            ctl.apply()
    assert table(haproxy_env).pids == first.current  # the old worker, still serving
    assert haproxy_env.bodies() == {"a"}
    haproxy_env.write_base()
    assert ctl.apply() == "reloaded"  # retried with the next change: no runtime guesswork
    assert haproxy_env.bodies() == {"a"}


def test_reconcile_starts_then_trusts_only_provably_current_workers(
        haproxy_env: HaproxyEnv, make_backend: MakeBackend) -> None:
    a = make_backend("a")
    haproxy_env.backends.write_text(backends_text({"web": [f"a 127.0.0.1:{a.port}"]}))
    files = [haproxy_env.backends]
    ctl = HaproxyController(haproxy_env.cfg)
    assert ctl.reconcile(files) == "started"
    assert ctl.reconcile(files) == "current"
    haproxy_env.wait_bodies({"a"})
    # A new ctmpl (after a crash): files older than the workers are what they run ...
    past = time.time() - 100
    for path in (haproxy_env.base, haproxy_env.backends):
        os.utime(path, (past, past))
    assert HaproxyController(haproxy_env.cfg).reconcile(files) == "current"
    # ... but files changed since the workers started may not be: reload once.
    haproxy_env.backends.touch()
    before = table(haproxy_env)
    assert HaproxyController(haproxy_env.cfg).reconcile(files) == "reloaded"
    assert table(haproxy_env).reloads == before.reloads + 1


def test_runtime_api_through_the_master_cli_without_admin_socket(
        haproxy_env: HaproxyEnv, make_backend: MakeBackend) -> None:
    haproxy_env.cfg = msgspec.structs.replace(haproxy_env.cfg, admin_socket="")
    ctl, b = started(haproxy_env, make_backend, "a")
    c = make_backend("c")
    first = table(haproxy_env)
    haproxy_env.set_backends({"web": [f"a 127.0.0.1:{b['a'].port}", f"c 127.0.0.1:{c.port}"]})
    assert "runtime API" in ctl.apply()
    assert haproxy_env.bodies() == {"a", "c"}
    assert table(haproxy_env).reloads == first.reloads
