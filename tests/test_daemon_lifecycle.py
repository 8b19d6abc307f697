"""Daemon behaviour without a proxy: commands, missing data, signals, reload of config."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.daemon import Daemon, daemon, wait_for, write_atomic, write_catalog

WEB = [{"id": "w1", "address": "127.0.0.1", "port": 8081}]
TEMPLATE = '{% for i in service("web") %}{{ i.Address }}:{{ i.Port }}\n{% endfor %}'


def base_args(tmp_path: Path, command: str = "", template: str = TEMPLATE) -> list[str]:
    """Args for a daemon over a file catalog with one template."""
    catalog = tmp_path / "catalog.yaml"
    write_catalog(catalog, {"web": WEB})
    source = tmp_path / "web.j2"
    source.write_text(template)
    spec = f"{source}:{tmp_path / 'out.txt'}" + (f":{command}" if command else "")
    return ["-catalog", f"file://{catalog}", "-template", spec, "-wait", "0s",
            "-log-level", "debug"]


def test_failing_command_is_logged_and_daemon_keeps_running(tmp_path: Path) -> None:
    with daemon(base_args(tmp_path, "echo boom >&2; exit 3"), tmp_path / "log") as proc:
        proc.wait_log("exited with status 3: boom")
        write_catalog(tmp_path / "catalog.yaml", {"web": [*WEB, {**WEB[0], "id": "w2",
                                                                "port": 8082}]})
        wait_for(lambda: "8082" in (tmp_path / "out.txt").read_text(), what="re-render")
        wait_for(lambda: proc.text().count("exited with status 3") >= 2, what="second failure")
        assert proc.alive()


def test_timed_out_command_is_killed_and_reported(tmp_path: Path) -> None:
    source = tmp_path / "cfg.hcl"
    args = base_args(tmp_path)
    source.write_text(
        f'template {{\n  source = "{tmp_path / "web.j2"}"\n'
        f'  destination = "{tmp_path / "out.txt"}"\n'
        '  command = "sleep 30"\n  command_timeout = "300ms"\n}\n'
    )
    with daemon([*args[:2], "-config", str(source), "-wait", "0s"], tmp_path / "log") as proc:
        proc.wait_log("timed out after 0.3s")
        assert proc.alive()


def test_command_error_fatal_exits_with_code_7(tmp_path: Path) -> None:
    proc = Daemon([*base_args(tmp_path, "exit 1"), "-command-error-fatal"], tmp_path / "log")
    try:
        wait_for(lambda: not proc.alive(), what="exit on command failure")
    finally:
        proc.stop()
    assert proc.proc.returncode == 7


def test_missing_dependency_is_warned_naming_the_query(tmp_path: Path) -> None:
    args = base_args(tmp_path, template='{{ key("app/absent") }}\n')
    with daemon([*args, "-missing-dependency-warn", "300ms"], tmp_path / "log") as proc:
        proc.wait_log("still waiting")
        assert "file.key(app/absent)" in proc.text()
        assert not (tmp_path / "out.txt").exists(), "an incomplete render is never written"


def test_sigint_stops_gracefully_and_a_second_one_forces(tmp_path: Path) -> None:
    with daemon(base_args(tmp_path), tmp_path / "log") as proc:
        wait_for((tmp_path / "out.txt").exists, what="first render")
        proc.signal(signal.SIGINT)
        wait_for(lambda: not proc.alive(), what="graceful stop")
    assert proc.proc.returncode == 0
    (tmp_path / "out.txt").unlink()
    with daemon(base_args(tmp_path, "sleep 60"), tmp_path / "log2") as busy:
        busy.wait_log("running command: sleep 60")
        busy.signal(signal.SIGINT)
        busy.wait_log("stopping")
        busy.signal(signal.SIGINT)
        wait_for(lambda: not busy.alive(), timeout=10, what="forced stop")
    assert busy.proc.returncode == 130


def test_sighup_reloads_config_and_a_bad_one_is_kept_out(tmp_path: Path) -> None:
    config = tmp_path / "extra.hcl"
    config.write_text('log_level = "debug"\n')
    with daemon([*base_args(tmp_path), "-config", str(config)], tmp_path / "log") as proc:
        wait_for((tmp_path / "out.txt").exists, what="first render")
        write_atomic(tmp_path / "web.j2", "new:" + TEMPLATE)
        proc.signal(signal.SIGHUP)
        wait_for(lambda: "new:" in (tmp_path / "out.txt").read_text(), what="re-render")
        config.write_text("log_level = \n")
        proc.signal(signal.SIGHUP)
        proc.wait_log("keeping the running configuration")
        assert proc.alive()


def test_a_reload_that_sets_kill_signal_makes_it_stop_the_daemon(tmp_path: Path) -> None:
    config = tmp_path / "extra.hcl"
    config.write_text('log_format = "text"\n')
    with daemon([*base_args(tmp_path), "-config", str(config)], tmp_path / "log") as proc:
        wait_for((tmp_path / "out.txt").exists, what="first render")
        config.write_text('kill_signal = "SIGUSR2"\n')
        proc.signal(signal.SIGHUP)
        proc.wait_log("reloaded configuration")
        proc.signal(signal.SIGUSR2)
        wait_for(lambda: not proc.alive(), what="stop on the new kill_signal")
    assert proc.proc.returncode == 0
