"""Atomic install: temp file beside the destination, fsync, keep mode and owner, rename.

Writes only when the bytes change. Where rename cannot work because the destination is a
single-file bind mount (EBUSY), the file is rewritten in place: the temp copy is removed
first (its space is needed), the file's blocks are reserved before the first byte changes,
and a write failing half-way puts the old bytes back. A failure never leaves a partial
destination file behind.

Nothing else is written beside the destination unless the user asks for ``backup``: nginx
configs commonly say ``include conf.d/*;``, and a ``dest.bak`` there is loaded as config.
Rollback copies stay in memory (see ``ctmpl.check.rollback``).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ctmpl.errors import InstallError

log = logging.getLogger(__name__)

DEFAULT_PERMS = 0o644
_CHUNK = 1 << 16
_READ_AT_ONCE = 8 << 20  # a live file up to this size is read on the event loop's thread


class Unread:
    """The live bytes were not read yet (``install`` reads them)."""


UNREAD = Unread()


@dataclass(frozen=True)
class InstallOptions:
    """How to install: mode (-1 keeps the old one, else 0644), backup, parent creation."""

    perms: int = -1
    backup: bool = False
    create_dirs: bool = True


def read_current(path: Path) -> bytes | None:
    """The destination's bytes, or None when it does not exist or cannot be read."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def read_small(path: Path) -> bytes | Unread | None:
    """The destination's bytes when it is a regular file of at most 8 MiB (read at once on
    the caller's thread: a local file that size reads in well under a millisecond, less
    than handing the read to a thread and back costs); ``UNREAD`` when it is anything
    else (a FIFO, a device, a larger file: read it in a thread); None when it is missing."""
    try:  # O_NONBLOCK: opening a FIFO does not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return UNREAD
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode) or found.st_size > _READ_AT_ONCE:
            return UNREAD
        with open(fd, "rb", buffering=0, closefd=False) as handle:
            return handle.read()
    except OSError:
        return None
    finally:
        os.close(fd)


def install(path: Path, content: bytes, options: InstallOptions = InstallOptions(),
            current: bytes | Unread | None = UNREAD) -> bool:
    """Install ``content`` at ``path``; False (nothing written) when it is unchanged.

    ``current``: the live bytes when the caller has just read them (None: no file), so
    that they are not read again; they are compared with ``content`` and, should an
    in-place write fail half-way, written back."""
    if isinstance(current, Unread):
        current = read_current(path)
    if current == content:
        return False
    if options.create_dirs:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror
            raise InstallError(f"install {path}: cannot create {path.parent}: {reason}") from None
    old = _stat(path)
    mode = options.perms if options.perms >= 0 else (old.st_mode & 0o7777 if old else DEFAULT_PERMS)
    if options.backup and current is not None:
        backup(path)
    tmp = _write_temp(path, content, mode)
    try:
        if old is not None:
            _chown(tmp, old.st_uid, old.st_gid)
        _replace(tmp, path, content, current)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def backup_path(path: Path) -> Path:
    """Where ``backup`` keeps the previous bytes of ``path``: ``path.bak``."""
    return path.with_name(path.name + ".bak")


def backup(path: Path) -> Path:
    """Copy ``path`` to ``path.bak`` (mode and owner kept), atomically."""
    target = backup_path(path)
    old = path.stat()
    tmp = _write_temp(target, path.read_bytes(), old.st_mode & 0o7777)
    _chown(tmp, old.st_uid, old.st_gid)
    os.replace(tmp, target)
    return target


def undo_backup(path: Path, before: bytes | None) -> None:
    """Put ``path.bak`` back as it was before a pass whose check failed (None: remove it).

    A ``.bak`` left beside a rolled-back file is loaded by ``include conf.d/*;``.
    """
    if before is None:
        backup_path(path).unlink(missing_ok=True)
    else:
        install(backup_path(path), before, InstallOptions(perms=-1))


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _write_temp(path: Path, content: bytes, mode: int) -> Path:
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        reason = exc.strerror
        raise InstallError(f"install {path}: cannot write in {path.parent}: {reason}") from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InstallError(f"install {path}: cannot write: {exc.strerror}") from None
    return tmp


def _chown(path: Path, uid: int, gid: int) -> None:
    try:
        os.chown(path, uid, gid)
    except PermissionError:
        log.debug("install %s: cannot keep owner %d:%d (not permitted)", path, uid, gid)


def _replace(tmp: Path, path: Path, content: bytes, current: bytes | None) -> None:
    try:
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno not in (errno.EBUSY, errno.EXDEV):
            raise InstallError(f"install {path}: cannot replace: {exc.strerror}") from None
        # A single-file bind mount (Docker, Kubernetes subPath) cannot be renamed over:
        # rewrite it in place. The temp copy proved the bytes can be written; drop it so
        # its space is free for the in-place write on a nearly full filesystem.
        log.debug("install %s: rename failed (%s), writing in place", path, exc.strerror)
        tmp.unlink(missing_ok=True)
        write_in_place(path, content, current or b"")


def write_in_place(path: Path, content: bytes, current: bytes) -> None:
    """Overwrite ``path`` in place; on failure put ``current`` back (never a mix of both)."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        raise InstallError(f"install {path}: cannot write in place: {exc.strerror}") from None
    try:
        _reserve(fd, len(content))
        try:
            _overwrite(fd, content)
        except OSError as exc:
            _put_back(fd, path, current)
            raise InstallError(f"install {path}: cannot write in place: {exc.strerror}; "
                               "the old content stays") from None
    except OSError as exc:
        raise InstallError(f"install {path}: cannot write in place: {exc.strerror}") from None
    finally:
        os.close(fd)


def _reserve(fd: int, size: int) -> None:
    """Allocate the file's blocks up front so a full disk fails before any byte changes."""
    try:
        os.posix_fallocate(fd, 0, max(size, 1))
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


def _overwrite(fd: int, content: bytes) -> None:
    offset = 0
    view = memoryview(content)
    while offset < len(content):
        offset += os.pwrite(fd, view[offset:offset + _CHUNK], offset)
    os.ftruncate(fd, len(content))
    os.fsync(fd)


def _put_back(fd: int, path: Path, current: bytes) -> None:
    try:
        _overwrite(fd, current)
    except OSError as exc:
        log.error("install %s: cannot restore the old content either: %s", path, exc.strerror)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
