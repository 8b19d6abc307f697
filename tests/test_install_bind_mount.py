"""In-place install on a real single-file bind mount (rename fails with EBUSY) on a small tmpfs.

Needs root (mount); skipped elsewhere. The destination must hold either the old or the new
bytes after any failure, never a mix.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctmpl import install as install_mod
from ctmpl.errors import InstallError
from ctmpl.install import install


def _mount(*args: str) -> bool:
    proc = subprocess.run(["mount", *args], capture_output=True, check=False, timeout=30)
    return proc.returncode == 0


@pytest.fixture
def bind_dest(tmp_path: Path) -> Iterator[Path]:
    """``small/dest.conf`` on a 64 KiB tmpfs, bind-mounted onto itself: rename gives EBUSY."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    small = tmp_path / "small"
    small.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)):
        pytest.skip("cannot mount a tmpfs here")
    dest = small / "dest.conf"
    dest.write_bytes(b"o" * 10_000)
    try:
        if not _mount("--bind", str(dest), str(dest)):
            pytest.skip("cannot bind-mount a file here")
        try:
            yield dest
        finally:
            subprocess.run(["umount", str(dest)], check=False, timeout=30)
    finally:
        subprocess.run(["umount", str(small)], check=False, timeout=30)


def test_rename_onto_a_bind_mount_is_ebusy(bind_dest: Path) -> None:
    other = bind_dest.with_name("other")
    other.write_bytes(b"x")
    with pytest.raises(OSError) as info:
        os.replace(other, bind_dest)
    assert info.value.errno == errno.EBUSY


def test_in_place_write_that_needs_the_temp_files_space(bind_dest: Path) -> None:
    # 40 KB new + 10 KB old fit in 64 KiB, but growing the file in place while the 40 KB
    # temp copy still exists does not: the temp copy must be gone before the in-place write.
    new = b"n" * 40_000
    try:
        install(bind_dest, new)
    except InstallError:
        assert bind_dest.read_bytes() == b"o" * 10_000
    assert bind_dest.read_bytes() == new
    assert sorted(p.name for p in bind_dest.parent.iterdir()) == ["dest.conf"]


def test_write_failing_half_way_restores_the_old_bytes(
    bind_dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.pwrite
    calls: list[int] = []

    def failing(fd: int, data: bytes, offset: int) -> int:
        calls.append(offset)
        if len(calls) == 1:  # the first new chunk: write half of it, then fail
            real(fd, data[: len(data) // 2], offset)
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, data, offset)

    monkeypatch.setattr(install_mod.os, "pwrite", failing)
    with pytest.raises(InstallError, match=r"cannot write in place: Input/output error"):
        install(bind_dest, b"n" * 20_000)
    assert bind_dest.read_bytes() == b"o" * 10_000
