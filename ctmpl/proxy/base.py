"""What the pipeline needs from a proxy controller (nginx, HAProxy)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol


class ProxyController(Protocol):
    """Checks staged files, brings the proxy to the installed config, starts it if needed."""

    name: str

    def check_staged(self, changes: Mapping[Path, bytes]) -> None:
        """Validate rendered contents before any of them is installed (CheckFailed)."""

    def apply(self) -> str:
        """Check the installed config and reload, update or start the proxy; say how."""

    def reconcile(self, files: Iterable[Path]) -> str:
        """Make sure the proxy runs what ``files`` hold now: "started", "reloaded", "current"."""
