"""Check before install: validate rendered config before it goes live.

``staged`` (default): the content is written to a staged file beside the destination and
the check command runs against it (``{{staged}}`` in the command names that file); the
live file is untouched unless the check passes.

``installed``: for an include snippet that can only be judged inside the whole config, the
file is installed with a backup, checked, and rolled back if the check fails.

File work (staging, installing, rolling back) runs in a worker thread, never on the event
loop: a slow disk must not stall the watches and signal handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shlex
import tempfile
from pathlib import Path

from ctmpl.errors import CheckFailed, InstallError
from ctmpl.install import InstallOptions, backup_path, install, read_current, undo_backup
from ctmpl.shell import TimedOut, run_shell

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"\{\{\s*staged\s*\}\}|\{staged\}")
MAX_OUTPUT = 4096


def expand(command: str, path: Path) -> str:
    """The check command with ``{{staged}}`` replaced by the shell-quoted path."""
    return _PLACEHOLDER.sub(lambda _: shlex.quote(str(path)), command)


async def run_check(command: str, path: Path, timeout: float = 60.0) -> None:
    """Run the check against ``path``; CheckFailed carries the checker's output."""
    text = expand(command, path)
    try:
        result = await run_shell(text, timeout)
    except TimedOut:
        raise CheckFailed(f"check {text!r}: timed out after {timeout:g}s") from None
    if result.returncode != 0:
        detail = result.output[:MAX_OUTPUT].strip().replace("\n", " | ")
        raise CheckFailed(f"check {text!r} failed (status {result.returncode}): {detail}")
    log.info("checked %s: %s passed", path, text)


async def check_staged(
    command: str, dest: Path, content: bytes, create_dirs: bool = True
) -> None:
    """Write ``content`` to a staged file beside ``dest`` and check it; always clean up.

    The staged file's name starts with a dot, so include globs (``conf.d/*``) skip it.
    With ``create_dirs`` false a missing directory is an error, as the install would be.
    """
    staged = await asyncio.to_thread(_stage, dest, content, create_dirs)
    try:
        await run_check(command, staged)
    finally:
        await asyncio.to_thread(_remove, staged)


def _stage(dest: Path, content: bytes, create_dirs: bool) -> Path:
    """Write ``content`` to a new dot-file beside ``dest``; InstallError when it cannot."""
    try:
        if create_dirs:
            dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f".{dest.stem}.staged.", suffix=dest.suffix, dir=dest.parent
        )
    except OSError as exc:
        raise InstallError(
            f"install {dest}: cannot stage in {dest.parent}: {exc.strerror}"
        ) from None
    staged = Path(name)
    try:
        with open(fd, "wb") as handle:
            handle.write(content)
    except BaseException:
        _remove(staged)
        raise
    return staged


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


async def install_checked(
    command: str, dest: Path, content: bytes, options: InstallOptions
) -> bool:
    """Install, check the live file, and roll back to the previous bytes when it fails."""
    previous = await asyncio.to_thread(read_current, dest)
    bak = await asyncio.to_thread(read_current, backup_path(dest)) if options.backup else None
    if not await asyncio.to_thread(install, dest, content, options):
        return False
    try:
        await run_check(command, dest)
    except CheckFailed:
        await asyncio.to_thread(rollback, dest, previous)
        if options.backup:
            await asyncio.to_thread(undo_backup, dest, bak)
        raise
    return True


def rollback(dest: Path, previous: bytes | None) -> None:
    """Restore the previous bytes, or remove a file that did not exist before."""
    if previous is None:
        dest.unlink(missing_ok=True)
    else:
        install(dest, previous, InstallOptions(perms=-1))
    log.warning("rolled back %s to the last good version", dest)
