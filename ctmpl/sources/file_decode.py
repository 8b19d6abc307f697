"""Decode a catalog file (YAML or JSON) within fixed limits, so hostile input stays cheap.

A catalog file is written by other tools and people: it is untrusted input. Three limits
bound the time and memory one file can cost (issue 17: a 690-byte YAML "billion laughs"
used 4 GB, a 50 MB file 75 s):

- ``MAX_BYTES``: larger files are refused before they are read;
- ``MAX_VALUES``: every value counts, and an alias counts as a full copy of what it names,
  so an alias bomb is refused as soon as its expansion passes the limit;
- ``MAX_DEPTH``: nesting deeper than any catalog needs is refused.

YAML is read as a stream of parser events and built directly into Python values (no node
graph with positions, about a tenth of PyYAML's memory); scalars resolve as PyYAML's safe
loader resolves them, except timestamps and other tagged scalars, which stay text.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from ctmpl.errors import SourceError

MAX_BYTES = 8 * 1024 * 1024
MAX_VALUES = 1_000_000
MAX_DEPTH = 32

# libyaml's C parser is ~20x faster than the pure-Python one on large catalogs.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = Resolver()
_CONSTRUCTOR = SafeConstructor()
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float")
)
_IMPLICIT_FIRST = frozenset(c for c in Resolver.yaml_implicit_resolvers if c is not None)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MERGE = object()  # the `<<` key of a YAML merge


def read_text(path: Path) -> str:
    """The file's text; SourceError when it is unreadable, too large or not UTF-8."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            raw = handle.read(MAX_BYTES + 1) if size <= MAX_BYTES else b""
    except OSError as exc:
        raise SourceError(f"catalog {path}: cannot read: {exc.strerror or exc}") from None
    if size > MAX_BYTES or len(raw) > MAX_BYTES:
        raise SourceError(
            f"catalog {path}: larger than the {MAX_BYTES // (1024 * 1024)} MiB limit for "
            "catalog files"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError(f"catalog {path}: not UTF-8 text") from None


def decode(path: Path, text: str) -> Any:
    """Parse ``text`` as JSON (``.json``) or YAML; SourceError naming file:line:column."""
    if path.suffix == ".json":
        return _json(path, text)
    try:
        return _Builder(path).build(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise SourceError(f"catalog {where}: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise SourceError(f"catalog {path}: {exc}") from None


def _json(path: Path, text: str) -> Any:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"catalog {path}:{exc.lineno}:{exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise SourceError(f"catalog {path}: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # e.g. an integer longer than Python's digit limit
        raise SourceError(f"catalog {path}: {str(exc).split(';')[0]}") from None
    if _depth(data) > MAX_DEPTH:
        raise SourceError(f"catalog {path}: nested deeper than {MAX_DEPTH} levels")
    return data


def _depth(data: Any) -> int:
    """Nesting depth of lists and dicts, without recursion."""
    deepest, todo = 0, [(data, 1)]
    while todo:
        value, level = todo.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        if isinstance(value, dict):
            todo.extend((v, level + 1) for v in value.values())
        elif isinstance(value, list):
            todo.extend((v, level + 1) for v in value)
    return deepest


@dataclass
class _Open:
    """A sequence or mapping whose end event has not come yet."""

    anchor: str | None
    mark: Any
    items: list[Any] = field(default_factory=list)
    pairs: list[tuple[Any, Any]] | None = None  # a mapping's (key, value) pairs
    key: Any = None
    has_key: bool = False
    size: int = 1


class _Builder:
    """Python values from YAML parser events, counting every value an alias repeats."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._anchors: dict[str, tuple[Any, int]] = {}
        self._open_anchors: set[str] = set()
        self._stack: list[_Open] = []
        self._count = 0
        self._documents = 0
        self._root: Any = None

    def build(self, text: str) -> Any:
        for event in yaml.parse(text, Loader=_LOADER):
            self._event(event)
        return self._root

    def _fail(self, mark: Any, problem: str) -> SourceError:
        where = f"{self._path}:{mark.line + 1}:{mark.column + 1}" if mark else str(self._path)
        return SourceError(f"catalog {where}: {problem}")

    def _event(self, event: yaml.Event) -> None:
        mark = getattr(event, "start_mark", None)
        if isinstance(event, yaml.DocumentStartEvent):
            self._documents += 1
            if self._documents > 1:
                raise self._fail(mark, "expected one YAML document, found several")
        elif isinstance(event, yaml.ScalarEvent):
            self._add(self._scalar(event), 1, event.anchor, mark)
        elif isinstance(event, yaml.AliasEvent):
            self._alias(event, mark)
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            self._start(event, mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            done = self._stack.pop()
            if done.anchor is not None:
                self._open_anchors.discard(done.anchor)
            value = done.items if done.pairs is None else self._mapping(done)
            self._place(value, done.size, done.anchor, mark)

    def _start(self, event: yaml.CollectionStartEvent, mark: Any) -> None:
        if len(self._stack) >= MAX_DEPTH:
            raise self._fail(mark, f"nested deeper than {MAX_DEPTH} levels")
        self._counted(1, mark)
        is_map = isinstance(event, yaml.MappingStartEvent)
        self._stack.append(_Open(event.anchor, mark, pairs=[] if is_map else None))
        if event.anchor is not None:
            self._open_anchors.add(event.anchor)

    def _scalar(self, event: yaml.ScalarEvent) -> Any:
        tag, value = event.tag, event.value
        if tag is None or tag == "!":
            if not event.implicit[0] or (value and value[0] not in _IMPLICIT_FIRST):
                return value  # quoted, or plain text no implicit type starts with
            tag = _RESOLVER.resolve(  # type: ignore[no-untyped-call]
                yaml.ScalarNode, value, event.implicit
            )
        if tag == _MERGE_TAG:
            return _MERGE
        if tag not in _PLAIN_TAGS:
            return value  # strings; timestamps and other tagged scalars stay text
        try:
            if value.isdigit() and (value[0] != "0" or len(value) == 1):
                return int(value)  # the common case, without the constructor's detours
            return _CONSTRUCTOR.construct_object(yaml.ScalarNode(tag, value))
        except (ValueError, yaml.YAMLError) as exc:
            kind = tag.rsplit(":", 1)[-1]
            reason = str(exc).split(";")[0]
            raise self._fail(event.start_mark, f"bad {kind} {value[:40]!r}: {reason}") from None

    def _alias(self, event: yaml.AliasEvent, mark: Any) -> None:
        name = event.anchor
        if name in self._open_anchors:
            raise self._fail(mark, f"alias *{name} refers to a value that contains it")
        if name not in self._anchors:
            raise self._fail(mark, f"unknown alias *{name}")
        value, size = self._anchors[name]
        self._counted(size, mark)
        self._place(value, size, None, mark)

    def _add(self, value: Any, size: int, anchor: str | None, mark: Any) -> None:
        self._counted(size, mark)
        self._place(value, size, anchor, mark)

    def _counted(self, size: int, mark: Any) -> None:
        self._count += size
        if self._count > MAX_VALUES:
            raise self._fail(
                mark, f"more than {MAX_VALUES} values (counting each alias as a full copy)"
            )

    def _place(self, value: Any, size: int, anchor: str | None, mark: Any) -> None:
        if anchor is not None:
            self._anchors[anchor] = (value, size)
        if not self._stack:
            self._root = value
            return
        parent = self._stack[-1]
        parent.size += size
        if parent.pairs is None:
            parent.items.append(value)
        elif not parent.has_key:
            if isinstance(value, list | dict):
                raise self._fail(mark, "a mapping key must be a scalar")
            parent.key, parent.has_key = value, True
        else:
            parent.pairs.append((parent.key, value))
            parent.key, parent.has_key = None, False

    def _mapping(self, done: _Open) -> dict[Any, Any]:
        merged: dict[Any, Any] = {}
        explicit: dict[Any, Any] = {}
        for key, value in done.pairs or ():
            if key is not _MERGE:
                explicit[key] = value
                continue
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(s, dict) for s in sources):
                raise self._fail(done.mark, "a merge key (<<) needs a mapping or list of mappings")
            for source in reversed(sources):
                merged.update(source)
        return {**merged, **explicit}
