"""systemd: the sd_notify messages on a test NOTIFY_SOCKET, and the shipped unit verified."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctmpl import notify
from tests.conftest import ROOT
from tests.daemon import daemon, wait_for, write_catalog

UNIT = ROOT / "contrib" / "systemd" / "ctmpl.service"


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket in $NOTIFY_SOCKET, as systemd passes it to a Type=notify service."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.1)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def receive(sock: socket.socket, into: list[str]) -> list[str]:
    """Append every message waiting on ``sock`` to ``into``."""
    while True:
        try:
            into.append(sock.recv(4096).decode())
        except TimeoutError:
            return into


def test_ready_reloading_and_stopping(tmp_path: Path, notify_socket: socket.socket) -> None:
    catalog = tmp_path / "catalog.yaml"
    template = tmp_path / "t.tmpl"
    template.write_text('{{ key("go") }}{% for i in service("web") %}{{ i.Port }}{% endfor %}\n')
    web = {"web": [{"id": "w", "address": "127.0.0.1", "port": 8001}]}
    write_catalog(catalog, web)
    args = ["-catalog", f"file://{catalog}", "-wait", "0s", "-log-level", "debug",
            "-template", f"{template}:{tmp_path / 'out'}"]
    got: list[str] = []
    with daemon(args, tmp_path / "log") as proc:
        proc.wait_log("waiting for")
        assert not any("READY=1" in m for m in receive(notify_socket, got)), "no data yet"
        write_catalog(catalog, web, kv={"go": "yes"})
        wait_for(lambda: any("READY=1" in m for m in receive(notify_socket, got)),
                 what=f"READY=1\n{proc.text()}")
        ready = next(m for m in got if "READY=1" in m)
        assert re.search(r"^STATUS=ready at \d\d:\d\d:\d\d", ready, re.MULTILINE), ready
        got.clear()
        proc.signal(signal.SIGHUP)
        wait_for(lambda: any("READY=1" in m for m in receive(notify_socket, got)),
                 what="READY=1 after the reload")
        assert "RELOADING=1" in got[0] and "MONOTONIC_USEC=" in got[0]
        proc.signal(signal.SIGTERM)
        wait_for(lambda: not proc.alive(), what="stop")
        assert proc.proc.returncode == 0
    wait_for(lambda: any("STOPPING=1" in m for m in receive(notify_socket, got)),
             what="STOPPING=1")


def test_notify_is_a_no_op_without_a_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.ready("x") is False


def test_abstract_socket_address(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"ctmpl-test-{id(monkeypatch)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify.status("rendered 2 file(s)\nsecond line") is True
        assert sock.recv(100) == b"STATUS=rendered 2 file(s) second line"


def test_unit_is_type_notify_with_reload_and_env_file() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID",
                 "EnvironmentFile=-/etc/ctmpl/ctmpl.env",
                 "ExecStart=/opt/ctmpl/bin/ctmpl -config /etc/ctmpl/"):
        assert line in text.splitlines(), line
    readme = (ROOT / "README.md").read_text()
    assert "python3 -m venv /opt/ctmpl && /opt/ctmpl/bin/pip install ." in readme, \
        "the README's install must produce the unit's binary path"


def test_sidekick_unit_runs_the_register_command() -> None:
    unit_text = (UNIT.parent / "ctmpl-register@.service").read_text()
    assert "ExecStart=/opt/ctmpl/bin/ctmpl register -config /etc/ctmpl/register/%i.hcl" \
        in unit_text.splitlines()


# verify needs an instance name for a template unit (ctmpl-register@.service)
@pytest.mark.parametrize(("shipped", "name"), [("ctmpl.service", "ctmpl.service"),
                                               ("ctmpl-register@.service",
                                                "ctmpl-register@web.service")])
def test_unit_passes_systemd_analyze_verify(tmp_path: Path, shipped: str, name: str) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    ctmpl = Path(sys.executable).with_name("ctmpl")
    assert ctmpl.exists(), "ctmpl is installed in the test venv"
    # verify insists that ExecStart's binary exists: point it at this venv's ctmpl.
    unit = tmp_path / name
    unit.write_text((UNIT.parent / shipped).read_text().replace("/opt/ctmpl/bin/ctmpl",
                                                                 str(ctmpl)))
    res = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                         timeout=60, check=False)
    if res.returncode != 0 and "Failed to initialize" in res.stderr + res.stdout:
        pytest.skip(f"systemd-analyze cannot run here: {res.stderr.strip()}")
    assert res.returncode == 0, res.stderr
    assert str(unit) not in res.stdout + res.stderr, res.stdout + res.stderr
