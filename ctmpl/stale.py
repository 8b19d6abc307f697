"""Remove ctmpl's own temp files that a killed run left beside its destinations.

Installs write ``.<name>.<8 random>.tmp`` (``ctmpl.install``) and checks stage
``.<stem>.staged.<8 random><suffix>`` (``ctmpl.check``) in the destination's directory,
then rename or delete them. A SIGKILL between the two leaves one behind, and nothing else
would ever remove it; in a directory nginx includes with a glob it may even be loaded. At
startup, before any render, only files matching exactly those patterns for a configured
destination, in that destination's directory, are removed.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

_RANDOM = r"[a-z0-9_]{8}"  # tempfile.mkstemp's random part


def temp_patterns(dest: Path) -> list[re.Pattern[str]]:
    """The names ctmpl gives its temp files for ``dest`` (install, backup, staged check)."""
    name, stem, suffix = (re.escape(p) for p in (dest.name, dest.stem, dest.suffix))
    return [
        re.compile(rf"\.{name}\.{_RANDOM}\.tmp"),
        re.compile(rf"\.{name}\.bak\.{_RANDOM}\.tmp"),
        re.compile(rf"\.{stem}\.staged\.{_RANDOM}{suffix}"),
    ]


def stale_temp_files(dest: Path) -> list[Path]:
    """Regular files beside ``dest`` whose names match one of ctmpl's temp patterns."""
    patterns = temp_patterns(dest)
    try:
        names = os.listdir(dest.parent)
    except OSError:
        return []
    found = []
    for entry in sorted(names):
        if not any(p.fullmatch(entry) for p in patterns):
            continue
        path = dest.parent / entry
        try:
            if stat.S_ISREG(os.lstat(path).st_mode):
                found.append(path)
        except OSError:
            continue
    return found


def remove_stale_temp_files(destinations: Iterable[Path]) -> int:
    """Delete the stale temp files of every destination; return how many were removed."""
    removed = 0
    for path in {p for dest in destinations for p in stale_temp_files(dest)}:
        try:
            path.unlink()
        except OSError as exc:
            log.warning("cannot remove stale temp file %s: %s", path, exc.strerror)
            continue
        log.info("removed stale temp file %s (left by an interrupted run)", path)
        removed += 1
    return removed
