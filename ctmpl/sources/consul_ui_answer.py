"""``/v1/internal/ui/nodes`` answers: what is decoded of them, and which nodes differ.

An agent writes this answer the same way every time: nodes sorted by name, each node's
instances and checks sorted, one encoding (recorded on Consul 1.10). After a write to one
node, the new answer is the last one with that node's bytes changed and everything after it
shifted. ``Answers.split`` compares the new answer with the last one node by node, from the
front and from the back — comparisons of bytes, nothing parsed — and decodes only the nodes
between the first and the last difference; every other node is the same as in the last
answer, byte for byte, and is not decoded at all. An answer in another order (the endpoint
promises none; the test double shuffles every answer) differs everywhere and is decoded
whole, as is every answer that does not split cleanly: the shortcut only ever skips bytes
that are identical to bytes decoded before.

What is decoded of a node: its own fields and, kept as the answer's bytes, its instances and
checks (``msgspec.Raw``), decoded later and only as far as needed (``ctmpl.sources.
consul_ui_catalog``). Only the fields ctmpl reads are ever built; the rest of the JSON is
skipped. The last answer's bytes are held (one answer, not more) to compare the next with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

_SPACE = b" \t\r\n"
_COPY = 1 << 20  # a changed part up to this size (or half the answer) is copied to decode


class SnapshotError(ValueError):
    """The answer does not have the shape this module reads (the endpoint is not stable)."""


# The fields ctmpl reads (``ctmpl.sources.consul_decode``). Values are checked where they are
# used; what the catalog relies on (a node name, indexes) is checked there. No reference
# cycles: not tracked by the garbage collector.
class UIService(msgspec.Struct, gc=False):
    ID: Any
    Service: Any
    ModifyIndex: int
    Tags: Any = None
    Address: Any = None
    Port: Any = None
    Meta: Any = None


class UICheck(msgspec.Struct, gc=False):
    CheckID: Any
    ModifyIndex: int
    Node: Any = None
    Name: Any = None
    Status: Any = None
    Notes: Any = None
    Output: Any = None
    ServiceID: Any = None
    ServiceName: Any = None


class Mark(msgspec.Struct, gc=False):
    """An instance or check at first look: its index only."""

    ModifyIndex: int


class UINode(msgspec.Struct, gc=False):
    """A node at first look: its own fields, and the indexes of its instances and checks."""

    Node: Any
    Services: list[Mark] | None
    Checks: list[Mark] | None
    ID: Any = None
    Address: Any = None
    Datacenter: Any = None
    TaggedAddresses: Any = None
    Meta: Any = None


class _Services(msgspec.Struct, gc=False):
    Services: list[UIService] | None


class _Checks(msgspec.Struct, gc=False):
    Checks: list[UICheck] | None


_RAWS = msgspec.json.Decoder(list[msgspec.Raw])
_NODE = msgspec.json.Decoder(UINode)
_SERVICES = msgspec.json.Decoder(_Services)
_CHECKS = msgspec.json.Decoder(_Checks)


def decode(raw: bytes) -> list[msgspec.Raw]:
    """The nodes of an answer, each as its bytes; SnapshotError when it is JSON of another
    shape, and ``msgspec.DecodeError`` when it is not JSON at all."""
    try:
        return _RAWS.decode(raw)
    except msgspec.ValidationError as exc:
        raise SnapshotError(str(exc)) from None


# Each raises ``msgspec.ValidationError`` when the node is not as recorded.
def first_look(node: msgspec.Raw) -> UINode:
    """A node's own fields and the indexes of its instances and checks."""
    return _NODE.decode(node)


def services(node: msgspec.Raw) -> list[UIService]:
    """A node's instances (the fields ctmpl reads)."""
    return _SERVICES.decode(node).Services or []


def checks(node: msgspec.Raw) -> list[UICheck]:
    """A node's checks (the fields ctmpl reads)."""
    return _CHECKS.decode(node).Checks or []


@dataclass(frozen=True)
class Split:
    """One answer as ``Answers.split`` found it."""

    nodes: list[msgspec.Raw]  # the nodes to decode: every node, or those that may differ
    kept: list[str]  # the names of the nodes the same as in the last answer


@dataclass
class _Layout:
    raw: bytes  # the answer
    starts: list[int]  # where each node begins in it
    names: list[str]  # each node's name (the decoded ones added once applied)
    front: int = 0  # where the decoded nodes go among the kept ones


class Answers:
    """The last answer, to split the next one by (see the module docstring)."""

    def __init__(self) -> None:
        self._last = _Layout(b"", [], [])
        self._next: _Layout | None = None  # the answer being applied

    def split(self, raw: bytes) -> Split:
        """The nodes of ``raw`` that must be decoded; ``keep()`` once they are applied.

        SnapshotError or ``msgspec.DecodeError`` as for ``decode``."""
        found = self._differing(raw)
        if found is not None:
            return found
        nodes = decode(raw)
        self._next = _Layout(raw, _starts(raw, _opening(raw), nodes), [])
        return Split(nodes, [])

    def keep(self, decoded: list[str]) -> None:
        """The last split answer was applied; ``decoded``: the names of its nodes that were
        decoded, in order. The next answer is compared with this one."""
        layout, self._next = self._next, None
        if layout is not None:
            layout.names[layout.front:layout.front] = decoded
            self._last = layout if len(layout.names) == len(layout.starts) else _Layout(
                b"", [], [])

    def _differing(self, new: bytes) -> Split | None:
        """The nodes between the first and the last difference with the last answer; None
        when the answer must be decoded whole."""
        old, starts, names = self._last.raw, self._last.starts, self._last.names
        count = len(starts)
        if not count or not new.startswith(memoryview(old)[:starts[0]]):
            return None
        bounds = [*starts, len(old)]
        view, delta = memoryview(old), len(new) - len(old)
        front = 0
        while front < count and new.startswith(view[bounds[front]:bounds[front + 1]],
                                               bounds[front]):
            front += 1
        back = count
        while back > front and bounds[back - 1] + delta >= bounds[front] and new.startswith(
                view[bounds[back - 1]:bounds[back]], bounds[back - 1] + delta):
            back -= 1
        if bounds[back] - bounds[front] > max(len(old) // 2, _COPY):
            return None  # mostly changed (another order, a burst): no copy, decoded whole
        if front == count:
            if new != old:
                return None
            self._next = _Layout(new, starts, list(names), count)
            return Split([], list(names))
        # Chunks run from one node's start to the next one's (the comma included); the last
        # one to the end. The nodes in between: "A, B," before a kept node, "A, B]" at the end.
        middle = new[bounds[front]:bounds[back] + delta]
        text = middle.rstrip(_SPACE)
        if back < count:
            if text and not text.endswith(b","):
                return None
            body = b"[" + text[:-1] + b"]" if text else b"[]"
        else:
            body = b"[" + middle
        try:
            nodes = decode(body)
        except msgspec.DecodeError:
            return None  # not a clean split: the whole answer says what is wrong
        inner = [bounds[front] + s - 1 for s in _starts(body, 1, nodes)]
        if (front and back == count and not nodes) or len(inner) != len(nodes):
            return None  # "[A,]" is not JSON
        kept = [*names[:front], *names[back:]]
        moved = [s + delta for s in starts[back:]]
        self._next = _Layout(new, [*starts[:front], *inner, *moved], list(kept), front)
        return Split(nodes, kept)


def _opening(raw: bytes) -> int:
    """The position after the answer's opening bracket."""
    return len(raw) - len(raw.lstrip(_SPACE)) + 1


def _starts(buf: bytes, pos: int, raws: list[msgspec.Raw]) -> list[int]:
    """Where each of ``raws`` (the elements of the list opened before ``pos``) begins;
    empty when they are not found there (the next answer is then decoded whole)."""
    out = []
    for item in raws:
        while pos < len(buf) and buf[pos] in b" \t\r\n,":
            pos += 1
        if not buf.startswith(item, pos):
            return []
        out.append(pos)
        pos += len(item)
    return out
