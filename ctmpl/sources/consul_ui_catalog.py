"""The whole catalog as ``/v1/internal/ui/nodes`` shows it, kept up to date answer by answer.

The UI endpoint answers with every node, each with its service instances (every instance
carries its ``ModifyIndex``) and its checks (node checks and service checks, each with its
``ModifyIndex``), and its index moves on any change to nodes, services or checks. That is
enough to tell, from each answer, exactly which service names changed: an instance added,
removed or modified (address, port, tags, meta), a check added, removed or modified (a flap,
maintenance mode), or a node that changed (address, metadata, a node check — which affects
every instance on the node). Recorded on Consul 1.10 (``blocking_internal_ui_nodes_*``).

Cost per answer. Only the nodes whose bytes differ from the last answer are decoded at all
(``ctmpl.sources.consul_ui_answer``): with an agent's answers, the node a write touched.
Each such node's instances (and checks) are first decoded for their ``ModifyIndex`` values
only: the number of instances and the highest ``ModifyIndex`` among them. A write gives
everything it touches the index of that write, higher than any index before it, so an
unchanged count and maximum mean nothing on the node changed. Only a node whose count or
maximum moved is decoded into the fields ctmpl reads and compared instance by instance
(``ID → ModifyIndex``); only the instances and checks whose index moved are read further
(copied, compared with what was held). Everything else a change needs is kept up to date
incrementally: the instances of each name, the union of each name's tags, the checks of
each instance. The health-service entries of a name are built only when asked for.

An answer that may follow an agent restart (its indexes start over and may repeat old values
for new data) is compared by content instead (``trusted=False``), once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import msgspec

from ctmpl.sources import consul_ui_answer as answer
from ctmpl.sources.consul_ui_answer import (
    Answers,
    Mark,
    SnapshotError,
    UICheck,
    UINode,
    UIService,
    decode,
)

__all__ = ["Diff", "SnapshotError", "UICatalog", "decode"]

InstanceKey = tuple[str, str]  # (node, service ID)
_MODIFY_INDEX = attrgetter("ModifyIndex")

# What ctmpl reads of each (``ctmpl.sources.consul_decode``); the rest is not kept.
_NODE_FIELDS = ("ID", "Node", "Address", "Datacenter", "TaggedAddresses", "Meta")
_SERVICE_FIELDS = ("ID", "Service", "Tags", "Address", "Port", "Meta")
_CHECK_FIELDS = ("Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID",
                 "ServiceName")


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
        self._answers = Answers()

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
        return [entry for _, entry in self.keyed_entries(name)]

    def keyed_entries(self, name: str) -> list[tuple[InstanceKey, dict[str, Any]]]:
        """The entries of ``name`` with the key of each. An entry's node fields, service
        and checks are the same objects while they do not change."""
        out = []
        for key in self.keys(name):
            node = self._nodes[key[0]]
            checks = [*node.node_checks, *self._service_checks.get(key, ())]
            out.append((key, {"Node": node.fields, "Service": self._services[key],
                              "Checks": checks}))
        return out

    # -- updating -------------------------------------------------------------------------

    def apply(self, raw: bytes, index: int, *, trusted: bool = True) -> Diff:
        """Apply one answer as it came: only the nodes whose bytes differ from the last
        answer's are read (``ctmpl.sources.consul_ui_answer``). SnapshotError as for
        ``update``; ``msgspec.DecodeError`` when it is not JSON."""
        split = self._answers.split(raw)
        diff, decoded = self._update(split.nodes, index, trusted, split.kept)
        self._answers.keep(decoded)
        return diff

    def update(self, body: list[msgspec.Raw], index: int, *, trusted: bool = True) -> Diff:
        """Apply every node of one answer (``decode``); SnapshotError when it is not a list
        of nodes as recorded (the catalog is then unusable: the caller stops using this
        endpoint)."""
        return self._update(body, index, trusted, [])[0]

    def _update(self, body: list[msgspec.Raw], index: int, trusted: bool,
                kept: list[str]) -> tuple[Diff, list[str]]:
        """Apply the nodes of ``body``, the nodes named ``kept`` staying as they are;
        (what changed, the names of the nodes in ``body``)."""
        names: set[str] = set()
        moved: set[str] = set()  # names whose instances came, went or changed (not checks)
        nodes_changed = False
        seen: set[str] = set(kept)
        decoded: list[str] = []
        try:
            for raw in body:
                head = answer.first_look(raw)
                name = head.Node
                if not isinstance(name, str):
                    raise TypeError("Node is not a string")
                seen.add(name)
                decoded.append(name)
                nodes_changed |= self._update_node(name, head, raw, names, moved, trusted=trusted)
        except (TypeError, msgspec.ValidationError) as exc:
            raise SnapshotError(f"unexpected node entry ({type(exc).__name__}: {exc})") from None
        for gone in self._nodes.keys() - seen:
            moved.update(self._names_on(gone))
            node = self._nodes.pop(gone)
            for sid in node.service_marks:
                self._drop_service((gone, sid))
            self._ungroup(gone, node)
            nodes_changed = True
        self.index = index
        names |= moved
        # Only a name whose instances moved can have other tags, or come or go.
        return Diff(frozenset(names), self._retag(moved), nodes_changed), decoded

    def _update_node(self, name: str, head: UINode, raw: msgspec.Raw, names: set[str],
                     moved: set[str], *, trusted: bool) -> bool:
        """Apply one node of an answer (``head``: its first look, ``raw``: its bytes); True
        when the node itself changed."""
        fields = {k: getattr(head, k) for k in _NODE_FIELDS}
        node = self._nodes.get(name)
        changed = node is None or node.fields != fields
        if node is None:
            node = self._nodes[name] = _Node(fields)
        elif changed:
            node.fields = fields
            names.update(self._names_on(name))
        summary = _summary(head.Services or ())
        if not trusted or summary != node.service_summary:
            services = answer.services(raw)
            marks = {s.ID: s.ModifyIndex for s in services}
            if not trusted or marks != node.service_marks:
                self._update_services(name, node, services, marks, moved, trusted=trusted)
            node.service_summary = summary
        summary = _summary(head.Checks or ())
        if not trusted or summary != node.check_summary:
            checks = answer.checks(raw)
            marks = {c.CheckID: c.ModifyIndex for c in checks}
            if not trusted or marks != node.check_marks:
                self._update_checks(name, node, checks, marks, names, trusted=trusted)
            node.check_summary = summary
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
        self._group_checks(name, node, {c["ServiceID"] for c in touched})

    def _group_checks(self, name: str, node: _Node, owners: set[str]) -> None:
        """List the checks of ``owners`` again, sorted by ID: the node's own checks (owner
        "") or an instance's (its service ID); the other lists stay as they are."""
        lists: dict[str, list[dict[str, Any]]] = {owner: [] for owner in owners}
        for check in node.checks.values():
            listed = lists.get(check["ServiceID"])
            if listed is not None:
                listed.append(check)
        for owner, checks in lists.items():
            checks.sort(key=_check_id)
            if not owner:
                node.node_checks = checks
            elif checks:
                self._service_checks[(name, owner)] = checks
                node.grouped.add(owner)
            else:
                self._service_checks.pop((name, owner), None)
                node.grouped.discard(owner)

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


def _summary(items: Sequence[Mark]) -> tuple[int, int]:
    """(count, highest ModifyIndex) of a node's instances or checks."""
    return len(items), max(map(_MODIFY_INDEX, items), default=0)


def _check_id(check: dict[str, Any]) -> str:
    return str(check["CheckID"])


def _tag_list(service: dict[str, Any]) -> list[Any]:
    tags = service["Tags"]
    return tags if isinstance(tags, list) else []
