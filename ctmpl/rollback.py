"""Rollback copies handed to template commands, kept outside every include glob.

A command such as ``scripts/nginx.sh`` runs after ctmpl installed the pass's files. When
it finds the new config invalid it must put the previous files back, as the built-in nginx
controller does; it learns what to restore from ``CTMPL_ROLLBACK``: the path of a manifest
with one ``destination<TAB>copy`` line per installed file (``copy`` empty when the file did
not exist before). The manifest and copies live in a private (0700) directory under the
system temp dir — never beside the destination, where ``include conf.d/*;`` would load
them — and are removed once the commands have run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

ENV_NAME = "CTMPL_ROLLBACK"


@contextlib.contextmanager
def rollback_env(previous: Mapping[Path, bytes | None]) -> Iterator[dict[str, str] | None]:
    """The environment for commands, with ``CTMPL_ROLLBACK`` naming this pass's manifest.

    None (inherit the environment unchanged) when there is nothing to describe or the
    copies cannot be written; the commands still run.
    """
    usable = {p: b for p, b in previous.items() if "\t" not in str(p) and "\n" not in str(p)}
    if not usable:
        yield None
        return
    try:
        state = Path(tempfile.mkdtemp(prefix="ctmpl-rollback-"))
    except OSError as exc:
        log.warning("cannot keep rollback copies for commands: %s", exc.strerror)
        yield None
        return
    try:
        manifest = _write(state, usable)
        yield {**os.environ, ENV_NAME: str(manifest)}
    finally:
        shutil.rmtree(state, ignore_errors=True)


def _write(state: Path, previous: Mapping[Path, bytes | None]) -> Path:
    lines = []
    for number, (dest, content) in enumerate(sorted(previous.items())):
        copy = ""
        if content is not None:
            target = state / f"{number}-{dest.name}"
            target.write_bytes(content)
            copy = str(target)
        lines.append(f"{dest}\t{copy}\n")
    manifest = state / "manifest"
    manifest.write_text("".join(lines), encoding="utf-8")
    return manifest
