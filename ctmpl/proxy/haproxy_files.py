"""HAProxy's config files as the controller reads them: the ``-f`` list, staged copies, state file.

``haproxy -f`` takes files and directories; a directory stands for its ``*.cfg`` files in
lexical order. Staged copies are written beside the file they replace under a name that
does not end in ``.cfg``, so no directory include ever loads one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from ctmpl.proxy.haproxy_plan import Section


def absolute(path: Path | str) -> Path:
    """``path`` made absolute without resolving symlinks (as the config names it)."""
    return Path(os.path.abspath(path))


def config_files(paths: Sequence[str]) -> list[Path]:
    """Every file HAProxy loads for these ``-f`` arguments, in load order."""
    found: list[Path] = []
    for path in paths:
        entry = absolute(path)
        if entry.is_dir():
            found += sorted(p for p in entry.iterdir() if p.name.endswith(".cfg") and p.is_file())
        else:
            found.append(entry)
    return found


def read_config(paths: Sequence[str]) -> str:
    """The config text HAProxy would load: every file, in order (unreadable ones empty)."""
    parts = []
    for path in config_files(paths):
        try:
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            parts.append("")
        parts.append("\n")
    return "".join(parts)


@contextlib.contextmanager
def staged_copies(contents: Mapping[Path, bytes]) -> Iterator[dict[Path, Path]]:
    """Write each content to a staged file beside its destination; remove them afterwards."""
    staged: dict[Path, Path] = {}
    try:
        for target, content in contents.items():
            dest = absolute(target)
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{dest.name}.staged.", dir=dest.parent)
            staged[dest] = Path(name)
            with open(fd, "wb") as handle:
                handle.write(content)
        yield staged
    finally:
        for path in staged.values():
            with contextlib.suppress(OSError):
                path.unlink()


def state_file(sections: Sequence[Section]) -> Path | None:
    """The global ``server-state-file`` (joined to ``server-state-base``) when one is set."""
    name = base = ""
    for section in sections:
        if section.kind != "global":
            continue
        for line in section.lines:
            words = line.split()
            if len(words) >= 2 and words[0] == "server-state-file":
                name = words[1]
            elif len(words) >= 2 and words[0] == "server-state-base":
                base = words[1]
    if not name:
        return None
    return Path(base, name) if base and not name.startswith("/") else Path(name)


def socket_dirs(sections: Sequence[Section]) -> list[Path]:
    """Directories of the global section's unix ``stats socket`` paths (HAProxy cannot
    create them; ``/run/haproxy`` is gone after a reboot when no unit recreates it)."""
    dirs = []
    for section in sections:
        if section.kind == "global":
            for line in section.lines:
                words = line.split()
                if words[:2] == ["stats", "socket"] and len(words) > 2 and words[2][:1] == "/":
                    dirs.append(Path(words[2]).parent)
    return dirs
