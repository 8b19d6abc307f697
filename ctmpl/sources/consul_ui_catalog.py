"""The whole catalog as ``/v1/internal/ui/nodes`` shows it, kept up to date answer by answer.

The UI endpoint answers with every node, each with its service instances (every instance
carries its ``ModifyIndex``) and its checks (node checks and service checks, each with its
``ModifyIndex``), and its index moves on any change to nodes, services or checks. That is
enough to tell, from each answer, exactly which service names changed: an instance added,
removed or modified (address, port, tags, meta), a check added, removed or modified (a flap,
maintenance mode), or a node that changed (address, metadata, a node check — which affects
every instance on the node). Recorded on Consul 1.10 (``blocking_internal_ui_nodes_*``).

Cost per answer. The answer is split into nodes, each node's own fields decoded and its
instances and checks kept as the answer's bytes (``msgspec.Raw``, no copy). A node whose
instance (or check) bytes are those of the last answer changed nothing there: an agent
writes each node the same way while it does not change (sorted, same encoding), so after a
write to one node every other node costs a comparison of bytes. When the bytes differ
(another order, as the test double sends, or a change), the list is decoded for its
``ModifyIndex`` values only: the number of instances and the highest ``ModifyIndex`` among
them. A write gives everything it touches the index of that write, higher than any index
before it, so an unchanged count and maximum mean nothing on the node changed. Only a node
whose count or maximum moved is decoded into the fields ctmpl reads (``UIService``,
``UICheck``; the rest of the JSON is skipped, never built) and compared instance by instance
(``ID → ModifyIndex``); only the instances and checks whose index moved are read further
(copied, compared with what was held). Everything else a change needs is kept up to date
incrementally: the instances of each name, the union of each name's tags, the checks of
each instance. The health-service entries of a name are built only when asked for. The
catalog holds the bytes of the last answer only (each node's bytes are taken from every new
answer, so no older answer stays alive).

An answer that may follow an agent restart (its indexes start over and may repeat old values
for new data) is compared by content instead (``trusted=False``), once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import msgspec

InstanceKey = tuple[str, str]  # (node, service ID)
_MODIFY_INDEX = attrgetter("ModifyIndex")

# What ctmpl reads of each (``ctmpl.sources.consul_decode``); the rest is not kept.
_NODE_FIELDS = ("ID", "Node", "Address", "Datacenter", "TaggedAddresses", "Meta")
_SERVICE_FIELDS = ("ID", "Service", "Tags", "Address", "Port", "Meta")
_CHECK_FIELDS = ("Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID",
                 "ServiceName")


class SnapshotError(ValueError):
    """The answer does not have the shape this module reads (the endpoint is not stable)."""


# What is decoded of an answer: the fields ctmpl reads, nothing else (the rest of the JSON is
# skipped, never built). Values are checked where they are used (``consul_decode``); what
# this module relies on (a node name, indexes) is checked here. No reference cycles: not
# tracked by the garbage collector.
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


class UINode(msgspec.Struct, gc=False):
    """One node of an answer; its instances and checks are the answer's bytes, decoded
    when they differ from the last answer's (``UICatalog.update``)."""

    Node: Any
    Services: msgspec.Raw
    Checks: msgspec.Raw
    ID: Any = None
    Address: Any = None
    Datacenter: Any = None
    TaggedAddresses: Any = None
    Meta: Any = None


class _Mark(msgspec.Struct, gc=False):
    ModifyIndex: int


_DECODER = msgspec.json.Decoder(list[UINode])
_MARKS = msgspec.json.Decoder(list[_Mark] | None)
_SERVICES = msgspec.json.Decoder(list[UIService] | None)
_CHECKS = msgspec.json.Decoder(list[UICheck] | None)


def decode(raw: bytes) -> list[UINode]:
    """An answer's nodes; SnapshotError when it is JSON of another shape, and
    ``msgspec.DecodeError`` when it is not JSON at all."""
    try:
        return _DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        raise SnapshotError(str(exc)) from None


@dataclass(frozen=True)
class Diff:
    """What one answer changed."""

    names: frozenset[str]  # service names whose health entries may differ
    services: bool  # a name appeared or went away, or the union of its tags changed
    nodes: bool  # a node was added or removed, or its address or metadata changed


@dataclass
class _Node:
    fields: dict[str, Any]
    service_marks: dict[str, Any] = field(default_factory=dict)  # service ID -> ModifyIndex
    check_marks: dict[str, Any] = field(default_factory=dict)  # check ID -> ModifyIndex
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)  # check ID -> check
    node_checks: list[dict[str, Any]] = field(default_factory=list)
    grouped: set[str] = field(default_factory=set)  # service IDs with checks listed
    service_summary: tuple[int, int] | None = None  # (count, highest ModifyIndex)
    check_summary: tuple[int, int] | None = None
    service_bytes: msgspec.Raw | None = None  # as the last answer wrote them
    check_bytes: msgspec.Raw | None = None


class UICatalog:
    """The catalog of one datacenter, updated in place by each ``/v1/internal/ui/nodes``
    answer (see the module docstring)."""

    def __init__(self) -> None:
        self.index = 0
        self._nodes: dict[str, _Node] = {}
        self._services: dict[InstanceKey, dict[str, Any]] = {}
        self._service_checks: dict[InstanceKey, list[dict[str, Any]]] = {}
        self._by_name: dict[str, set[InstanceKey]] = {}
        self._tags: dict[str, frozenset[str]] = {}
        self._by_lower: dict[str, set[str]] = {}

    # -- reading --------------------------------------------------------------------------

    def names(self) -> Iterable[str]:
        """Every service name in the catalog."""
        return self._tags.keys()

    def tags(self, name: str) -> frozenset[str]:
        """The union of the tags of a service's instances (``/v1/catalog/services``)."""
        return self._tags.get(name, frozenset())

    def keys(self, name: str) -> list[InstanceKey]:
        """The instances of ``name``, matched without regard to case as Consul does."""
        return sorted(k for n in self._by_lower.get(name.lower(), ()) for k in self._by_name[n])

    def entries(self, name: str) -> list[dict[str, Any]]:
        """``/v1/health/service/<name>`` entries (every instance, unfiltered)."""
        out = []
        for key in self.keys(name):
            node = self._nodes[key[0]]
            checks = [*node.node_checks, *self._service_checks.get(key, ())]
            out.append({"Node": node.fields, "Service": self._services[key], "Checks": checks})
        return out

    # -- updating -------------------------------------------------------------------------

    def update(self, body: list[UINode], index: int, *, trusted: bool = True) -> Diff:
        """Apply one decoded answer; SnapshotError when it is not a list of nodes as
        recorded (the catalog is then unusable: the caller stops using this endpoint)."""
        names: set[str] = set()
        nodes_changed = False
        seen: set[str] = set()
        try:
            for raw in body:
                name = raw.Node
                if not isinstance(name, str):
                    raise TypeError("Node is not a string")
                seen.add(name)
                nodes_changed |= self._update_node(name, raw, names, trusted)
        except (TypeError, msgspec.ValidationError) as exc:
            raise SnapshotError(f"unexpected node entry ({type(exc).__name__}: {exc})") from None
        for gone in self._nodes.keys() - seen:
            names.update(self._names_on(gone))
            node = self._nodes.pop(gone)
            for sid in node.service_marks:
                self._drop_service((gone, sid))
            self._ungroup(gone, node)
            nodes_changed = True
        self.index = index
        return Diff(frozenset(names), self._retag(names), nodes_changed)

    def _update_node(self, name: str, raw: UINode, names: set[str], trusted: bool) -> bool:
        """Apply one node of an answer; True when the node itself changed."""
        fields = {k: getattr(raw, k) for k in _NODE_FIELDS}
        node = self._nodes.get(name)
        changed = node is None or node.fields != fields
        if node is None:
            node = self._nodes[name] = _Node(fields)
        elif changed:
            node.fields = fields
            names.update(self._names_on(name))
        if raw.Services != node.service_bytes:
            node.service_summary, services = _moved(raw.Services, node.service_summary,
                                                    trusted, _SERVICES)
            if services is not None:
                marks = {s.ID: s.ModifyIndex for s in services}
                if not trusted or marks != node.service_marks:
                    self._update_services(name, node, services, marks, names, trusted=trusted)
        if raw.Checks != node.check_bytes:
            node.check_summary, checks = _moved(raw.Checks, node.check_summary, trusted,
                                                _CHECKS)
            if checks is not None:
                marks = {c.CheckID: c.ModifyIndex for c in checks}
                if not trusted or marks != node.check_marks:
                    self._update_checks(name, node, checks, marks, names, trusted=trusted)
        # The bytes of this answer, even when equal: the last answer's are then freed.
        node.service_bytes, node.check_bytes = raw.Services, raw.Checks
        return changed

    def _update_services(self, name: str, node: _Node, services: Iterable[UIService],
                         marks: dict[str, Any], names: set[str], *, trusted: bool) -> None:
        old = node.service_marks
        for sid in old.keys() - marks.keys():
            names.add(self._services[(name, sid)]["Service"])
            self._drop_service((name, sid))
        for raw in services:
            sid = raw.ID
            if trusted and old.get(sid) == marks[sid]:
                continue
            fields = {k: getattr(raw, k) for k in _SERVICE_FIELDS}
            if not isinstance(fields["Service"], str):
                raise TypeError("Service is not a string")
            key = (name, sid)
            held = self._services.get(key)
            if held == fields:
                continue
            if held is not None:
                names.add(held["Service"])
                self._unlist(held["Service"], key)
            self._services[key] = fields
            self._by_name.setdefault(fields["Service"], set()).add(key)
            names.add(fields["Service"])
        node.service_marks = marks

    def _update_checks(self, name: str, node: _Node, checks: Iterable[UICheck],
                       marks: dict[str, Any], names: set[str], *, trusted: bool) -> None:
        old, held = node.check_marks, node.checks
        touched: list[dict[str, Any]] = [held.pop(cid) for cid in old.keys() - marks.keys()]
        for raw in checks:
            cid = raw.CheckID
            if trusted and old.get(cid) == marks[cid]:
                continue
            fields = {k: getattr(raw, k) for k in _CHECK_FIELDS}
            fields["ServiceID"] = fields["ServiceID"] or ""
            if held.get(cid) == fields:
                continue
            if cid in held:
                touched.append(held[cid])
            held[cid] = fields
            touched.append(fields)
        node.check_marks = marks
        if not touched:
            return
        if any(not c["ServiceID"] for c in touched):
            names.update(self._names_on(name))
        for check in touched:
            service = self._services.get((name, check["ServiceID"]))
            if service is not None:
                names.add(service["Service"])
        self._group_checks(name, node)

    def _group_checks(self, name: str, node: _Node) -> None:
        """Sort a node's checks into node checks and each instance's checks, again."""
        self._ungroup(name, node)
        for check in sorted(node.checks.values(), key=lambda c: str(c["CheckID"])):
            sid = check["ServiceID"]
            if sid:
                self._service_checks.setdefault((name, sid), []).append(check)
                node.grouped.add(sid)
            else:
                node.node_checks.append(check)

    def _ungroup(self, name: str, node: _Node) -> None:
        node.node_checks = []
        for sid in node.grouped:
            self._service_checks.pop((name, sid), None)
        node.grouped = set()

    def _names_on(self, node: str) -> set[str]:
        held = self._nodes.get(node)
        if held is None:
            return set()
        return {self._services[(node, sid)]["Service"] for sid in held.service_marks
                if (node, sid) in self._services}

    def _drop_service(self, key: InstanceKey) -> None:
        held = self._services.pop(key, None)
        if held is not None:
            self._unlist(held["Service"], key)

    def _unlist(self, name: str, key: InstanceKey) -> None:
        keys = self._by_name.get(name)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_name[name]

    def _retag(self, names: Iterable[str]) -> bool:
        """Refresh the tag union and case index of ``names``; True when one differs."""
        changed = False
        for name in names:
            keys = self._by_name.get(name)
            if keys is None:
                if self._tags.pop(name, None) is not None:
                    changed = True
                    lower = self._by_lower[name.lower()]
                    lower.discard(name)
                    if not lower:
                        del self._by_lower[name.lower()]
                continue
            tags = frozenset(t for k in keys for t in _tag_list(self._services[k])
                             if isinstance(t, str))
            if self._tags.get(name) != tags:
                changed = True
                if name not in self._tags:
                    self._by_lower.setdefault(name.lower(), set()).add(name)
                self._tags[name] = tags
        return changed


def _moved(raw: msgspec.Raw, held: tuple[int, int] | None, trusted: bool,
           decoder: msgspec.json.Decoder[Any]) -> tuple[tuple[int, int], Sequence[Any] | None]:
    """(count, highest ModifyIndex) of a node's instances or checks, and the items decoded
    by ``decoder`` when they may have changed (None when the count and maximum show they
    did not; an untrusted answer is always decoded, to be compared by content)."""
    if trusted:
        marks = _MARKS.decode(raw) or ()
        summary = len(marks), max(map(_MODIFY_INDEX, marks), default=0)
        if summary == held:
            return summary, None
    items = decoder.decode(raw) or ()
    return (len(items), max(map(_MODIFY_INDEX, items), default=0)), items


def _tag_list(service: dict[str, Any]) -> list[Any]:
    tags = service["Tags"]
    return tags if isinstance(tags, list) else []
