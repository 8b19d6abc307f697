"""Crashes: ctmpl SIGKILLed anywhere, then restarted, leaves nginx serving a complete config."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.daemon import Daemon, daemon, wait_for, write_catalog
from tests.fixtures_nginx import Backend, NginxEnv
from tests.test_daemon_nginx import instance, setup

KILLS = 20


def temp_files(env: NginxEnv) -> list[str]:
    """Anything in conf.d that is not the rendered file (temp, staged or backup copies)."""
    return sorted(p.name for p in env.conf_d.iterdir() if p.name.startswith("."))


def nginx_accepts(env: NginxEnv) -> bool:
    """``nginx -t`` on the env's main config, which includes the rendered file."""
    res = subprocess.run([env.binary, "-c", str(env.config), "-t"], capture_output=True,
                         timeout=60, check=False)
    return res.returncode == 0


def test_killed_between_install_and_reload(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: Callable[[str], Backend]
) -> None:
    """Killed right after installing b and before reloading: the restart reloads nginx."""
    a, b = make_backend("a"), make_backend("b")
    catalog, args = setup(tmp_path, nginx_env, wait="0s")
    write_catalog(catalog, {"web": [instance(a)]})
    with daemon(args, tmp_path / "first.log"):
        nginx_env.wait_body("a\n")
    # "check_mode installed" runs the check after the install and before the reload: a
    # check that SIGKILLs ctmpl is a crash at exactly that point.
    killer = tmp_path / "kill.hcl"
    source, dest = tmp_path / "upstream.j2", nginx_env.conf_d / "upstream.conf"
    killer.write_text(f'template {{\n  source = "{source}"\n  destination = "{dest}"\n'
                      '  check = "kill -KILL $PPID"\n  check_mode = "installed"\n}\n')
    write_catalog(catalog, {"web": [instance(b)]})
    crashing = [*args[:2], "-config", str(killer), *args[4:]]
    with daemon(crashing, tmp_path / "crash.log") as proc:
        wait_for(lambda: not proc.alive(), what="ctmpl to be killed by its check")
    assert proc.proc.returncode == -signal.SIGKILL
    assert f"127.0.0.1:{b.port}" in (nginx_env.conf_d / "upstream.conf").read_text()
    assert nginx_env.fetch() == (200, "a\n"), "nginx still runs the old config"
    with daemon(args, tmp_path / "restart.log") as proc:
        nginx_env.wait_body("b\n")
        proc.wait_log("nginx reloaded: it may not have run the installed config")


def test_restart_without_changes_does_not_reload_a_fresh_master(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: Callable[[str], Backend]
) -> None:
    a = make_backend("a")
    catalog, args = setup(tmp_path, nginx_env, wait="0s")
    write_catalog(catalog, {"web": [instance(a)]})
    with daemon(args, tmp_path / "first.log"):
        nginx_env.wait_body("a\n")
    nginx_env.stop()
    conf = nginx_env.conf_d / "upstream.conf"
    past = time.time() - 60
    os.utime(conf, (past, past))
    nginx_env.start()  # started after the last install: provably runs it
    before = nginx_env.reload_count()
    with daemon(args, tmp_path / "second.log") as proc:
        wait_for(lambda: "started after the last install" in proc.text(), what="the proof")
        nginx_env.wait_body("a\n")
    assert nginx_env.reload_count() == before


def test_random_kills_during_bursts(
    tmp_path: Path, nginx_env: NginxEnv, make_backend: Callable[[str], Backend]
) -> None:
    """SIGKILL at random points of bursts of changes; every restart converges and cleans up."""
    rng = random.Random(17)
    backends = [make_backend("a"), make_backend("b")]
    catalog, args = setup(tmp_path, nginx_env, wait="0s")
    conf = nginx_env.conf_d / "upstream.conf"
    final = backends[0]
    write_catalog(catalog, {"web": [instance(final, v="start")]})
    deadline = time.monotonic() + 120
    for kill in range(KILLS + 1):
        proc = Daemon(args, tmp_path / f"ctmpl-{kill}.log")
        try:
            nginx_env.wait_body(f"{final.name}\n")
            marker = f"# v{kill}\n" if kill else "# vstart\n"
            wait_for(lambda: marker in conf.read_text(), what="the last version")  # noqa: B023
            assert not temp_files(nginx_env), temp_files(nginx_env)
            if kill == KILLS:
                break
            for step in range(rng.randint(1, 12)):
                final = rng.choice(backends)
                write_catalog(catalog, {"web": [instance(final, v=f"{kill + 1}-{step}")]})
                time.sleep(rng.uniform(0, 0.03))
            write_catalog(catalog, {"web": [instance(final, v=f"{kill + 1}")]})
            time.sleep(rng.uniform(0, 0.3))
            proc.proc.send_signal(signal.SIGKILL)
            proc.proc.wait()
            text = conf.read_text()
            assert text.startswith("upstream backend {\n") and "}\n" in text, text
            assert nginx_accepts(nginx_env)
        finally:
            proc.stop()
        assert time.monotonic() < deadline, "the crash test must stay bounded"
