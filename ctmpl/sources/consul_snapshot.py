"""The whole catalog as ``/v1/internal/ui/nodes`` shows it, and which services changed.

The UI endpoint answers with every node, each with its service instances (every instance
carries its ``ModifyIndex``) and its checks (node checks and service checks, each with its
``ModifyIndex``), and its index moves on any change to nodes, services or checks. That is
enough to tell, from two answers, exactly which service names changed: an instance added,
removed or modified (address, port, tags, meta), a check added, removed or modified (a flap,
maintenance mode), or a node that changed (address, metadata, a node check — which affects
every instance on the node). Recorded on Consul 1.10 (``blocking_internal_ui_nodes_*``).

Diffing costs O(catalog) dictionary work per answer; building instances costs O(changed):
``instances(name)`` builds the health-service entries of one name only when asked.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

InstanceKey = tuple[str, str]  # (node, service ID)


class SnapshotError(ValueError):
    """The answer does not have the shape this module reads (the endpoint is not stable)."""


@dataclass
class CatalogSnapshot:
    """One answer of ``/v1/internal/ui/nodes``, indexed for diffing."""

    index: int
    nodes: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    node_marks: dict[str, str] = field(default_factory=dict)  # what tells a node change
    services: dict[InstanceKey, Mapping[str, Any]] = field(default_factory=dict)
    service_marks: dict[InstanceKey, tuple[str, int]] = field(default_factory=dict)
    check_marks: dict[tuple[str, str], tuple[int, str, str]] = field(default_factory=dict)
    node_checks: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)
    service_checks: dict[InstanceKey, list[Mapping[str, Any]]] = field(default_factory=dict)
    by_name: dict[str, list[InstanceKey]] = field(default_factory=dict)
    names_on_node: dict[str, set[str]] = field(default_factory=dict)
    _raw_checks: list[tuple[str, Any]] = field(default_factory=list)
    _checks_indexed: bool = False
    _by_lower: dict[str, list[str]] | None = None

    @classmethod
    def parse(cls, body: Any, index: int) -> CatalogSnapshot:
        """Index an answer; SnapshotError when it is not a list of nodes as recorded."""
        if not isinstance(body, list):
            raise SnapshotError("expected a list of nodes")
        snap = cls(index)
        by_name: dict[str, list[InstanceKey]] = defaultdict(list)
        try:
            for node in body:
                snap._add_node(node, by_name)
        except (KeyError, TypeError, AttributeError) as exc:
            raise SnapshotError(f"unexpected node entry ({type(exc).__name__}: {exc})") from None
        snap.by_name = dict(by_name)
        return snap

    def _add_node(self, node: Mapping[str, Any], by_name: dict[str, list[InstanceKey]]) -> None:
        name = node["Node"]
        if not isinstance(name, str):
            raise TypeError("Node is not a string")
        self.nodes[name] = {k: v for k, v in node.items() if k not in ("Services", "Checks")}
        self.node_marks[name] = json.dumps(
            [node.get("Address"), node.get("TaggedAddresses"), node.get("Meta")],
            sort_keys=True,
        )
        services = node["Services"] or ()
        keys = [(name, s["ID"]) for s in services]
        marks = [(s["Service"], s["ModifyIndex"]) for s in services]
        self.services.update(zip(keys, services, strict=True))
        self.service_marks.update(zip(keys, marks, strict=True))
        for key, (service, _) in zip(keys, marks, strict=True):
            by_name[service].append(key)
        self.names_on_node[name] = {m[0] for m in marks}
        checks = node["Checks"] or ()
        self.check_marks.update({(name, c["CheckID"]): (c["ModifyIndex"], c["ServiceID"] or "",
                                                        c["Status"]) for c in checks})
        self._raw_checks.append((name, checks))

    def _index_checks(self) -> None:
        """Group checks by instance, once, when the first entries are asked for."""
        if self._checks_indexed:
            return
        for name, checks in self._raw_checks:
            node_checks = self.node_checks.setdefault(name, [])
            for check in checks:
                sid = check["ServiceID"]
                if sid:
                    self.service_checks.setdefault((name, sid), []).append(check)
                else:
                    node_checks.append(check)
        self._checks_indexed = True

    def names(self) -> Iterable[str]:
        """Every service name in the catalog."""
        return self.by_name.keys()

    def keys(self, name: str) -> list[InstanceKey]:
        """The instances of ``name``, matched without regard to case as Consul does."""
        if self._by_lower is None:
            self._by_lower = defaultdict(list)
            for known in sorted(self.by_name):
                self._by_lower[known.lower()].append(known)
        return [k for n in self._by_lower.get(name.lower(), ()) for k in self.by_name[n]]

    def entries(self, name: str) -> list[dict[str, Any]]:
        """``/v1/health/service/<name>`` entries (every instance, unfiltered)."""
        self._index_checks()
        out = []
        for key in self.keys(name):
            node = key[0]
            checks = [*self.node_checks.get(node, ()), *self.service_checks.get(key, ())]
            out.append({"Node": self.nodes[node], "Service": self.services[key],
                        "Checks": checks})
        return out

    def tags(self, name: str) -> set[str]:
        """The union of the tags of a service's instances (``/v1/catalog/services``)."""
        found: set[str] = set()
        for key in self.by_name.get(name, ()):
            found.update(t for t in self.services[key].get("Tags") or () if isinstance(t, str))
        return found


def changed_names(old: CatalogSnapshot, new: CatalogSnapshot) -> set[str]:
    """Service names whose instances, checks or nodes differ between two snapshots."""
    names: set[str] = set()
    for key, _ in old.service_marks.items() ^ new.service_marks.items():
        for snap in (old, new):
            if key in snap.service_marks:
                names.add(snap.service_marks[key][0])
    touched_nodes = {n for n, _ in old.node_marks.items() ^ new.node_marks.items()}
    for (node, _), (_, sid, _) in old.check_marks.items() ^ new.check_marks.items():
        if not sid:
            touched_nodes.add(node)
            continue
        for snap in (old, new):
            mark = snap.service_marks.get((node, sid))
            if mark is not None:
                names.add(mark[0])
    for node in touched_nodes:
        names.update(old.names_on_node.get(node, ()))
        names.update(new.names_on_node.get(node, ()))
    return names


def nodes_changed(old: CatalogSnapshot, new: CatalogSnapshot) -> bool:
    """True when a node was added, removed, or changed its address or metadata."""
    return old.node_marks != new.node_marks
