"""``file()`` as a watched dependency: a change to the file re-renders the template.

consul-template polls a ``file`` dependency every 2 s; ctmpl watches the file's directory
with inotify (watchdog) and re-reads on any event there — also a Kubernetes ConfigMap's
``..data`` symlink swap, which never touches the file's own name. The content is compared,
so only a real change bumps the index. One observer thread serves every watched file.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ctmpl.change_signal import ANY, ChangeSignal

BLOCK_WAIT = 60.0  # how long one fetch blocks without a change (as a blocking query)
_IGNORED = frozenset({"opened", "closed_no_write"})  # our own reads cause these

_lock = threading.Lock()
_observer: Any = None


@dataclass(frozen=True)
class FileText:
    """What ``file()`` read: the text, or why it could not (``text`` None)."""

    text: str | None
    error: str = ""


def _read(path: Path) -> FileText:
    try:
        return FileText(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return FileText(None, exc.strerror or str(exc))
    except UnicodeDecodeError:
        return FileText(None, "not UTF-8 text")


def _shared_observer() -> Any:
    global _observer
    with _lock:
        if _observer is None:
            _observer = Observer()
            _observer.daemon = True
            _observer.start()
        return _observer


class _Wake(FileSystemEventHandler):
    def __init__(self, loop: asyncio.AbstractEventLoop, changes: ChangeSignal) -> None:
        self._loop = loop
        self._changes = changes

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED or self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._changes.touch, ())


class FileQuery:
    """The watched content of one local file; the index counts content changes."""

    def __init__(self, path: Path, wait: float = BLOCK_WAIT) -> None:
        self._path = path
        self._wait = wait
        self._content: FileText | None = None
        self._generation = 0
        self._changes = ChangeSignal()  # touched by every event in the file's directory
        self._read_at = 0  # the signal's stamp when the file was last read
        self._watch: Any = None
        self._handler: _Wake | None = None

    @property
    def key(self) -> str:
        """``file(<absolute path>)``."""
        return f"file({self._path})"

    def _start(self) -> None:
        if self._handler is None:
            self._handler = _Wake(asyncio.get_running_loop(), self._changes)
            # An unwatchable directory (missing) still works: each fetch re-reads at
            # the end of its block wait, as a polling dependency would.
            with contextlib.suppress(OSError):
                self._watch = _shared_observer().schedule(
                    self._handler, str(self._path.parent)
                )

    async def fetch(self, index: int) -> tuple[object, int]:
        """(FileText, index); blocks while ``index`` is current until the file changes."""
        self._start()
        if index and index == self._generation:
            try:
                # Any event since the last read answers at once (the stamp moved).
                await self._changes.wait_past(ANY, self._read_at, self._wait)
            except asyncio.CancelledError:
                self.close()  # the watch was stopped: no template reads this file any more
                raise
        self._read_at = self._changes.stamp(ANY)
        content = await asyncio.to_thread(_read, self._path)
        if content != self._content or not self._generation:
            self._content = content
            self._generation += 1
        return content, self._generation

    def close(self) -> None:
        """Stop watching the directory."""
        if self._watch is not None and self._handler is not None:
            # Only this query's handler: other files of the directory share the watch.
            with contextlib.suppress(Exception):
                _shared_observer().remove_handler_for_watch(self._handler, self._watch)
            self._watch = None
