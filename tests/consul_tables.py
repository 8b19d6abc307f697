"""The Consul double's tables, indexed so that a catalog of 30,000 instances answers quickly.

A real agent answers ``/v1/internal/ui/nodes`` for 10,000 services in a few tens of
milliseconds; the double, written in Python, took seconds when it rebuilt and serialized the
whole answer on every read, so a benchmark measured the double instead of its client. Here:

- ``Table`` holds entries keyed by ``(node, id)`` (instances, checks), also indexed by node,
  and notes every node written to (``dirty``);
- ``Services`` adds an index by lower-cased service name (Consul matches names
  case-insensitively), so a per-service read or a write does not scan the catalog;
- ``Nodes`` holds the nodes by name and notes the written ones the same way;
- ``UiNodes`` keeps each node's part of the UI answer as serialized JSON and re-serializes
  only the nodes written since the last answer, reusing each entry's own cached JSON
  (``Entry.ui_json``) when the entry object did not change. Entries are therefore never
  changed in place once stored: a write stores a new object (``dataclasses.replace``).

The bytes are exactly those of ``json.dumps(body, separators=(",", ":"))`` over the whole
answer, and the order stays random per answer (nodes and each node's instances shuffled).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar


class Entry(Protocol):
    """An instance or a check: its JSON as the UI answer shows it, cached on the object."""

    def ui_json(self) -> bytes: ...


class Named(Entry, Protocol):
    name: str


class NodeEntry(Protocol):
    def ui_head(self) -> bytes: ...


T = TypeVar("T")
E = TypeVar("E", bound=Entry)
S = TypeVar("S", bound=Named)
Key = tuple[str, str]


def dumps(body: Any) -> bytes:
    """Compact JSON, as Consul writes it."""
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Lazy:
    """An answer's JSON, built only when it is sent: a blocking query reads its endpoint
    again on every write, and most of those reads only compare the index."""

    build: Callable[[], bytes]


class Table(dict[Key, E]):
    """``(node, id) → entry``, also by node; notes every node written to in ``dirty``.

    Only ``[key] = …``, ``del [key]``, ``pop`` and ``drop_node`` change it."""

    def __init__(self, dirty: set[str]) -> None:
        super().__init__()
        self.dirty = dirty
        self.by_node: dict[str, dict[str, E]] = defaultdict(dict)

    def __setitem__(self, key: Key, value: E) -> None:
        if key in self:
            self._unindex(key, self[key])
        super().__setitem__(key, value)
        self.by_node[key[0]][key[1]] = value
        self._index(key, value)
        self.dirty.add(key[0])

    def __delitem__(self, key: Key) -> None:
        value = self[key]
        super().__delitem__(key)
        on = self.by_node[key[0]]
        del on[key[1]]
        if not on:
            del self.by_node[key[0]]
        self._unindex(key, value)
        self.dirty.add(key[0])

    def pop(self, key: Key, default: Any = None) -> Any:
        if key not in self:
            return default
        value = self[key]
        del self[key]
        return value

    def on(self, node: str) -> dict[str, E]:
        """The node's entries by id (do not change the dict)."""
        return self.by_node.get(node, {})

    def drop_node(self, node: str) -> None:
        for ident in list(self.on(node)):
            del self[(node, ident)]

    def _index(self, key: Key, value: E) -> None:
        pass

    def _unindex(self, key: Key, value: E) -> None:
        pass


class Services(Table[S]):
    """Instances, also by lower-cased service name."""

    def __init__(self, dirty: set[str]) -> None:
        super().__init__(dirty)
        self.by_name: dict[str, dict[Key, S]] = {}

    def named(self, name: str) -> dict[Key, S]:
        """Instances whose service name matches ``name`` ignoring case (do not change it)."""
        return self.by_name.get(name.lower(), {})

    def alive(self, name: str) -> bool:
        """True while an instance of exactly this name is registered."""
        return any(s.name == name for s in self.named(name).values())

    def _index(self, key: Key, value: S) -> None:
        self.by_name.setdefault(value.name.lower(), {})[key] = value

    def _unindex(self, key: Key, value: S) -> None:
        lower = value.name.lower()
        same = self.by_name[lower]
        del same[key]
        if not same:
            del self.by_name[lower]


N = TypeVar("N", bound=NodeEntry)


class Nodes(dict[str, N]):
    """Nodes by name; notes every node written to in ``dirty``."""

    def __init__(self, dirty: set[str]) -> None:
        super().__init__()
        self.dirty = dirty

    def __setitem__(self, key: str, value: N) -> None:
        super().__setitem__(key, value)
        self.dirty.add(key)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.dirty.add(key)


class UiNodes:
    """``/v1/internal/ui/nodes`` as serialized JSON, re-serialized per node written to.

    ``stable``: nodes by name and each node's instances by ID in every answer, as an agent
    writes them (its state store keeps them sorted; the recordings show that order), so
    an unchanged node has the same bytes in every answer. Otherwise both are shuffled
    anew for every answer (the endpoint promises no order)."""

    def __init__(self, nodes: Nodes[Any], services: Table[Any], checks: Table[Any],
                 dirty: set[str]) -> None:
        self.nodes, self.services, self.checks = nodes, services, checks
        self.dirty = dirty
        self.stable = False
        # node → (head up to the instances, the instances' JSON by ID, the rest with the
        # checks); in stable order also the whole node
        self._parts: dict[str, tuple[bytes, list[bytes], bytes]] = {}
        self._whole: dict[str, bytes] = {}

    def answer(self) -> bytes:
        """Every node with its instances and its checks (by ID)."""
        self._refresh(self.dirty)
        self.dirty.clear()
        if self.stable:
            return b"[" + b",".join(self._node(name) for name in sorted(self.nodes)) + b"]"
        # One join over every piece: each intermediate copy of a 17 MB answer costs more
        # than the shuffling.
        pieces: list[bytes] = []
        for name in shuffled(self.nodes):
            head, instances, tail = self._parts[name]
            pieces += (b",", head)
            if instances:
                joined = [b","] * (2 * len(instances) - 1)
                joined[::2] = shuffled(instances)
                pieces += joined
            pieces.append(tail)
        if not pieces:
            return b"[]"
        pieces[0] = b"["
        pieces.append(b"]")
        return b"".join(pieces)

    def _node(self, name: str) -> bytes:
        whole = self._whole.get(name)
        if whole is None:
            head, instances, tail = self._parts[name]
            whole = self._whole[name] = head + b",".join(instances) + tail
        return whole

    def _refresh(self, names: Iterable[str]) -> None:
        for name in names:
            self._whole.pop(name, None)
            node = self.nodes.get(name)
            if node is None:
                self._parts.pop(name, None)
                continue
            checks = b",".join(c.ui_json() for _, c in sorted(self.checks.on(name).items()))
            self._parts[name] = (
                node.ui_head() + b',"Services":[',
                [s.ui_json() for _, s in sorted(self.services.on(name).items())],
                b'],"Checks":[' + checks + b"]}",
            )


def shuffled(items: Iterable[T]) -> list[T]:
    """A list of ``items`` in random order."""
    out = list(items)
    random.shuffle(out)
    return out
