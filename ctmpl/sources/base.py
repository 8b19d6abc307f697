"""The one interface every catalog backend implements, and the query grammar they share.

A *query* turns one question ("healthy instances of web tagged calico", "keys under app/")
into typed data plus an index. ``fetch(index)`` is a blocking query: with ``index`` 0 it
answers at once; otherwise it may wait until the data changes past ``index`` (or a backend
timeout passes) and returns the current data with its new index. Retry, backoff and the
"unchanged index emits nothing" rules live once, in ``ctmpl.watch``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ctmpl.errors import QueryError
from ctmpl.model import STATUSES, Instance, KVPair, is_safe_name

_SERVICE = re.compile(
    r"^(?:(?P<tag>[\w\s.-]+)\.)?(?P<name>[\w-]+)(?:@(?P<dc>[\w.-]+))?(?:~(?P<near>[\w.-]+))?$"
)


@dataclass(frozen=True)
class ServiceSpec:
    """A parsed ``service()`` argument: ``[tag.]name[@dc][~near][|status,...]``."""

    name: str
    tag: str = ""
    dc: str = ""
    near: str = ""
    statuses: tuple[str, ...] = ("passing",)

    @property
    def any_status(self) -> bool:
        """True for ``|any``: every instance regardless of health."""
        return self.statuses == ("any",)

    @property
    def key(self) -> str:
        """The canonical string that names every argument of the query."""
        # A name with a dot (only reachable through service(name, tag=…)) is braced, so
        # tag "a", name "b.c" and tag "a.b", name "c" never share a watch.
        name = f"{{{self.name}}}" if "." in self.name else self.name
        text = f"{self.tag}.{name}" if self.tag else name
        if self.dc:
            text += f"@{self.dc}"
        if self.near:
            text += f"~{self.near}"
        return f"{text}|{','.join(self.statuses)}"

    def accepts(self, instance: Instance) -> bool:
        """True when ``instance`` matches the tag and status filters."""
        if self.tag and self.tag not in instance.Tags:
            return False
        return self.any_status or instance.Status in self.statuses


def parse_service(text: str, status_arg: str | None = None) -> ServiceSpec:
    """Parse consul-template's service grammar; raise QueryError naming what is wrong."""
    if not isinstance(text, str):
        raise QueryError(f"service({text!r}): argument must be a string")
    body, _, filters = text.partition("|")
    if status_arg is not None:
        if filters:
            raise QueryError(f"service({text!r}): status given twice")
        filters = status_arg
    if not body.strip():
        raise QueryError(f"service({text!r}): service name is empty")
    match = _SERVICE.match(body)
    if not match:
        raise QueryError(f"service({text!r}): expected [tag.]name[@dc][~near][|status,...]")
    return ServiceSpec(
        name=match["name"],
        tag=(match["tag"] or "").strip(),
        dc=match["dc"] or "",
        near=match["near"] or "",
        statuses=parse_statuses(text, filters),
    )


def service_by_name(name: str, tag: str, status: str | None = None) -> ServiceSpec:
    """A spec for ``service(name, tag=…)``: the name is taken literally (dots included)."""
    if not isinstance(name, str) or not is_safe_name(name):
        raise QueryError(f"service({name!r}): not a valid service name")
    if not isinstance(tag, str) or not tag.strip() or "|" in tag:
        raise QueryError(f"service({name!r}, tag={tag!r}): not a valid tag")
    return ServiceSpec(name=name, tag=tag.strip(), statuses=parse_statuses(name, status or ""))


def parse_statuses(text: str, filters: str) -> tuple[str, ...]:
    """The status filter list: default passing; ``any`` alone; others from STATUSES."""
    if not filters:
        return ("passing",)
    items = [f.strip() for f in filters.split(",")]
    if items == ["any"]:
        return ("any",)
    for item in items:
        if item not in STATUSES:
            allowed = ", ".join((*STATUSES, "any"))
            raise QueryError(f"service({text!r}): unknown status filter {item!r} (use {allowed})")
    return tuple(sorted(set(items), key=STATUSES.index))


def filter_instances(spec: ServiceSpec, instances: Iterable[Instance]) -> tuple[Instance, ...]:
    """Instances of ``spec.name`` that pass its tag and status filters (for local catalogs)."""
    return tuple(i for i in instances if i.Name == spec.name and spec.accepts(i))


def kv_path(func: str, path: str, *, allow_empty: bool = False) -> str:
    """Normalize a KV key or prefix (no leading or trailing ``/``); reject an empty key."""
    if not isinstance(path, str):
        raise QueryError(f"{func}({path!r}): argument must be a string")
    cleaned = path.strip("/")
    if not cleaned and not allow_empty:
        raise QueryError(f"{func}({path!r}): key is empty")
    return cleaned


def relative_pairs(
    prefix: str, items: Iterable[tuple[str, str]], flags: Mapping[str, int] | None = None
) -> tuple[KVPair, ...]:
    """Sorted KVPairs under ``prefix`` (normalized) from (full path, value) items.

    The prefix itself and "folder" keys ending in ``/`` are left out; ``flags`` gives a
    key's Consul flags (0 when absent).
    """
    base = f"{prefix}/" if prefix else ""
    flags = flags or {}
    pairs = [
        KVPair(Key=path[len(base):], Path=path, Value=value, Flags=flags.get(path, 0))
        for path, value in items
        if path.startswith(base) and path != base and not path.endswith("/")
    ]
    return tuple(sorted(pairs, key=lambda p: p.Path))


class Query(Protocol):
    """One watched question; ``key`` names every argument so equal queries share a watch."""

    @property
    def key(self) -> str:
        """Stable identifier, e.g. ``health.service(calico.web|passing)``."""
        ...

    async def fetch(self, index: int) -> tuple[object, int]:
        """Return (data, index), blocking while the data is unchanged past ``index``."""
        ...


class ConstantQuery:
    """A query whose answer never changes (``nodes()`` of etcd or DNS, which have no nodes).

    Index 0 answers at once; a watch that has the answer blocks for ``wait`` seconds,
    then gets the same answer and index again, which it ignores.
    """

    INDEX = 1

    def __init__(self, key: str, data: object, wait: float) -> None:
        self.key = key
        self._data = data
        self._wait = wait

    async def fetch(self, index: int) -> tuple[object, int]:
        """``(data, 1)``: at once for index 0, after ``wait`` seconds otherwise."""
        if index == self.INDEX:
            await asyncio.sleep(self._wait)
        return self._data, self.INDEX


UNPINNED = object()  # a Pin's answer for a query it cannot read from its snapshot
Pin = Callable[["Query"], object]


def pin_of(catalog: object) -> Pin | None:
    """A reader of one consistent version of ``catalog``, when the backend offers one.

    Every query of a render must see one version of a source (issue 17: a template that
    read KV and services from a file catalog mixed two versions in one file). A backend
    with a ``pin()`` method returns a function that answers any of its queries from the
    version current when ``pin()`` was called (``UNPINNED`` for a query it cannot answer,
    which then falls back to the brain).
    """
    pin = getattr(catalog, "pin", None)
    return pin() if callable(pin) else None


class Catalog(Protocol):
    """A backend: builds queries for the template functions.

    Data shapes: ``services()`` -> tuple[ServiceSummary, ...]; ``service()`` ->
    tuple[Instance, ...] sorted by node then ID; ``nodes()`` -> tuple[Node, ...];
    ``key()`` -> KVPair | None; ``tree()`` -> tuple[KVPair, ...] of every key under the
    prefix (``ls`` keeps the direct children).
    """

    name: str

    def services(self) -> Query:
        """Every service name with the union of its tags."""
        ...

    def service(self, spec: ServiceSpec) -> Query:
        """Instances of one service, filtered by ``spec``."""
        ...

    def nodes(self) -> Query:
        """Every node of the catalog."""
        ...

    def key(self, path: str) -> Query:
        """One KV key (normalized by ``kv_path``)."""
        ...

    def tree(self, prefix: str) -> Query:
        """Every KV key below a prefix (normalized by ``kv_path``)."""
        ...

    async def aclose(self) -> None:
        """Release connections; queries must not be used afterwards."""
        ...
