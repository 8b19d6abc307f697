"""Consul answers into ctmpl's typed data, dropping (and warning once about) bad entries.

Catalog data is untrusted input: a name that is not a safe identifier, an address that is
neither an IP nor a hostname, or a port out of range drops that one entry with a warning
naming it, given once (``ctmpl.model.warn_once``, as every catalog does); everything else
is kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Generic, TypeVar

from ctmpl.model import (
    Check,
    Instance,
    InvalidEntry,
    Node,
    ServiceSummary,
    Status,
    clean_addresses,
    clean_meta,
    clean_tag_list,
    clean_tags,
    clean_text,
    is_safe_name,
    is_valid_address,
    make_instance,
    warn_once,
)

_NODE_MAINT = "_node_maintenance"
_SERVICE_MAINT = "_service_maintenance:"
_WORST_FIRST: tuple[Status, ...] = ("maintenance", "critical", "warning")

T = TypeVar("T")


def aggregated_status(checks: Iterable[Mapping[str, Any]]) -> Status:
    """consul-template's HealthChecks.AggregatedStatus: maintenance > critical > warning."""
    seen: set[Status] = set()
    for check in checks:
        check_id = str(check.get("CheckID", ""))
        if check_id == _NODE_MAINT or check_id.startswith(_SERVICE_MAINT):
            seen.add("maintenance")
        else:
            status = check.get("Status")
            seen.add("passing" if status == "passing" else
                     "warning" if status == "warning" else "critical")
    for worst in _WORST_FIRST:
        if worst in seen:
            return worst
    return "passing"


class DecodeCache(Generic[T]):
    """Decoded results per distinct raw entry, kept from one answer to the next: an entry
    that did not change is not decoded again."""

    def __init__(self) -> None:
        self._old: dict[str, T] = {}
        self._new: dict[str, T] = {}

    def get(self, raw: Any, build: Callable[[], T]) -> T:
        """The result of ``build()`` for ``raw``, or the one the last answer had for it."""
        key = json.dumps(raw, sort_keys=True, default=str)
        if key not in self._new:
            self._new[key] = self._old[key] if key in self._old else build()
        return self._new[key]

    def done(self) -> None:
        """The answer is decoded: keep only its entries for the next one."""
        self._old, self._new = self._new, {}


def summary(key: str, name: Any, tags: Any) -> ServiceSummary | None:
    if not isinstance(name, str) or not is_safe_name(name):
        warn_once(f"{key}: service name {name!r} is not a safe identifier (dropped)")
        return None
    return ServiceSummary(Name=name, Tags=clean_tags(f"{key} {name}", tags or []))


def instance(key: str, entry: Mapping[str, Any]) -> Instance | None:
    svc = entry.get("Service") or {}
    node = entry.get("Node") or {}
    try:
        inst = make_instance(
            f"{key} {svc.get('ID')}",
            name=svc.get("Service", ""),
            id=svc.get("ID", ""),
            address=svc.get("Address") or node.get("Address", ""),
            port=svc.get("Port"),
            tags=svc.get("Tags") or (),
            meta=svc.get("Meta"),
            node=node.get("Node", ""),
            node_address=node.get("Address", ""),
            status=aggregated_status(entry.get("Checks") or ()),
        )
    except InvalidEntry as err:
        warn_once(f"{err} (dropped)")
        return None
    where = f"{key} {svc.get('ID')}"
    return replace(
        inst,
        NodeID=str(node.get("ID") or ""),
        NodeMeta=clean_meta(where, node.get("Meta")),
        NodeTaggedAddresses=clean_addresses(where, node.get("TaggedAddresses")),
        Checks=tuple(_check(where, c) for c in entry.get("Checks") or ()),
        TagList=clean_tag_list(where, svc.get("Tags") or ()),
    )


def rechecked(key: str, inst: Instance, old: Sequence[Mapping[str, Any]],
              checks: Sequence[Mapping[str, Any]]) -> Instance:
    """``inst``, decoded by ``instance`` from the same node and service and the checks
    ``old``, with the checks ``checks``: only the checks that are not among ``old`` (the
    same objects) are decoded, and the status they give."""
    where = f"{key} {inst.ID}"
    same = len(old) == len(inst.Checks)
    known = dict(zip(map(id, old), inst.Checks, strict=True)) if same else {}
    return replace(inst, Status=aggregated_status(checks), Checks=tuple(
        known.get(id(raw)) or _check(where, raw) for raw in checks))


def _check(where: str, raw: Mapping[str, Any]) -> Check:
    return Check(
        CheckID=clean_text(where, "check id", raw.get("CheckID")),
        Name=clean_text(where, "check name", raw.get("Name")),
        Status=clean_text(where, "check status", raw.get("Status")),
        Notes=clean_text(where, "check notes", raw.get("Notes")),
        Output=clean_text(where, "check output", raw.get("Output")),
        ServiceID=clean_text(where, "check service id", raw.get("ServiceID")),
        ServiceName=clean_text(where, "check service name", raw.get("ServiceName")),
        Node=clean_text(where, "check node", raw.get("Node")),
    )


def flags(entry: Mapping[str, Any]) -> int:
    """A KV entry's Consul flags (0 when absent or not an integer)."""
    value = entry.get("Flags")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def node(key: str, raw: Mapping[str, Any]) -> Node | None:
    name, address = raw.get("Node"), raw.get("Address")
    if not isinstance(name, str) or not is_safe_name(name):
        warn_once(f"{key}: node name {name!r} is not a safe identifier (dropped)")
        return None
    if not isinstance(address, str) or not is_valid_address(address):
        warn_once(f"{key} {name}: address {address!r} is not an IP address or hostname (dropped)")
        return None
    return Node(
        Node=name,
        Address=address,
        ID=str(raw.get("ID") or ""),
        Datacenter=str(raw.get("Datacenter") or ""),
        Meta=clean_meta(f"{key} {name}", raw.get("Meta")),
        TaggedAddresses=clean_addresses(f"{key} {name}", raw.get("TaggedAddresses")),
    )
