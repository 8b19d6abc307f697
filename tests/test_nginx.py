"""NginxController against a real nginx running from a private prefix."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
from collections.abc import Callable

import msgspec
import psutil
import pytest

from ctmpl.errors import CheckFailed, ProxyError
from ctmpl.proxy import NginxController
from ctmpl.proxy.nginx_procs import config_error_log, problems_in, read_pid
from tests.fixtures_nginx import Backend, NginxEnv, wait_until

MakeBackend = Callable[[str], Backend]


def controller(env: NginxEnv) -> NginxController:
    return NginxController(env.cfg)


# -- test() ------------------------------------------------------------------------------


def test_check_passes(nginx_env: NginxEnv, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        controller(nginx_env).test()
    assert "checked" in caplog.text


def test_check_fails_with_emerg_line(nginx_env: NginxEnv) -> None:
    nginx_env.write_conf_d("bad.conf", "bogus_directive on;\n")
    with pytest.raises(CheckFailed) as err:
        controller(nginx_env).test()
    msg = str(err.value)
    assert "[emerg]" in msg
    assert 'unknown directive "bogus_directive"' in msg
    assert "bad.conf:1" in msg


def test_check_staged_path(nginx_env: NginxEnv) -> None:
    staged = nginx_env.root / "nginx.conf.staged"
    staged.write_text(nginx_env.main_conf().replace("worker_processes 1;", "worker_processes x;"))
    ctl = controller(nginx_env)
    with pytest.raises(CheckFailed, match=r"nginx\.conf\.staged.*invalid value"):
        ctl.test(str(staged))
    ctl.test()  # the live config is still fine


def test_missing_binary_is_a_proxy_error(nginx_env: NginxEnv) -> None:
    cfg = msgspec.structs.replace(nginx_env.cfg, binary="/nonexistent/nginx")
    ctl = NginxController(cfg)
    with pytest.raises(ProxyError, match="cannot run '/nonexistent/nginx'"):
        ctl.test()
    with pytest.raises(ProxyError, match="cannot run"):
        ctl.start()


# -- master() ----------------------------------------------------------------------------


def test_master_live(nginx_env: NginxEnv) -> None:
    pid = nginx_env.start()
    master = controller(nginx_env).master()
    assert master is not None
    assert master.pid == pid


def test_master_without_pid_file(nginx_env: NginxEnv) -> None:
    assert controller(nginx_env).master() is None


@pytest.mark.parametrize("content", ["", "\n", "garbage\n", "-5\n", "0\n", "12ab\n", "\x00\xff"])
def test_master_garbage_pid_file(nginx_env: NginxEnv, content: str) -> None:
    nginx_env.pid_file.write_text(content)
    assert controller(nginx_env).master() is None


def test_master_dead_pid(nginx_env: NginxEnv) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    nginx_env.pid_file.write_text(f"{proc.pid}\n")
    assert controller(nginx_env).master() is None


def test_master_zombie_pid(nginx_env: NginxEnv) -> None:
    proc = subprocess.Popen(["true"])
    try:
        wait_until(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE,
                   what="zombie")
        nginx_env.pid_file.write_text(f"{proc.pid}\n")
        assert controller(nginx_env).master() is None
    finally:
        proc.wait()


def test_master_reused_pid_of_other_process(nginx_env: NginxEnv) -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        nginx_env.pid_file.write_text(f"{proc.pid}\n")
        assert controller(nginx_env).master() is None
    finally:
        proc.kill()
        proc.wait()


def test_master_pid_of_a_worker(nginx_env: NginxEnv) -> None:
    nginx_env.start()
    (worker,) = nginx_env.worker_pids()
    nginx_env.pid_file.write_text(f"{worker}\n")
    assert controller(nginx_env).master() is None


def test_master_killed(nginx_env: NginxEnv) -> None:
    nginx_env.start()
    nginx_env.kill_master()
    assert controller(nginx_env).master() is None


# -- apply() -----------------------------------------------------------------------------


def test_apply_reloads_running_master(nginx_env: NginxEnv, make_backend: MakeBackend) -> None:
    old, new = make_backend("old"), make_backend("new")
    nginx_env.set_backends(old.port)
    pid = nginx_env.start()
    nginx_env.wait_body("old\n")
    workers = nginx_env.worker_pids()
    reloads = nginx_env.reload_count()

    nginx_env.set_backends(new.port)
    assert controller(nginx_env).apply() == "reloaded"

    assert nginx_env.master_pid() == pid
    assert nginx_env.worker_pids().isdisjoint(workers)
    assert nginx_env.reload_count() == reloads + 1
    assert nginx_env.fetch() == (200, "new\n")


def test_apply_cold_starts_when_stopped(nginx_env: NginxEnv, make_backend: MakeBackend,
                                        caplog: pytest.LogCaptureFixture) -> None:
    nginx_env.set_backends(make_backend("one").port)
    with caplog.at_level(logging.INFO):
        assert controller(nginx_env).apply() == "started"
    assert nginx_env.master_pid() is not None
    assert nginx_env.fetch() == (200, "one\n")
    assert "started master" in caplog.text


def test_apply_cold_starts_over_stale_pid_file(nginx_env: NginxEnv,
                                               make_backend: MakeBackend) -> None:
    nginx_env.set_backends(make_backend("one").port)
    proc = subprocess.Popen(["sleep", "60"])
    try:
        nginx_env.pid_file.write_text(f"{proc.pid}\n")
        assert controller(nginx_env).apply() == "started"
        assert proc.poll() is None  # the unrelated process was left alone
    finally:
        proc.kill()
        proc.wait()
    assert read_pid(str(nginx_env.pid_file)) == nginx_env.master_pid()
    assert nginx_env.fetch() == (200, "one\n")


def test_apply_after_sigkill_stops_orphans(nginx_env: NginxEnv, make_backend: MakeBackend) -> None:
    nginx_env.set_backends(make_backend("old").port)
    nginx_env.start()
    nginx_env.wait_body("old\n")
    _, orphans = nginx_env.kill_master()
    # The orphaned worker still holds the port and serves the old config.
    assert nginx_env.fetch() == (200, "old\n")

    nginx_env.set_backends(make_backend("new").port)
    assert controller(nginx_env).apply() == "started"

    assert all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE
               for p in orphans)
    assert nginx_env.master_pid() is not None
    assert nginx_env.worker_pids().isdisjoint(orphans)
    assert nginx_env.fetch() == (200, "new\n")


def test_orphans_of_another_nginx_are_left_alone(nginx_env: NginxEnv, tmp_path_factory:
                                                 pytest.TempPathFactory) -> None:
    other = NginxEnv(tmp_path_factory.mktemp("other") / "nginx", nginx_env.binary)
    try:
        other.start()
        _, orphans = other.kill_master()
        assert controller(nginx_env).apply() == "started"
        assert all(psutil.Process(p).is_running() for p in orphans)
        assert other.fetch("/_health") == (200, "ok\n")
    finally:
        other.stop()


def test_apply_refuses_bad_config_old_one_serves(nginx_env: NginxEnv,
                                                 make_backend: MakeBackend) -> None:
    nginx_env.set_backends(make_backend("old").port)
    pid = nginx_env.start()
    nginx_env.wait_body("old\n")
    workers = nginx_env.worker_pids()
    reloads = nginx_env.reload_count()

    nginx_env.write_conf_d("upstream.conf", "upstream backend { server 127.0.0.1:1 bogus; }\n")
    with pytest.raises(CheckFailed, match=r"\[emerg\] invalid parameter \"bogus\""):
        controller(nginx_env).apply()

    assert nginx_env.master_pid() == pid
    assert nginx_env.worker_pids() == workers
    assert nginx_env.reload_count() == reloads
    assert nginx_env.fetch() == (200, "old\n")


def test_reload_that_nginx_rejects_is_reported(nginx_env: NginxEnv,
                                               make_backend: MakeBackend) -> None:
    # "nginx -t" passes but the reload cannot bind: the port is taken by another socket.
    nginx_env.set_backends(make_backend("old").port)
    pid = nginx_env.start()
    workers = nginx_env.worker_pids()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        nginx_env.config.write_text(nginx_env.main_conf(port=port))
        with pytest.raises(ProxyError, match=r"reload of master \d+ failed, old config still "
                           r"live: \[emerg\] bind\(\) to 127"):
            controller(nginx_env).apply()
    assert nginx_env.master_pid() == pid
    assert nginx_env.worker_pids() == workers
    assert nginx_env.fetch() == (200, "old\n")


def test_start_failure_reports_error_line(nginx_env: NginxEnv) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", nginx_env.port))
        blocker.listen()
        with pytest.raises(ProxyError, match=r"start failed.*bind\(\) to 127\.0\.0\.1"):
            controller(nginx_env).start()
    assert nginx_env.master_pid() is None


def test_foreground_nginx_is_started_and_reaped(nginx_env: NginxEnv) -> None:
    cfg = msgspec.structs.replace(nginx_env.cfg, globals="daemon off;")
    nginx_env.config.write_text(nginx_env.main_conf().replace("daemon on;\n", ""))
    ctl = NginxController(cfg)
    ctl.start()
    pid = nginx_env.master_pid()
    assert pid is not None
    assert nginx_env.fetch("/_health") == (200, "ok\n")
    os.kill(pid, signal.SIGQUIT)
    wait_until(lambda: ctl.master() is None, what="foreground master to exit")
    assert not psutil.pid_exists(pid)  # reaped, not left as a zombie


# -- reconcile() with files older than the master ---------------------------------------------


def test_reconcile_starts_nginx_once(nginx_env: NginxEnv) -> None:
    ctl = controller(nginx_env)
    assert ctl.reconcile([]) == "started"
    pid = nginx_env.master_pid()
    assert pid is not None
    assert ctl.reconcile([]) == "current"
    assert nginx_env.master_pid() == pid
    assert nginx_env.fetch("/_health") == (200, "ok\n")


def test_reconcile_leaves_a_master_started_after_the_files(nginx_env: NginxEnv) -> None:
    pid = nginx_env.start()
    workers = nginx_env.worker_pids()
    assert controller(nginx_env).reconcile([]) == "current"
    assert nginx_env.master_pid() == pid
    assert nginx_env.worker_pids() == workers


# -- helpers -----------------------------------------------------------------------------


def test_config_error_log(tmp_path: pytest.TempPathFactory) -> None:
    conf = os.path.join(str(tmp_path), "n.conf")
    with open(conf, "w") as f:
        f.write("# error_log /commented;\nhttp {\n error_log /inner.log;\n}\n"
                "error_log logs/err.log warn;\n")
    assert config_error_log(conf, "/pfx") == "/pfx/logs/err.log"
    assert config_error_log(conf, "") is None
    with open(conf, "w") as f:
        f.write("error_log stderr;\n")
    assert config_error_log(conf, "") is None
    assert config_error_log("/nonexistent.conf", "") is None


def test_problems_in() -> None:
    out = ("nginx: [warn] low\nnginx: [emerg] bad thing in /x:3\n"
           "nginx: configuration file /x test failed\n")
    assert problems_in(out) == ["[emerg] bad thing in /x:3"]


# -- reload() against stand-in masters ----------------------------------------------------


def fake_master(ignore_hup: bool) -> subprocess.Popen[bytes]:
    """A process titled like an nginx master, without workers; optionally deaf to SIGHUP."""
    trap = 'trap "" HUP; ' if ignore_hup else ""
    return subprocess.Popen(["bash", "-c", f'{trap}exec -a "nginx: master process" sleep 60'])


@pytest.mark.parametrize("ignore_hup", [True, False])
def test_reload_reports_master_that_does_not_reload(nginx_env: NginxEnv,
                                                     ignore_hup: bool) -> None:
    proc = fake_master(ignore_hup)
    try:
        wait_until(lambda: psutil.Process(proc.pid).cmdline()[:1] == ["nginx: master process"],
                   what="fake master")
        nginx_env.pid_file.write_text(f"{proc.pid}\n")
        ctl = NginxController(msgspec.structs.replace(nginx_env.cfg, reload_timeout=0.5))
        master = ctl.master()
        assert master is not None
        expected = "did not take effect within 0.5s" if ignore_hup else "exited during reload"
        with pytest.raises(ProxyError, match=expected):
            ctl.apply()
    finally:
        proc.kill()
        proc.wait()
