"""The file catalog re-reads its file when a write is complete, never in the middle of one.

``printf … > catalog.yaml`` or an editor saving in place truncates the file, then writes
it: inotify reports a modification after each step, and a read then sees an empty or a
half-written file (one that may still parse, with services missing). Only the close after
a write, a rename onto the file, its creation or its removal start a re-read.
"""

from __future__ import annotations

from pathlib import Path

from watchdog.events import (
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from ctmpl.sources.file import _Handler


class _Recorder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.calls = 0

    def notify_threadsafe(self) -> None:
        self.calls += 1


def _notified(event: FileSystemEvent, path: Path) -> bool:
    recorder = _Recorder(path)
    _Handler(recorder).on_any_event(event)  # type: ignore[arg-type]
    return recorder.calls == 1


def test_a_write_in_progress_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    assert not _notified(FileModifiedEvent(str(path)), path)
    assert not _notified(FileClosedNoWriteEvent(str(path)), path)


def test_a_finished_write_or_rename_is_read(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    assert _notified(FileClosedEvent(str(path)), path)
    assert _notified(FileMovedEvent(str(tmp_path / ".tmp"), str(path)), path)
    assert _notified(FileCreatedEvent(str(path)), path)
    assert not _notified(FileClosedEvent(str(tmp_path / "other.yaml")), path)
