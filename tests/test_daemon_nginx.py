"""The daemon end to end: file catalog → ctmpl → real nginx serving real HTTP on loopback."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.daemon import Daemon, daemon, holds_for, wait_for, write_atomic, write_catalog
from tests.fixtures_consul import ConsulFixture
from tests.fixtures_nginx import Backend, NginxEnv

UPSTREAM = """\
upstream backend {
{% for i in service("web") %}
    # v{{ i.Meta.get("v", "0") }}
    server {{ i.Address }}:{{ i.Port }};
{% else %}
    server 127.0.0.1:9 down;
{% endfor %}
}
{{ keyOrDefault("extra", "") }}
"""


def instance(backend: Backend, **meta: str) -> dict[str, Any]:
    """A catalog entry for a running backend."""
    return {"id": backend.name, "address": "127.0.0.1", "port": backend.port, "meta": meta}


def setup(tmp_path: Path, nginx_env: NginxEnv, wait: str = "200ms:1s") -> tuple[Path, list[str]]:
    """Write the template and catalog; return (catalog path, ctmpl args)."""
    template = tmp_path / "upstream.j2"
    template.write_text(UPSTREAM)
    catalog = tmp_path / "catalog.yaml"
    args = [
        "-catalog", f"file://{catalog}",
        "-template", f"{template}:{nginx_env.conf_d / 'upstream.conf'}",
        "-proxy", "nginx",
        "-nginx-conf", str(nginx_env.config),
        "-nginx-pid", str(nginx_env.pid_file),
        "-wait", wait,
        "-log-level", "debug",
    ]
    return catalog, args


def seen_backends(env: NginxEnv, tries: int = 12) -> set[str]:
    """Names of the backends answering through nginx over several requests."""
    names = set()
    for _ in range(tries):
        answer = env.try_fetch()
        if answer and answer[0] == 200:
            names.add(answer[1].strip())
    return names


@contextlib.contextmanager
def serving_a(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: Callable[[str], Backend]
) -> Iterator[tuple[Daemon, Path, Backend, Backend]]:
    """ctmpl running over a catalog whose only instance is backend ``a``, served by nginx."""
    a, b = make_backend("a"), make_backend("b")
    catalog, args = setup(tmp_path, nginx_env)
    write_catalog(catalog, {"web": [instance(a)]})
    with daemon(args, tmp_path / "ctmpl.log") as proc:
        nginx_env.wait_body("a\n")
        yield proc, catalog, a, b


def test_starts_nginx_and_follows_instances(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: Callable[[str], Backend]
) -> None:
    assert nginx_env.master_pid() is None, "ctmpl starts nginx itself"
    with serving_a(tmp_path, nginx_env, make_backend) as (proc, catalog, a, b):
        master = nginx_env.master_pid()
        write_catalog(catalog, {"web": [instance(a), instance(b)]})
        wait_for(lambda: seen_backends(nginx_env) == {"a", "b"}, what="b to receive requests")
        write_catalog(catalog, {"web": [instance(b)]})
        wait_for(lambda: seen_backends(nginx_env) == {"b"}, what="a to stop receiving")
        assert nginx_env.master_pid() == master, "instances changed by reload, not restart"
        assert proc.alive()
    assert proc.proc.returncode == 0


def test_starts_nginx_when_files_are_already_current(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: Callable[[str], Backend]
) -> None:
    a = make_backend("a")
    catalog, args = setup(tmp_path, nginx_env)
    write_catalog(catalog, {"web": [instance(a)]})
    rendered = tmp_path / "first.conf"
    once = [*args[:2], "-template", f"{tmp_path / 'upstream.j2'}:{rendered}", "-once"]
    with daemon(once, tmp_path / "once.log") as first:
        wait_for(lambda: not first.alive(), what="-once to finish")
    (nginx_env.conf_d / "upstream.conf").write_bytes(rendered.read_bytes())
    with daemon(args, tmp_path / "ctmpl.log") as proc:
        nginx_env.wait_body("a\n")
        proc.wait_log("nginx started")


def test_burst_of_changes_reloads_once(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: Callable[[str], Backend]
) -> None:
    a = make_backend("a")
    catalog, args = setup(tmp_path, nginx_env, wait="2s:20s")
    write_catalog(catalog, {"web": [instance(a, v="0")]})
    nginx_env.start()
    with daemon(args, tmp_path / "ctmpl.log") as proc:
        conf = nginx_env.conf_d / "upstream.conf"
        wait_for(lambda: "# v0" in conf.read_text(), what="first render")
        proc.wait_log("nginx reloaded")
        before = nginx_env.reload_count()
        for version in range(1, 101):
            write_catalog(catalog, {"web": [instance(a, v=str(version))]})
        wait_for(lambda: "# v100" in conf.read_text(), what="the burst's final state")
        wait_for(lambda: nginx_env.reload_count() == before + 1, what="one reload")
        assert "# v5\n" not in conf.read_text()
        wait_for(lambda: proc.text().count("nginx reloaded") == 2, what="the reload logged")
        # A quiet period longer than the wait's min (2s) twice over: a late change seen
        # after the burst, or a timer left armed, would reload again within it.
        holds_for(lambda: nginx_env.reload_count() == before + 1
                  and proc.text().count("nginx reloaded") == 2, 5.0, what="one reload per burst")


def test_invalid_config_keeps_previous_serving(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: Callable[[str], Backend]
) -> None:
    with serving_a(tmp_path, nginx_env, make_backend) as (proc, catalog, _a, b):
        good = (nginx_env.conf_d / "upstream.conf").read_text()
        write_catalog(catalog, {"web": [instance(b)]}, kv={"extra": "bogus_directive on;"})
        proc.wait_log("bogus_directive")
        proc.wait_log("rolling back")  # logged before the rollback, which runs off the loop
        conf = nginx_env.conf_d / "upstream.conf"
        wait_for(lambda: conf.read_text() == good, what="the last good file restored")
        assert seen_backends(nginx_env) == {"a"}
        assert proc.alive()
        write_catalog(catalog, {"web": [instance(b)]})
        wait_for(lambda: seen_backends(nginx_env) == {"b"}, what="next valid change to apply")


def test_sigkilled_nginx_is_cold_started_on_next_pass(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: Callable[[str], Backend]
) -> None:
    with serving_a(tmp_path, nginx_env, make_backend) as (proc, catalog, _a, b):
        old_master, _ = nginx_env.kill_master()
        write_catalog(catalog, {"web": [instance(b)]})
        nginx_env.wait_body("b\n")
        assert nginx_env.master_pid() not in (None, old_master)
        assert proc.alive()


def test_sighup_rerenders_edited_template_with_same_master(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: Callable[[str], Backend]
) -> None:
    a, b = make_backend("a"), make_backend("b")
    catalog, args = setup(tmp_path, nginx_env)
    write_catalog(catalog, {"web": [instance(a), instance(b)]})
    with daemon(args, tmp_path / "ctmpl.log") as proc:
        wait_for(lambda: seen_backends(nginx_env) == {"a", "b"}, what="both backends")
        master = nginx_env.master_pid()
        template = tmp_path / "upstream.j2"
        write_atomic(template, UPSTREAM.replace('service("web")', 'service("web")[-1:]'))
        proc.signal(signal.SIGHUP)
        proc.wait_log("reloaded configuration")
        wait_for(lambda: seen_backends(nginx_env) == {"b"}, what="edited template to apply")
        assert nginx_env.master_pid() == master


def test_sigterm_exits_zero_and_removes_pid_file(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: Callable[[str], Backend]
) -> None:
    a = make_backend("a")
    catalog, args = setup(tmp_path, nginx_env)
    write_catalog(catalog, {"web": [instance(a)]})
    pid_file = tmp_path / "run" / "ctmpl.pid"
    proc = Daemon([*args, "-pid-file", str(pid_file)], tmp_path / "ctmpl.log")
    try:
        wait_for(pid_file.exists, what="pid file")
        assert int(pid_file.read_text()) == proc.proc.pid
        nginx_env.wait_body("a\n")
    finally:
        code = proc.stop()
    assert code == 0
    assert not pid_file.exists()
    assert nginx_env.master_pid() is not None, "stopping ctmpl leaves nginx serving"


def test_consul_fed_nginx_follows_instances(
    tmp_path: Path,
    nginx_env: NginxEnv,
    make_backend: Callable[[str], Backend],
    consul: ConsulFixture,
) -> None:
    a, b = make_backend("a"), make_backend("b")
    _, args = setup(tmp_path, nginx_env)
    args = ["-consul-addr", consul.addr, *args[2:]]
    consul.register("a", "web", "127.0.0.1", a.port)
    with daemon(args, tmp_path / "ctmpl.log") as proc:
        nginx_env.wait_body("a\n")
        consul.register("b", "web", "127.0.0.1", b.port)
        wait_for(lambda: seen_backends(nginx_env) == {"a", "b"}, what="b to receive requests")
        consul.set_status("a", "critical")
        wait_for(lambda: seen_backends(nginx_env) == {"b"}, what="failing a to leave")
        consul.deregister("b")
        consul.set_status("a", "passing")
        wait_for(lambda: seen_backends(nginx_env) == {"a"}, what="a back, b gone")
        assert proc.alive()
