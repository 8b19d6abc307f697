"""The real CLI as a subprocess: -once, -dry, and each bad input's message and exit code."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.foundation_util import run_cli

CATALOG = """\
services:
  web:
    - {id: web-1, node: n1, address: 10.0.0.1, port: 80, tags: [calico]}
    - {id: web-2, node: n2, address: 10.0.0.2, port: 81, tags: [calico], status: critical}
kv:
  app/greeting: hello
"""
TEMPLATE = ("{{ key('app/greeting') }}\n"
            "{% for i in service('web') %}server {{ i.Address }}:{{ i.Port }};\n{% endfor %}")
EXPECTED = "hello\nserver 10.0.0.1:80;\n"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "catalog.yaml").write_text(CATALOG)
    (tmp_path / "in.j2").write_text(TEMPLATE)
    return tmp_path


def base(*extra: str) -> list[str]:
    return ["-once", "-catalog", "file://catalog.yaml", *extra]


def error_lines(stderr: str) -> list[str]:
    """stderr without the INFO lines (the startup line comes before any error)."""
    return [line for line in stderr.splitlines() if line.strip() and "[INFO]" not in line]


def test_once_renders_and_runs_command(work: Path) -> None:
    proc = run_cli(base("-template", "in.j2:out/web.conf:touch ran"), work)
    assert proc.returncode == 0, proc.stderr
    assert (work / "out" / "web.conf").read_text() == EXPECTED
    assert (work / "ran").exists()
    assert oct((work / "out" / "web.conf").stat().st_mode & 0o777) == oct(0o644)


def test_once_second_run_changes_nothing(work: Path) -> None:
    assert run_cli(base("-template", "in.j2:web.conf"), work).returncode == 0
    os.utime(work / "web.conf", ns=(10**9, 10**9))
    proc = run_cli(base("-template", "in.j2:web.conf:touch ran"), work)
    assert proc.returncode == 0
    assert (work / "web.conf").stat().st_mtime_ns == 10**9
    assert not (work / "ran").exists()  # unchanged file: no command


def test_dry_prints_and_writes_and_runs_nothing(work: Path) -> None:
    proc = run_cli(base("-dry", "-template", "in.j2:web.conf:touch ran"), work)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"> web.conf\n{EXPECTED}"
    assert not (work / "web.conf").exists()
    assert not (work / "ran").exists()


def test_config_file_and_flags(work: Path) -> None:
    (work / "c.hcl").write_text(
        'catalog = "file://catalog.yaml"\n'
        'template {\n  source = "in.j2"\n  destination = "a.conf"\n  perms = 0600\n}\n'
    )
    proc = run_cli(["-config", "c.hcl", "-once", "-template", "in.j2:b.conf"], work)
    assert proc.returncode == 0, proc.stderr
    assert (work / "a.conf").read_text() == EXPECTED
    assert (work / "b.conf").read_text() == EXPECTED
    assert (work / "a.conf").stat().st_mode & 0o777 == 0o600


def test_consul_token_flag_warns_and_is_never_logged(work: Path) -> None:
    proc = run_cli(base("-log-level", "trace", "-consul-token", "TOKEN-abc123",
                        "-template", "in.j2:web.conf"), work)
    assert proc.returncode == 0, proc.stderr
    assert "-consul-token" in proc.stderr and "ps" in proc.stderr
    assert "TOKEN-abc123" not in proc.stderr + proc.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-bogus"], 2, "unrecognized arguments: -bogus"),
        (["-template", "nocolon"], 2, "-template 'nocolon': expected src:dest[:command]"),
        (["-template", "in.j2:web.conf", "-wait", "5s:1s"], 2,
         "flag -wait: wait: max (1s) must not be less than min (5s)"),
        (["-template", "in.j2:web.conf", "-wait=-5s"], 2, "must not be negative"),
        (["-template", "in.j2:web.conf", "-wait", "soon"], 2, "'soon' is not a duration"),
        (["-once"], 2, "no templates"),
        (["-template", "missing.j2:web.conf"], 4, "template missing.j2: no such file"),
    ],
)
def test_bad_flags(work: Path, args: list[str], code: int, message: str) -> None:
    proc = run_cli([*args, "-catalog", "file://catalog.yaml"], work)
    assert proc.returncode == code, proc.stderr
    lines = error_lines(proc.stderr)
    assert lines == [lines[0]] and lines[0].startswith("ctmpl: ") and message in lines[0]
    assert not (work / "web.conf").exists()


@pytest.mark.parametrize(
    ("hcl", "message"),
    [
        ('template {\n  source = "in.j2"\n  destination = "web.conf"\n'
         '  wait {\n    mni = "1s"\n  }\n}\n', "c.hcl: template[0].wait.mni: unknown key"),
        ('template {\n  source = "in.j2"\n  destination = "web.conf"\n}\nonce = "sure"\n',
         "c.hcl: once: expected true or false, got 'sure'"),
        ('template {\n  source = "in.j2"\n  destination = "web.conf"\n}\n'
         'vaultt {\n  address = "x"\n}\n', "c.hcl: vaultt: unknown key"),
        ('template {\n  source = "in.j2"\n}\n', "c.hcl: template[0].destination: required"),
        ('template {\n  source = "in.j2"\n  destination = "a"\n}\n'
         'template {\n  destination = "b"\n}\n',
         "c.hcl: template[1]: set exactly one of source or contents"),
    ],
)
def test_bad_config(work: Path, hcl: str, message: str) -> None:
    (work / "c.hcl").write_text(hcl)
    proc = run_cli(base("-config", "c.hcl"), work)
    assert proc.returncode == 3, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and message in lines[0]
    assert not (work / "web.conf").exists()


def test_template_syntax_error(work: Path) -> None:
    (work / "bad.j2").write_text("ok\n{% if %}\n")
    proc = run_cli(base("-template", "bad.j2:web.conf"), work)
    assert proc.returncode == 4
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "template bad.j2:2: " in lines[0]
    assert not (work / "web.conf").exists()


def test_unknown_function(work: Path) -> None:
    (work / "bad.j2").write_text("ok\n\n{{ servicez('web') }}\n")
    proc = run_cli(base("-template", "bad.j2:web.conf"), work)
    assert proc.returncode == 4
    lines = error_lines(proc.stderr)
    assert len(lines) == 1
    assert "template bad.j2:3: unknown function or variable 'servicez'" in lines[0]
    assert not (work / "web.conf").exists()


def test_malformed_catalog(work: Path) -> None:
    (work / "catalog.yaml").write_text("services:\n  web: [\n    {id: a\n")
    proc = run_cli(base("-template", "in.j2:web.conf"), work)
    assert proc.returncode == 5
    lines = error_lines(proc.stderr)
    assert len(lines) == 1
    assert f"catalog {work}/catalog.yaml:" in lines[0]
    assert lines[0].split("catalog.yaml:")[1].split(":")[0].isdigit()
    assert not (work / "web.conf").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="as non-root other permission checks apply")
def test_destination_not_writable(work: Path) -> None:
    (work / "blocker").write_text("a regular file\n")
    proc = run_cli(base("-template", "in.j2:blocker/sub/web.conf"), work)
    assert proc.returncode == 6
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "install blocker/sub/web.conf" in lines[0]
    assert (work / "blocker").read_text() == "a regular file\n"


def test_failed_command_exit_code(work: Path) -> None:
    proc = run_cli(base("-template", "in.j2:web.conf:echo nope; exit 3"), work)
    assert proc.returncode == 7
    assert "command 'echo nope; exit 3': exited with status 3: nope" in proc.stderr
    assert (work / "web.conf").read_text() == EXPECTED  # the file is installed before


def test_missing_key_in_once_with_a_file_catalog_fails_and_writes_nothing(work: Path) -> None:
    # The file catalog is not watched in -once: waiting for the key could never end.
    (work / "k.j2").write_text("{{ key('app/absent') }}\n")
    proc = run_cli(base("-template", "k.j2:web.conf"), work)
    assert proc.returncode == 5
    assert "file.key(app/absent)" in proc.stderr and "-once cannot wait" in proc.stderr
    assert not (work / "web.conf").exists()


def test_python_m_ctmpl_help() -> None:
    proc = run_cli(["-help"], Path.cwd())
    assert proc.returncode == 0
    assert "-template" in proc.stdout


def test_version() -> None:
    assert shutil.which("sh")
    proc = run_cli(["-version"], Path.cwd())
    assert proc.returncode == 0 and proc.stdout.strip()
