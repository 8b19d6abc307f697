"""Commands: de-duplicated in config order, timeouts kill the group, failures reported."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from ctmpl.commands import Command, run_command, run_commands, unique_in_order
from ctmpl.errors import CommandFailed


def test_unique_in_order_keeps_first_position() -> None:
    cmds = [Command("b"), Command("a"), Command("b", 5), Command(""), Command("c"), Command("a")]
    assert [c.text for c in unique_in_order(cmds)] == ["b", "a", "c"]
    assert unique_in_order(cmds)[0].timeout == 30.0


async def test_commands_run_in_config_order_once_each(tmp_path: Path) -> None:
    log = tmp_path / "log"
    cmds = [Command(f"echo {n} >> {log}") for n in ("one", "two", "one", "three", "two")]
    assert await run_commands(cmds) == []
    assert log.read_text() == "one\ntwo\nthree\n"


async def test_non_zero_exit_is_command_failed() -> None:
    message = r"command 'echo oops; exit 3': exited with status 3: oops"
    with pytest.raises(CommandFailed, match=message):
        await run_command(Command("echo oops; exit 3"))


async def test_failures_are_returned_and_every_command_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    failures = await run_commands([Command("false"), Command(f"touch {marker}")])
    assert len(failures) == 1 and failures[0].exit_code == 7
    assert marker.exists()


async def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(CommandFailed, match=r"timed out after 0\.5s \(killed\)"):
        await run_command(Command(f"sleep 30 & echo $! > {pidfile}; wait", timeout=0.5))
    assert time.monotonic() - started < 10
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        if _is_zombie(child):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail(f"background child {child} survived the timeout")


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


async def test_command_output_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    await run_command(Command("echo hello-from-cmd"))
    assert any("hello-from-cmd" in r.getMessage() for r in caplog.records)


async def test_a_command_leaving_a_daemon_on_its_output_returns_when_the_shell_exits() -> None:
    # Like nginx.sh cold-starting nginx whose error_log is stderr: the daemon keeps the
    # output open long after the command itself has finished.
    started = time.monotonic()
    await run_command(Command("setsid sleep 5 & echo started", timeout=4))
    assert time.monotonic() - started < 3
