"""Stale temp files of an interrupted run are removed at startup — only ctmpl's own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ctmpl.check import check_staged
from ctmpl.install import InstallOptions, install
from ctmpl.stale import remove_stale_temp_files, stale_temp_files, temp_patterns
from tests.foundation_util import run_cli


def test_only_our_patterns_beside_our_destinations(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    dest = conf / "upstreams.conf"
    ours = [".upstreams.conf.ab3_x9z0.tmp", ".upstreams.conf.bak.k2j4h5g6.tmp",
            ".upstreams.staged.q1w2e3r4.conf"]
    theirs = [".upstreams.conf.tmp", ".other.conf.ab3_x9z0.tmp", "upstreams.conf.ab3_x9z0.tmp",
              ".upstreams.conf.AB3_X9Z0.tmp", ".upstreams.conf.ab3_x9z.tmp", "upstreams.conf",
              ".upstreams.conf.ab3_x9z0.tmp.keep"]
    for name in ours + theirs:
        (conf / name).write_text("x")
    (conf / ".upstreams.conf.dir12345.tmp").mkdir()  # not a regular file
    os.symlink(conf / "upstreams.conf", conf / ".upstreams.conf.link1234.tmp")
    elsewhere = tmp_path / ".upstreams.conf.ab3_x9z0.tmp"
    elsewhere.write_text("x")
    assert sorted(p.name for p in stale_temp_files(dest)) == sorted(ours)
    assert remove_stale_temp_files([dest, dest]) == 3
    left = sorted(p.name for p in conf.iterdir())
    assert left == sorted([*theirs, ".upstreams.conf.dir12345.tmp",
                           ".upstreams.conf.link1234.tmp"])
    assert elsewhere.exists()


async def test_staged_check_names_match_the_pattern(tmp_path: Path) -> None:
    dest = tmp_path / "site.conf"
    seen = tmp_path / "seen"
    await check_staged(f"basename {{{{staged}}}} > {seen}", dest, b"x")
    name = seen.read_text().strip()
    assert any(p.fullmatch(name) for p in temp_patterns(dest)), name
    assert not stale_temp_files(dest)  # removed after the check


def test_startup_removes_stale_temp_files(tmp_path: Path) -> None:
    (tmp_path / "catalog.yaml").write_text("services: {}\n")
    (tmp_path / "t.j2").write_text("x\n")
    stale = tmp_path / ".out.conf.zz9_8y7x.tmp"
    stale.write_text("half a config")
    proc = run_cli(["-once", "-catalog", "file://catalog.yaml", "-template", "t.j2:out.conf"],
                   tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists()
    assert f"removed stale temp file {stale.name}" in proc.stderr


def test_install_temp_names_match_the_pattern(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "site.conf"
    dest.write_text("old")
    names: list[str] = []
    real = os.replace

    def recording(src: str | Path, dst: str | Path) -> None:
        names.append(Path(src).name)
        real(src, dst)

    monkeypatch.setattr("ctmpl.install.os.replace", recording)
    install(dest, b"new", InstallOptions(backup=True))
    assert names
    for name in names:
        assert any(p.fullmatch(name) for p in temp_patterns(dest)), name
