"""The Go structs consul-template 0.19 hands to templates, built from ctmpl's typed data.

Field names and order are consul-template's (they show in ``toJSON`` and ``%v``):
health entries (``service``), catalog snippets (``services``), nodes, a node with its
services (``node``), KV pairs (``ls``/``tree``) and the per-render ``scratch``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, ClassVar

from ctmpl.gotemplate.calls import GoError, GoFunc
from ctmpl.gotemplate.values import (
    MISSING,
    NIL,
    GoList,
    GoMap,
    GoStruct,
    NilPtr,
    StrMap,
    json_list,
)
from ctmpl.model import Check, Instance, KVPair, Node, NodeService, NodeServices, ServiceSummary


class ServiceTags(GoList):
    """dependency.ServiceTags: a named []string."""

    go_type = "dependency.ServiceTags"


def _tags(tags: Any) -> GoList:
    return ServiceTags(tags)


class HealthCheck(GoStruct):
    """api.HealthCheck."""

    go_type = "*api.HealthCheck"
    go_fields = ("Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID",
                 "ServiceName")

    def __init__(self, check: Check) -> None:
        self._check = check
        for name in self.go_fields:
            setattr(self, name, getattr(check, name))

    def reuse_source(self) -> object:
        """The check shown."""
        return self._check


def _from_instance(name: str) -> property:
    return property(lambda self: getattr(self._inst, name), doc=f"The instance's {name}.")


class HealthService(GoStruct):
    """dependency.HealthService: one entry of ``service``, a view of a ctmpl Instance."""

    go_type = "*dependency.HealthService"
    go_fields = ("Node", "NodeID", "NodeAddress", "NodeTaggedAddresses", "NodeMeta",
                 "Address", "ID", "Name", "Tags", "Checks", "Status", "Port")
    __slots__ = ("_inst",)

    def __init__(self, inst: Instance) -> None:
        self._inst = inst

    def reuse_key(self) -> Hashable:
        """The instance: its node and ID."""
        return ("go:instance", self._inst.Node, self._inst.ID)

    def reuse_source(self) -> object:
        """The instance shown."""
        return self._inst

    Node = _from_instance("Node")
    NodeID = _from_instance("NodeID")
    NodeAddress = _from_instance("NodeAddress")
    Address = _from_instance("Address")
    ID = _from_instance("ID")
    Name = _from_instance("Name")
    Status = _from_instance("Status")
    Port = _from_instance("Port")

    @property
    def NodeTaggedAddresses(self) -> StrMap:
        """The node's tagged addresses."""
        return StrMap(self._inst.NodeTaggedAddresses)

    @property
    def NodeMeta(self) -> StrMap:
        """The node's metadata."""
        return StrMap(self._inst.NodeMeta)

    @property
    def Tags(self) -> GoList:
        """Sorted tags, duplicates kept."""
        inst = self._inst
        return ServiceTags(inst.TagList if inst.TagList is not None else inst.Tags)

    @property
    def Checks(self) -> GoList:
        """Node-level and service checks."""
        return GoList.of("api.HealthChecks", [HealthCheck(c) for c in self._inst.Checks])


class CatalogSnippet(GoStruct):
    """dependency.CatalogSnippet: one entry of ``services``."""

    go_type = "*dependency.CatalogSnippet"
    go_fields = ("Name", "Tags")

    def __init__(self, summary: ServiceSummary) -> None:
        self._summary = summary
        self.Name = summary.Name
        self.Tags = _tags(summary.Tags)

    def reuse_key(self) -> Hashable:
        """The service name."""
        return ("go:service", self.Name)

    def reuse_source(self) -> object:
        """The service summary shown."""
        return self._summary


class NodeStruct(GoStruct):
    """dependency.Node: one entry of ``nodes``."""

    go_type = "*dependency.Node"
    go_fields = ("ID", "Node", "Address", "Datacenter", "TaggedAddresses", "Meta")

    def __init__(self, node: Node) -> None:
        self._node = node
        self.ID = node.ID
        self.Node = node.Node
        self.Address = node.Address
        self.Datacenter = node.Datacenter
        self.TaggedAddresses = StrMap(node.TaggedAddresses)
        self.Meta = StrMap(node.Meta)

    def reuse_key(self) -> Hashable:
        """The node name."""
        return ("go:node", self.Node)

    def reuse_source(self) -> object:
        """The node shown."""
        return self._node


class CatalogNodeService(GoStruct):
    """dependency.CatalogNodeService: a service of ``node``'s ``.Services``."""

    go_type = "*dependency.CatalogNodeService"
    go_fields = ("ID", "Service", "Tags", "Meta", "Port", "Address", "EnableTagOverride")

    def __init__(self, svc: NodeService) -> None:
        self._svc = svc
        self.ID = svc.ID
        self.Service = svc.Service
        self.Tags = _tags(svc.Tags)
        self.Meta = StrMap(svc.Meta)
        self.Port = svc.Port
        self.Address = svc.Address
        self.EnableTagOverride = False

    def reuse_key(self) -> Hashable:
        """The service instance's ID."""
        return ("go:node-service", self.ID)

    def reuse_source(self) -> object:
        """The node's service shown."""
        return self._svc


class CatalogNode(GoStruct):
    """dependency.CatalogNode: what ``node`` returns."""

    go_type = "*dependency.CatalogNode"
    go_fields = ("Node", "Services")

    def __init__(self, data: NodeServices) -> None:
        self._data = data
        self.Node: Any = NodeStruct(data.Node) if data.Node else NilPtr("*dependency.Node")
        self.Services = GoList.of("[]*dependency.CatalogNodeService",
                                  [CatalogNodeService(s) for s in data.Services])

    def reuse_source(self) -> object:
        """The node and services shown."""
        return self._data


class KeyPair(GoStruct):
    """dependency.KeyPair: one entry of ``ls`` and ``tree``."""

    go_type = "*dependency.KeyPair"
    go_fields = ("Path", "Key", "Value", "CreateIndex", "ModifyIndex", "LockIndex", "Flags",
                 "Session")

    def __init__(self, pair: KVPair, key: str | None = None) -> None:
        self._pair = pair
        self.Path = pair.Path
        self.Key = pair.Key if key is None else key
        self.Value = pair.Value
        self.CreateIndex = self.ModifyIndex = self.LockIndex = 0
        self.Flags = pair.Flags
        self.Session = ""

    def reuse_key(self) -> Hashable:
        """The key."""
        return ("go:key", self.Key)

    def reuse_source(self) -> object:
        """The pair shown, and the key as shown (``tree`` shows it relative)."""
        return (self._pair, self.Key)


class Scratch(GoStruct):
    """The per-render scratch pad: ``scratch.Set "k" v``, ``scratch.Get "k"``, …"""

    go_type = "*template.Scratch"
    go_fields = ()
    go_methods: ClassVar[dict[str, GoFunc]] = {}

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def key(self, k: str) -> bool:
        return k in self.values

    def get(self, k: str) -> Any:
        return self.values.get(k, NIL)

    def set(self, k: str, v: Any) -> str:
        self.values[k] = v
        return ""

    def set_x(self, k: str, v: Any) -> str:
        self.values.setdefault(k, v)
        return ""

    def map_set(self, k: str, mk: str, v: Any, only_new: bool = False) -> str:
        target = self.values.setdefault(k, GoMap.of("map[string]interface {}", NIL))
        if not isinstance(target, GoMap):
            raise GoError(f"scratch.map: key {k!r} is not a map")
        if not only_new or mk not in target:
            target[mk] = v
        return ""

    def map_set_x(self, k: str, mk: str, v: Any) -> str:
        return self.map_set(k, mk, v, only_new=True)

    def map_values(self, k: str) -> GoList:
        target = self.values.get(k)
        if target is None:
            return json_list()
        if not isinstance(target, GoMap):
            raise GoError(f"scratch.map: key {k!r} is not a map")
        return json_list(target[key] for key in sorted(target))


Scratch.go_methods = {
    "Key": GoFunc(Scratch.key, ("string",)),
    "Get": GoFunc(Scratch.get, ("string",)),
    "Set": GoFunc(Scratch.set, ("string", "any")),
    "SetX": GoFunc(Scratch.set_x, ("string", "any")),
    "MapSet": GoFunc(Scratch.map_set, ("string", "string", "any")),
    "MapSetX": GoFunc(Scratch.map_set_x, ("string", "string", "any")),
    "MapValues": GoFunc(Scratch.map_values, ("string",)),
}


def by_tag(items: Any) -> GoMap:
    """byTag: tag → entries carrying it (an entry repeats for a repeated tag)."""
    result = GoMap.of("map[string][]interface {}", json_list())
    if items is NIL or items is MISSING or items is None:
        return result
    if not isinstance(items, GoList) or items.go_type not in (
            "[]*dependency.HealthService", "[]*dependency.CatalogSnippet"):
        raise GoError(f"byTag: wrong argument type {getattr(items, 'go_type', type(items))}")
    groups: dict[str, list[Any]] = {}
    for item in items:
        for tag in item.Tags:
            groups.setdefault(tag, []).append(item)
    for tag, group in groups.items():
        result[tag] = json_list(group)
    return result


def by_key(pairs: Any) -> GoMap:
    """byKey: top-level key → {rest of the key → pair}."""
    result = GoMap.of("map[string]map[string]*dependency.KeyPair",
                      GoMap.of("map[string]*dependency.KeyPair", NilPtr("*dependency.KeyPair")))
    for pair in pairs:
        top, _, rest = pair.Key.partition("/")
        if not rest:
            continue
        inner = result.setdefault(top, GoMap.of("map[string]*dependency.KeyPair",
                                                NilPtr("*dependency.KeyPair")))
        copy = KeyPair(KVPair(Key=rest, Path=pair.Path, Value=pair.Value, Flags=pair.Flags))
        inner[rest] = copy
    return result


def explode(pairs: Any) -> GoMap:
    """explode: a nested map from keys split at ``/``."""
    from ctmpl.gotemplate.values import JSONMap

    result = JSONMap()
    for pair in pairs:
        target, parts = result, pair.Key.split("/")
        for n, part in enumerate(parts[:-1]):
            nested = target.setdefault(part, JSONMap())
            if not isinstance(nested, JSONMap):
                prefix = "/".join(parts[n:])
                raise GoError(f"explode: not a map: {pair.Key!r}: {part!r} already has value "
                              f"{nested!r} ({prefix})")
            target = nested
        if parts[-1]:
            target[parts[-1]] = pair.Value
    return result


def services_list(data: Any) -> GoList:
    """``services`` data as Go values."""
    return GoList.of("[]*dependency.CatalogSnippet", [CatalogSnippet(s) for s in data])


def health_list(data: Any) -> GoList:
    """``service`` data as Go values."""
    return GoList.of("[]*dependency.HealthService", map(HealthService, data))


def nodes_list(data: Any) -> GoList:
    """``nodes`` data as Go values."""
    return GoList.of("[]*dependency.Node", [NodeStruct(n) for n in data])


def pairs_list(pairs: Any) -> GoList:
    """KV pairs as Go values."""
    return GoList.of("[]*dependency.KeyPair", [KeyPair(p) for p in pairs])

