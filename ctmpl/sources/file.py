"""The file catalog: services, nodes and KV from a YAML or JSON file, watched with watchdog.

The index is a generation counter bumped on every successful reload. A malformed file
at start is an error (exit code 5); a malformed edit later is logged and the last good
data stays, so a typo never empties a rendered config.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ctmpl import tasks
from ctmpl.change_signal import ANY, ChangeSignal, wait_changed
from ctmpl.config.model import CatalogConfig
from ctmpl.errors import SourceError
from ctmpl.model import KVPair
from ctmpl.offloop import in_daemon_thread
from ctmpl.sources.base import (
    UNPINNED,
    Pin,
    Query,
    ServiceSpec,
    filter_instances,
    relative_pairs,
)
from ctmpl.sources.file_parse import Snapshot, read_catalog

log = logging.getLogger(__name__)

# watchdog logs this at ERROR when its inotify thread is stopped while a read is in flight,
# i.e. on every clean shutdown; it is not an error for ctmpl.
logging.getLogger("watchdog.observers.inotify").addFilter(
    lambda record: "called when the thread is inactive" not in record.getMessage()
)

# Events after which the file's content is whole: the close of a write (not each write: a
# save in place truncates first, so a read then sees an empty or half-written file), a
# rename onto it, its creation (a rename from another directory) and its removal.
_WRITE_EVENTS = frozenset({"created", "moved", "closed", "deleted"})


class _Handler(FileSystemEventHandler):
    def __init__(self, catalog: FileCatalog) -> None:
        self._catalog = catalog

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _WRITE_EVENTS:
            return  # our own reads raise opened/closed_no_write events: never react to them
        paths = {str(event.src_path), str(getattr(event, "dest_path", "") or "")}
        if str(self._catalog.path) in paths:
            self._catalog.notify_threadsafe()


class _FileQuery:
    def __init__(self, catalog: FileCatalog, key: str, derive: Any,
                 service: str | None = None) -> None:
        self.key = key
        self.catalog = catalog
        self._derive = derive
        self.service = service  # the one service it reads (None: it reads more)

    async def fetch(self, index: int) -> tuple[object, int]:
        _, generation = await self.catalog.wait_past(index, self.service)
        return self.catalog.view(self), generation

    def read(self, snapshot: Snapshot) -> object:
        """This query's data in ``snapshot``."""
        return self._derive(snapshot)


class FileCatalog:
    """A catalog read from one file and re-read whenever the file changes."""

    name = "file"

    def __init__(self, config: CatalogConfig) -> None:
        self.path = Path(config.file_path).absolute()
        self._wait = config.block_query_wait
        self._snapshot = read_catalog(self.path)
        self._generation = 1
        # Each query's data in the current snapshot, derived once per version of the file;
        # data equal to the previous version's is that same object, so an unchanged service
        # is the same object from render to render (and reused blocks stay reusable).
        self._views: dict[str, object] = {}
        self._old_views: dict[str, object] = {}
        # Per service: the generation its registrations last changed in (an edit wakes only
        # the changed services' watches, through the change signal).
        self._service_changed: dict[str, int] = {}
        self._carried: frozenset[str] = frozenset()  # services unchanged by the last edit
        self._last_error = ""
        self._changes = ChangeSignal()  # touched by every successful reload
        self._loop: asyncio.AbstractEventLoop | None = None
        self._observer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def start(self) -> None:
        """Start watching the file (daemon mode); must run inside the event loop."""
        if self._observer is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._observer = Observer()
        self._observer.schedule(_Handler(self), str(self.path.parent), recursive=False)
        self._observer.daemon = True
        self._observer.start()

    def notify_threadsafe(self) -> None:
        """Called from the watchdog thread: re-read the file, off the event loop."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._schedule)

    def _schedule(self) -> None:
        """One parse at a time; edits during a parse cause one more parse after it."""
        self._again = True
        if self._task is None or self._task.done():
            self._task = tasks.spawn(self._reread(), name=f"read {self.path}")

    async def _reread(self) -> None:
        while self._again:
            self._again = False
            try:
                # Parsing a large file takes a while: keep the loop (and signals) responsive.
                snapshot = await in_daemon_thread(f"read {self.path}", self._read)
            except SourceError as exc:
                self._rejected(exc)
            else:
                self._apply(snapshot)

    def _read(self) -> Snapshot:
        return read_catalog(self.path)

    async def reload(self) -> bool:
        """Re-read the file now (off the event loop); keep the last good data when the new
        version is malformed."""
        try:
            snapshot = await in_daemon_thread(f"read {self.path}", self._read)
        except SourceError as exc:
            self._rejected(exc)
            return False
        return self._apply(snapshot)

    def _rejected(self, exc: SourceError) -> None:
        if str(exc) != self._last_error:  # one edit raises several events: log once
            self._last_error = str(exc)
            log.error("%s; keeping the last good catalog", exc)

    def _apply(self, snapshot: Snapshot) -> bool:
        self._last_error = ""
        if snapshot == self._snapshot:
            return False
        changed = self._carry_over(snapshot)
        self._snapshot = snapshot
        self._old_views, self._views = self._views, {}
        self._generation += 1
        log.debug("catalog %s: reloaded (generation %d, %d service(s) changed)", self.path,
                  self._generation, len(changed))
        for name in changed:
            self._service_changed[name] = self._generation
        self._changes.touch(changed)  # wakes the changed services' queries and ANY's
        return True

    def _carry_over(self, snapshot: Snapshot) -> set[str]:
        """Keep the previous version's registrations of every unchanged service (the very
        same objects: their queries' data is then known unchanged without deriving it);
        return the names of the services that changed."""
        old, new = self._snapshot.by_name, snapshot.by_name
        changed = set(old.keys() - new.keys())
        summaries = self._snapshot.summaries
        for name, group in new.items():
            if old.get(name) == group:
                new[name] = old[name]
                if name in summaries:
                    snapshot.summaries[name] = summaries[name]
            else:
                changed.add(name)
        self._carried = frozenset(new.keys() - changed)
        return changed

    async def wait_past(self, index: int, service: str | None = None) -> tuple[Snapshot, int]:
        """The snapshot once its generation passes ``index`` (or the block wait ends); only
        a watched file (daemon mode) can change, so ``-once`` never waits.

        With ``service``: once that service's registrations change past ``index``.
        """
        if index and self._loop is not None and index >= self._changed_at(service):
            await wait_changed(self._changes.changed(ANY if service is None else service),
                               self._wait)
        return self._snapshot, self._generation

    def _changed_at(self, service: str | None) -> int:
        if service is None:
            return self._generation
        return self._service_changed.get(service, 0)

    def view(self, query: _FileQuery) -> object:
        """``query``'s data in the current version of the file."""
        value = self._views.get(query.key, UNPINNED)
        if value is UNPINNED:
            old = self._old_views.get(query.key, UNPINNED)
            if old is not UNPINNED and query.service in self._carried:
                value = old  # derived from the very same registrations
            else:
                value = query.read(self._snapshot)
                if old is not UNPINNED and old == value:
                    value = old
            self._views[query.key] = value
        return value

    def pin(self) -> Pin:
        """Answer this catalog's queries from the current version only (one per render)."""
        snapshot, views = self._snapshot, self._views  # views is replaced on a change

        def read(query: Query) -> object:
            if not isinstance(query, _FileQuery) or query.catalog is not self:
                return UNPINNED
            value = views.get(query.key, UNPINNED)
            if value is not UNPINNED:
                return value
            # A newer version arrived since pin(): derive from the pinned one.
            return self.view(query) if views is self._views else query.read(snapshot)

        return read

    def services(self) -> Query:
        """Every service with the union of its tags."""
        return _FileQuery(self, "file.services", lambda s: s.services())

    def service(self, spec: ServiceSpec) -> Query:
        """Instances of one service matching the spec's tag and status filters."""
        return _FileQuery(
            self,
            f"file.service({spec.key})",
            lambda s: filter_instances(spec, s.by_name.get(spec.name, ())),
            spec.name,
        )

    def nodes(self) -> Query:
        """Every node listed in the file."""
        return _FileQuery(self, "file.nodes", lambda s: s.nodes)

    def key(self, path: str) -> Query:
        """One KV key, or None when absent."""

        def derive(s: Snapshot) -> KVPair | None:
            value = (s.kv or {}).get(path)
            return None if value is None else KVPair(Key=path, Path=path, Value=value)

        return _FileQuery(self, f"file.key({path})", derive)

    def tree(self, prefix: str) -> Query:
        """Every key below ``prefix``."""
        return _FileQuery(
            self, f"file.tree({prefix})", lambda s: relative_pairs(prefix, (s.kv or {}).items())
        )

    async def aclose(self) -> None:
        """Stop the file watcher (a parse in flight is abandoned)."""
        if self._task is not None:
            self._task.cancel()
        if self._observer is not None:
            observer, self._observer = self._observer, None
            observer.stop()
            await asyncio.to_thread(observer.join, 5)
