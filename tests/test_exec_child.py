"""Exec mode end to end: ctmpl supervises a real ``nginx -g 'daemon off;'`` (and plain children)."""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path

import psutil
import pytest

from ctmpl.config.model import ExecConfig
from ctmpl.exec_child import child_env, exit_status
from tests.daemon import daemon, wait_for, write_catalog
from tests.fixtures_nginx import Backend, NginxEnv
from tests.test_daemon_nginx import instance, seen_backends

UPSTREAM = """\
upstream backend {
{% for i in service("web") %}
    server {{ i.Address }}:{{ i.Port }};
{% endfor %}
}
{{ key("ready") }}
"""


def foreground(env: NginxEnv) -> str:
    """The exec command running the env's nginx in the foreground."""
    env.config.write_text(env.main_conf().replace("daemon on;\n", ""))
    return f"{env.binary} -c {env.config} -g 'daemon off;'"


def nginx_args(tmp_path: Path, env: NginxEnv) -> tuple[Path, list[str]]:
    """(catalog, args) for ctmpl supervising the env's nginx in exec mode."""
    template = tmp_path / "upstream.tmpl"
    template.write_text(UPSTREAM)
    catalog = tmp_path / "catalog.yaml"
    return catalog, [
        "-catalog", f"file://{catalog}", "-wait", "0s", "-log-level", "debug",
        "-template", f"{template}:{env.conf_d / 'upstream.conf'}",
        "-proxy", "nginx", "-nginx-conf", str(env.config), "-nginx-pid", str(env.pid_file),
        "-exec", foreground(env), "-exec-kill-signal", "SIGQUIT",
    ]


def test_nginx_child_starts_after_first_render_reloads_and_stops(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: type[Backend]
) -> None:
    a, b = make_backend("a"), make_backend("b")
    catalog, args = nginx_args(tmp_path, nginx_env)
    write_catalog(catalog, {"web": [instance(a)]})  # no "ready" key: the render is incomplete
    with daemon(args, tmp_path / "log") as proc:
        proc.wait_log("waiting for")
        assert nginx_env.master_pid() is None and "exec: started" not in proc.text()
        write_catalog(catalog, {"web": [instance(a)]}, kv={"ready": "# ok"})
        nginx_env.wait_body("a\n")
        master = nginx_env.master_pid()
        assert master is not None
        assert psutil.Process(master).ppid() == proc.proc.pid, "nginx is ctmpl's child"

        write_catalog(catalog, {"web": [instance(a), instance(b)]}, kv={"ready": "# ok"})
        wait_for(lambda: seen_backends(nginx_env) == {"a", "b"}, what="b in the upstream")
        assert nginx_env.master_pid() == master, "reloaded, not restarted"
        assert "nginx: config" in proc.text() and "checked" in proc.text()

        reloads = nginx_env.reload_count()
        proc.signal(signal.SIGHUP)
        wait_for(lambda: nginx_env.reload_count() > reloads, what="SIGHUP passed on")
        proc.signal(signal.SIGUSR1)
        wait_for(lambda: "reopening logs" in nginx_env.log_text(), what="SIGUSR1 forwarded")
        assert nginx_env.master_pid() == master

        proc.signal(signal.SIGTERM)
        wait_for(lambda: not proc.alive(), what="ctmpl to stop")
        assert proc.proc.returncode == 0
        assert "exec: sending SIGQUIT" in proc.text()
        wait_for(lambda: not nginx_env.processes(), what="nginx to be gone")


def test_bad_render_never_reaches_the_nginx_child(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: type[Backend]
) -> None:
    a = make_backend("a")
    catalog, args = nginx_args(tmp_path, nginx_env)
    write_catalog(catalog, {"web": [instance(a)]}, kv={"ready": "# ok"})
    with daemon(args, tmp_path / "log") as proc:
        nginx_env.wait_body("a\n")
        reloads = nginx_env.reload_count()
        write_catalog(catalog, {"web": [instance(a)]}, kv={"ready": "}"})  # breaks the config
        proc.wait_log("rolling back")
        assert nginx_env.reload_count() == reloads
        assert nginx_env.fetch() == (200, "a\n")


def test_ctmpl_exits_with_the_childs_code_when_nginx_dies(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: type[Backend]
) -> None:
    catalog, args = nginx_args(tmp_path, nginx_env)
    write_catalog(catalog, {"web": [instance(make_backend("a"))]}, kv={"ready": "# ok"})
    with daemon(args, tmp_path / "log") as proc:
        nginx_env.wait_body("a\n")
        nginx_env.kill_master()
        wait_for(lambda: not proc.alive(), what="ctmpl to exit with its child")
        assert proc.proc.returncode == 128 + signal.SIGKILL


SCRIPT = """\
import os, signal, sys, time
log = open(sys.argv[1], "a", buffering=1)
log.write(f"start {os.getpid()}\\n")
signal.signal(signal.SIGUSR1, lambda *_: log.write("usr1\\n"))
signal.signal(signal.SIGTERM, signal.SIG_IGN if "stubborn" in sys.argv else signal.SIG_DFL)
code = int(os.environ.get("EXIT_AFTER_START", "-1"))
if code >= 0:
    sys.exit(code)
while True:
    time.sleep(0.05)
"""


def child_args(tmp_path: Path, *extra: str) -> tuple[Path, Path, list[str]]:
    """(catalog, child log, args) for a Python child that logs starts and signals."""
    script = tmp_path / "child.py"
    script.write_text(SCRIPT)
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {"web": [{"id": "w", "address": "127.0.0.1", "port": 8001}]})
    template = tmp_path / "t.tmpl"
    template.write_text('{% for i in service("web") %}{{ i.Port }}{% endfor %}\n')
    log = tmp_path / "child.log"
    command = shlex.join([sys.executable, str(script), str(log), *extra])
    return catalog, log, ["-catalog", f"file://{catalog}", "-wait", "0s",
                          "-template", f"{template}:{tmp_path / 'out'}", "-exec", command]


def lines(path: Path) -> list[str]:
    """The child's log lines so far."""
    return path.read_text().splitlines() if path.exists() else []


def test_change_restarts_the_child_when_no_reload_signal(tmp_path: Path) -> None:
    catalog, log, args = child_args(tmp_path)
    with daemon(args, tmp_path / "log") as proc:
        wait_for(lambda: len(lines(log)) == 1, what="child start")
        write_catalog(catalog, {"web": [{"id": "w", "address": "127.0.0.1", "port": 8002}]})
        wait_for(lambda: len([x for x in lines(log) if x.startswith("start")]) == 2,
                 what=f"restart\n{proc.text()}")
        first, second = (x.split()[1] for x in lines(log))
        assert first != second and not psutil.pid_exists(int(first))


def test_change_sends_the_reload_signal_after_splay(tmp_path: Path) -> None:
    catalog, log, args = child_args(tmp_path)
    args += ["-exec-reload-signal", "SIGUSR1", "-exec-splay", "200ms"]
    with daemon(args, tmp_path / "log") as proc:
        wait_for(lambda: len(lines(log)) == 1, what="child start")
        write_catalog(catalog, {"web": [{"id": "w", "address": "127.0.0.1", "port": 8002}]})
        wait_for(lambda: "usr1" in lines(log), what=f"reload signal\n{proc.text()}")
        assert len([x for x in lines(log) if x.startswith("start")]) == 1


def test_child_exit_code_becomes_ctmpl_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, log, args = child_args(tmp_path)
    monkeypatch.setenv("EXIT_AFTER_START", "3")
    with daemon(args, tmp_path / "log") as proc:
        assert proc.exit_code() == 3, proc.text()
    assert lines(log) and lines(log)[0].startswith("start")


def test_stubborn_child_is_killed_after_kill_timeout(tmp_path: Path) -> None:
    _, log, args = child_args(tmp_path, "stubborn")
    args += ["-exec-kill-timeout", "300ms"]
    with daemon(args, tmp_path / "log") as proc:
        wait_for(lambda: lines(log), what="child start")
        pid = int(lines(log)[0].split()[1])
        proc.signal(signal.SIGTERM)
        wait_for(lambda: not proc.alive(), what="ctmpl to stop")
        assert proc.proc.returncode == 0
        assert "still running after 0.3s: killing it" in proc.text()
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_child_environment_filters() -> None:
    environ = {"PATH": "/bin", "CONSUL_HTTP_TOKEN": "secret", "HOME": "/root"}
    assert child_env(ExecConfig(env_deny=("CONSUL_*",)), environ) == {
        "PATH": "/bin", "HOME": "/root"}
    assert child_env(ExecConfig(env_allow=("PATH",), env_custom=("A=1",)), environ) == {
        "PATH": "/bin", "A": "1"}
    assert child_env(ExecConfig(env_pristine=True, env_custom=("B=x=y",)), environ) == {
        "B": "x=y"}
    assert exit_status(-9) == 137 and exit_status(3) == 3


def test_missing_exec_command_exits_127(tmp_path: Path) -> None:
    _, _, args = child_args(tmp_path)
    args[args.index("-exec") + 1] = str(tmp_path / "no-such-program")
    with daemon(args, tmp_path / "log") as proc:
        assert proc.exit_code() == 127, proc.text()
    assert f"exec {tmp_path / 'no-such-program'}: cannot start: No such file" in proc.text()


def test_sighup_reaches_a_plain_child_after_the_reload(tmp_path: Path) -> None:
    _, log, args = child_args(tmp_path)
    script = tmp_path / "child.py"
    script.write_text(SCRIPT.replace("SIGUSR1, lambda *_: log.write(\"usr1\\n\")",
                                     "SIGHUP, lambda *_: log.write(\"hup\\n\")"))
    with daemon(args, tmp_path / "log") as proc:
        wait_for(lambda: lines(log), what="child start")
        proc.signal(signal.SIGHUP)
        wait_for(lambda: "hup" in lines(log), what=f"SIGHUP forwarded\n{proc.text()}")
        proc.signal(signal.SIGUSR2)  # no handler: the child dies of it, ctmpl follows
        wait_for(lambda: not proc.alive(), what="ctmpl to exit with its child")
        assert proc.proc.returncode == 128 + signal.SIGUSR2
