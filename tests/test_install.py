"""Atomic install: changed/unchanged, mode and owner, backup, EBUSY, no partial files."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from ctmpl import install as install_mod
from ctmpl.errors import InstallError
from ctmpl.install import InstallOptions, Unread, backup, install, read_small


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_new_file_default_mode(tmp_path: Path) -> None:
    dest = tmp_path / "a.conf"
    assert install(dest, b"one\n") is True
    assert dest.read_bytes() == b"one\n"
    assert mode(dest) == 0o644
    assert leftovers(tmp_path) == []


def test_unchanged_writes_nothing_and_keeps_mtime(tmp_path: Path) -> None:
    dest = tmp_path / "a.conf"
    dest.write_bytes(b"same\n")
    os.utime(dest, ns=(1_000_000_000, 1_000_000_000))
    inode = dest.stat().st_ino
    assert install(dest, b"same\n", InstallOptions(backup=True)) is False
    assert dest.stat().st_mtime_ns == 1_000_000_000
    assert dest.stat().st_ino == inode
    assert not (tmp_path / "a.conf.bak").exists()


def test_changed_replaces_atomically(tmp_path: Path) -> None:
    dest = tmp_path / "a.conf"
    dest.write_bytes(b"old\n")
    inode = dest.stat().st_ino
    assert install(dest, b"new\n") is True
    assert dest.read_bytes() == b"new\n"
    assert dest.stat().st_ino != inode  # renamed over, not rewritten
    assert leftovers(tmp_path) == []


def test_perms(tmp_path: Path) -> None:
    dest = tmp_path / "a.conf"
    install(dest, b"x", InstallOptions(perms=0o600))
    assert mode(dest) == 0o600
    install(dest, b"y", InstallOptions(perms=0o640))
    assert mode(dest) == 0o640


def test_keeps_old_mode(tmp_path: Path) -> None:
    dest = tmp_path / "a.conf"
    dest.write_bytes(b"old")
    dest.chmod(0o604)
    install(dest, b"new")
    assert mode(dest) == 0o604


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_keeps_old_owner(tmp_path: Path) -> None:
    dest = tmp_path / "a.conf"
    dest.write_bytes(b"old")
    os.chown(dest, 4321, 4322)
    install(dest, b"new")
    st = dest.stat()
    assert (st.st_uid, st.st_gid) == (4321, 4322)
    assert dest.read_bytes() == b"new"
    install(dest, b"newer", InstallOptions(backup=True))
    bak = (tmp_path / "a.conf.bak").stat()
    assert (bak.st_uid, bak.st_gid) == (4321, 4322), "the backup keeps the owner too"


def test_backup(tmp_path: Path) -> None:
    dest = tmp_path / "a.conf"
    install(dest, b"first\n", InstallOptions(backup=True))
    assert not (tmp_path / "a.conf.bak").exists()  # nothing to back up yet
    dest.chmod(0o640)
    install(dest, b"second\n", InstallOptions(backup=True))
    bak = tmp_path / "a.conf.bak"
    assert bak.read_bytes() == b"first\n"
    assert mode(bak) == 0o640
    assert dest.read_bytes() == b"second\n"
    assert backup(dest) == bak
    assert bak.read_bytes() == b"second\n"


def test_creates_missing_parent_dirs(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "c.conf"
    install(dest, b"x")
    assert dest.read_bytes() == b"x"


def test_no_parent_creation_when_disabled(tmp_path: Path) -> None:
    dest = tmp_path / "missing" / "c.conf"
    with pytest.raises(InstallError, match=rf"^install {dest}: cannot write in"):
        install(dest, b"x", InstallOptions(create_dirs=False))


def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    dest = tmp_path / "file" / "sub" / "c.conf"
    with pytest.raises(InstallError, match="cannot create"):
        install(dest, b"x")


def test_ebusy_falls_back_to_writing_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "bind.conf"
    dest.write_bytes(b"a much longer old content\n")
    inode = dest.stat().st_ino

    def busy(src: object, dst: object) -> None:
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(install_mod.os, "replace", busy)
    assert install(dest, b"short\n") is True
    assert dest.read_bytes() == b"short\n"
    assert dest.stat().st_ino == inode
    assert leftovers(tmp_path) == []


def test_other_rename_errors_fail_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "a.conf"
    dest.write_bytes(b"old\n")

    def denied(src: object, dst: object) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(install_mod.os, "replace", denied)
    with pytest.raises(InstallError, match=r"cannot replace: Permission denied"):
        install(dest, b"new\n")
    assert dest.read_bytes() == b"old\n"
    assert leftovers(tmp_path) == []


def test_failed_write_leaves_old_bytes_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "a.conf"
    dest.write_bytes(b"old\n")
    real_fsync = os.fsync
    calls = []

    def failing_fsync(fd: int) -> None:
        calls.append(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(install_mod.os, "fsync", failing_fsync)
    with pytest.raises(InstallError, match=r"cannot write: No space left on device"):
        install(dest, b"new content that is half written\n")
    monkeypatch.setattr(install_mod.os, "fsync", real_fsync)
    assert calls
    assert dest.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.conf"]


def test_live_bytes_given_are_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "a.conf"
    dest.write_bytes(b"old\n")
    monkeypatch.setattr(install_mod, "read_current", lambda path: pytest.fail("read again"))
    assert install(dest, b"old\n", current=b"old\n") is False
    assert install(dest, b"new\n", current=b"old\n") is True
    assert dest.read_bytes() == b"new\n"


def test_in_place_write_failing_half_way_puts_the_given_live_bytes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "bind.conf"
    dest.write_bytes(b"old content\n")

    def busy(src: object, dst: object) -> None:
        raise OSError(errno.EBUSY, "Device or resource busy")

    real_pwrite, writes = os.pwrite, []

    def failing_pwrite(fd: int, data: bytes, offset: int) -> int:
        writes.append(bytes(data))
        if len(writes) == 1:
            real_pwrite(fd, data[:3], offset)
            raise OSError(errno.EIO, "Input/output error")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(install_mod.os, "replace", busy)
    monkeypatch.setattr(install_mod.os, "pwrite", failing_pwrite)
    with pytest.raises(InstallError, match="the old content stays"):
        install(dest, b"new content!\n", current=b"old content\n")
    assert dest.read_bytes() == b"old content\n"
    assert leftovers(tmp_path) == []


def test_read_small_reads_regular_files_at_once_and_leaves_the_rest_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "a.conf"
    assert read_small(dest) is None
    dest.write_bytes(b"live\n")
    assert read_small(dest) == b"live\n"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert isinstance(read_small(fifo), Unread)  # not opened for a writer to come
    assert isinstance(read_small(tmp_path), Unread)
    monkeypatch.setattr(install_mod, "_READ_AT_ONCE", 4)
    assert isinstance(read_small(dest), Unread)
