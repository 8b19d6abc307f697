"""Data functions for templates; calling one records the query it depends on.

If the brain has no data for a query yet, the function returns an empty value and the
render is marked incomplete (an incomplete render is never written). ``key`` of an absent
key and ``safeLs``/``safeTree`` of an empty prefix also keep the render incomplete, as in
consul-template, so an emptied prefix never wipes a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctmpl.brain import Brain
from ctmpl.errors import TemplateError
from ctmpl.model import KVPair
from ctmpl.sources.base import (
    UNPINNED,
    Catalog,
    Query,
    kv_path,
    parse_service,
    pin_of,
    service_by_name,
)


@dataclass
class Dependencies:
    """What one render used, and which of those had no usable data."""

    queries: dict[str, Query] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    instances: int = 0  # how many instances service() returned (the shrink guard counts)
    uses_instances: bool = False  # service() was called at all

    @property
    def complete(self) -> bool:
        """True when every query the render used had data."""
        return not self.missing


ABSENT = object()  # what peek() answers for a query without data


@dataclass(frozen=True)
class Use:
    """One data function call: the query, the value it saw (ABSENT: none) and how to replay it."""

    query: Query
    value: object
    empty: Any
    counted: bool  # a service() call: its instances count for the shrink guard


@dataclass(frozen=True)
class Calls:
    """The calls one block made, ready to be checked and recorded again in a later render."""

    uses: tuple[Use, ...]
    keys: frozenset[str]  # their queries' keys
    queries: dict[str, Query]  # by key (not changed after it is built)
    instances: int  # what the counted calls returned, in all
    counted: bool  # one of them was a service() call


@dataclass
class Recording:
    """The calls made while a reusable block rendered (see ``ctmpl.template.reuse``)."""

    uses: list[Use] = field(default_factory=list)
    volatile: bool = False  # it read something not tracked as a query (env): never reuse

    def calls(self) -> Calls | None:
        """What was recorded, to replay later; None when it must not be reused (it read
        something untracked, or a query without data)."""
        if self.volatile or any(u.value is ABSENT for u in self.uses):
            return None
        uses = tuple(self.uses)
        queries = {u.query.key: u.query for u in uses}
        instances = 0
        for use in uses:
            if use.counted:
                instances += len(use.value)  # type: ignore[arg-type]
        return Calls(uses, frozenset(queries), queries, instances,
                     any(u.counted for u in uses))


class QueryMemo:
    """Query objects by the call that built them, kept across renders of one catalog.

    Building a query parses and validates its arguments; a re-render over thousands of
    services asks the same questions again, so it looks them up instead.
    """

    def __init__(self) -> None:
        self._catalog: object = None
        self._queries: dict[Hashable, Query] = {}

    def get(self, catalog: object, call: Hashable, build: Callable[[], Query]) -> Query:
        """The query for ``call`` (a tuple naming the function and its arguments)."""
        query = self.queries(catalog).get(call)
        if query is None:
            query = self._queries[call] = build()
        return query

    def queries(self, catalog: object) -> dict[Hashable, Query]:
        """The queries built so far for ``catalog`` (a new catalog starts afresh)."""
        if catalog is not self._catalog or len(self._queries) > 100_000:
            self._catalog, self._queries = catalog, {}
        return self._queries


class DataFunctions:
    """The catalog-backed functions one render sees."""

    def __init__(self, catalog: Catalog, brain: Brain, sandbox: str = "",
                 memo: QueryMemo | None = None) -> None:
        self._catalog = catalog
        self._brain = brain
        self._sandbox = Path(sandbox).resolve() if sandbox else None
        self.deps = Dependencies()
        self._pin = pin_of(catalog)  # one version of the source for the whole render
        self._memo = memo or QueryMemo()
        self._queries = self._memo.queries(catalog)
        self.recordings: list[Recording] = []  # reusable blocks rendering now, innermost last

    @property
    def catalog(self) -> Catalog:
        """The catalog the functions read."""
        return self._catalog

    def query(self, call: Hashable, build: Callable[[], Query]) -> Query:
        """The query built by ``build`` for ``call``, reused across renders (see QueryMemo)."""
        return self._memo.get(self._catalog, call, build)

    def use(self, query: Query, empty: Any) -> Any:
        """Record ``query``; its data, or ``empty`` (and a missing mark) until it arrives."""
        return self._data(query, empty)

    def use_instances(self, query: Query) -> Any:
        """Like :meth:`use` for a service query; counts the instances for the shrink guard."""
        return self._data(query, (), counted=True)

    def peek(self, query: Query) -> object:
        """The data ``query`` would give now, ABSENT when none; records nothing."""
        if self._pin is not None and (value := self._pin(query)) is not UNPINNED:
            return value
        return self._brain.get_or(query.key, ABSENT)

    def version(self) -> int:
        """The brain's version now (see ``changed_since``)."""
        return self._brain.version

    def changed_since(self, version: int | None) -> frozenset[str] | None:
        """The queries whose data changed after brain ``version``; None when unknown (no
        version, or a catalog that pins its own version per render: compare every value)."""
        if version is None or self._pin is not None:
            return None
        return self._brain.changed_since(version)

    def replay(self, *kept: Calls) -> None:
        """Record calls again whose results are known to be unchanged (reused blocks)."""
        deps, recordings = self.deps, self.recordings
        update = deps.queries.update
        instances, counted = 0, False
        for calls in kept:
            update(calls.queries)
            instances += calls.instances
            counted = counted or calls.counted
            for recording in recordings:
                recording.uses.extend(calls.uses)
        deps.instances += instances
        deps.uses_instances = deps.uses_instances or counted

    def volatile(self) -> None:
        """The blocks rendering now read something untracked: they must not be reused."""
        for recording in self.recordings:
            recording.volatile = True

    def _data(self, query: Query, empty: Any, counted: bool = False) -> Any:
        return self._record(query, self.peek(query), empty, counted)

    def _record(self, query: Query, value: object, empty: Any, counted: bool) -> Any:
        deps = self.deps
        deps.queries[query.key] = query
        for recording in self.recordings:
            recording.uses.append(Use(query, value, empty, counted))
        if value is ABSENT:
            deps.missing.add(query.key)
            value = empty
        if counted:
            deps.instances += len(value)  # type: ignore[arg-type]
            deps.uses_instances = True
        return value

    def services(self) -> Any:
        """``services()``: every service name with its tags."""
        return self._data(self.query(("services",), self._catalog.services), ())

    def service(self, name: str, status: str | None = None, tag: str | None = None) -> Any:
        """``service("[tag.]name[|status,…]")``: matching instances, healthy ones by default.

        ``service(name, tag="calico")`` takes ``name`` literally, so a service whose name
        contains a dot (which ``tag.name`` cannot express) can still be filtered by tag.
        """
        try:
            query = self._queries.get(("service", name, status, tag))
        except TypeError:  # an unhashable argument: the query's own check reports it
            query = None
        if query is None:
            query = self.query(("service", name, status, tag),
                               lambda: self._service(name, status, tag))
        return self._data(query, (), counted=True)

    def _service(self, name: str, status: str | None, tag: str | None) -> Query:
        if tag is not None:
            spec = service_by_name(name, tag, status)
        else:
            spec = parse_service(name, status)
        return self._catalog.service(spec)

    def nodes(self) -> Any:
        """``nodes()``: every node of the catalog."""
        return self._data(self.query(("nodes",), self._catalog.nodes), ())

    def key(self, path: str) -> str:
        """``key("path")``: the value; the render waits until the key exists."""
        query = self._catalog.key(kv_path("key", path))
        pair = self._data(query, None)
        if pair is None:
            self.deps.missing.add(query.key)
            return ""
        return str(pair.Value)

    def key_or_default(self, path: str, default: str = "") -> str:
        """``keyOrDefault("path", "default")``: the value, or the default when absent."""
        pair = self._data(self._catalog.key(kv_path("keyOrDefault", path)), None)
        return default if pair is None else str(pair.Value)

    def tree(self, prefix: str = "") -> Any:
        """``tree("prefix")``: every key below the prefix, sorted."""
        return self._data(self._catalog.tree(kv_path("tree", prefix, allow_empty=True)), ())

    def ls(self, prefix: str = "") -> tuple[KVPair, ...]:
        """``ls("prefix")``: the keys directly below the prefix (no folders)."""
        pairs = self._data(self._catalog.tree(kv_path("ls", prefix, allow_empty=True)), ())
        return tuple(p for p in pairs if "/" not in p.Key)

    def safe_tree(self, prefix: str = "") -> Any:
        """``safeTree``: like tree, but an empty result keeps the render from being written."""
        return self._refuse_empty(self.tree(prefix), "safeTree", prefix)

    def safe_ls(self, prefix: str = "") -> Any:
        """``safeLs``: like ls, but an empty result keeps the render from being written."""
        return self._refuse_empty(self.ls(prefix), "safeLs", prefix)

    def _refuse_empty(self, pairs: Any, func: str, prefix: str) -> Any:
        if not pairs:
            self.deps.missing.add(f"{func}({prefix})")
        return pairs

    def env(self, name: str, default: str = "") -> str:
        """``env("NAME")``: an environment variable of the ctmpl process."""
        self.volatile()  # not a watched query: a block that reads it is rendered every time
        return os.environ.get(name, default)

    def file(self, path: str) -> str:
        """``file("path")``: a local file's text, confined to ``sandbox_path`` when set."""
        target = Path(path).resolve()
        if self._sandbox is not None and not target.is_relative_to(self._sandbox):
            raise TemplateError(f"file({path!r}): outside the sandbox {self._sandbox}")
        # A watched dependency, as in consul-template: a change to the file re-renders.
        # Imported here: its file watcher (watchdog) is loaded only by templates using it.
        from ctmpl.template.file_watch import FileQuery

        content = self._data(FileQuery(Path(path).absolute()), None)
        if content is None:
            return ""
        if content.text is None:
            raise TemplateError(f"file({path!r}): cannot read: {content.error}")
        return str(content.text)

    def globals(self) -> dict[str, Any]:
        """The functions under consul-template's names."""
        return {
            "services": self.services,
            "service": self.service,
            "nodes": self.nodes,
            "key": self.key,
            "keyOrDefault": self.key_or_default,
            "ls": self.ls,
            "tree": self.tree,
            "safeLs": self.safe_ls,
            "safeTree": self.safe_tree,
            "env": self.env,
            "file": self.file,
        }
