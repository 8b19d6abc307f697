"""The check stage: staged checks leave the live file alone; installed mode rolls back."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctmpl.check import check_staged, expand, install_checked, run_check
from ctmpl.errors import CheckFailed
from ctmpl.install import InstallOptions

# A checker that accepts a file unless it contains "bad".
CHECK = "! grep -q bad {{staged}}"


def test_expand_quotes_the_path() -> None:
    assert expand("nginx -t -c {{ staged }}", Path("/a b/c")) == "nginx -t -c '/a b/c'"
    assert expand("check {staged}", Path("/x")) == "check /x"


async def test_staged_check_passes(tmp_path: Path) -> None:
    dest = tmp_path / "live.conf"
    dest.write_bytes(b"old\n")
    await check_staged(CHECK, dest, b"good\n")
    assert dest.read_bytes() == b"old\n"  # the caller installs after a pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.conf"]


async def test_staged_check_sees_the_new_content(tmp_path: Path) -> None:
    dest = tmp_path / "live.conf"
    seen = tmp_path / "seen"
    await check_staged(f"cp {{{{staged}}}} {seen}", dest, b"new bytes\n")
    assert seen.read_bytes() == b"new bytes\n"


async def test_staged_check_fails_and_live_file_is_untouched(tmp_path: Path) -> None:
    dest = tmp_path / "live.conf"
    dest.write_bytes(b"old good\n")
    with pytest.raises(CheckFailed, match=r"failed \(status 1\)") as info:
        await check_staged(CHECK + "; echo rejected >&2; exit 1", dest, b"bad\n")
    assert "rejected" in str(info.value)
    assert info.value.exit_code == 8
    assert dest.read_bytes() == b"old good\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.conf"]


async def test_installed_mode_passes(tmp_path: Path) -> None:
    dest = tmp_path / "snippet.conf"
    dest.write_bytes(b"old\n")
    assert await install_checked(CHECK, dest, b"good\n", InstallOptions()) is True
    assert dest.read_bytes() == b"good\n"


async def test_installed_mode_rolls_back(tmp_path: Path) -> None:
    dest = tmp_path / "snippet.conf"
    dest.write_bytes(b"old\n")
    dest.chmod(0o640)
    with pytest.raises(CheckFailed):
        await install_checked(CHECK, dest, b"bad\n", InstallOptions(backup=True))
    assert dest.read_bytes() == b"old\n"
    assert dest.stat().st_mode & 0o777 == 0o640


async def test_installed_mode_removes_a_new_file_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "new.conf"
    with pytest.raises(CheckFailed):
        await install_checked(CHECK, dest, b"bad\n", InstallOptions())
    assert not dest.exists()


async def test_installed_mode_unchanged_runs_no_check(tmp_path: Path) -> None:
    dest = tmp_path / "same.conf"
    dest.write_bytes(b"bad\n")
    assert await install_checked(CHECK, dest, b"bad\n", InstallOptions()) is False


async def test_check_timeout(tmp_path: Path) -> None:
    with pytest.raises(CheckFailed, match="timed out"):
        await run_check("sleep 20", tmp_path / "x", timeout=0.3)
