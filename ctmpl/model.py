"""Typed catalog data with consul-template's field names, and validation at the source boundary.

Catalog data is untrusted: a registration whose name, address or port could inject
proxy configuration is dropped with one warning; bad tags and metadata are dropped
one by one, so the rest of the instance and all other instances keep rendering.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

Status = Literal["passing", "warning", "critical", "maintenance"]
STATUSES: tuple[Status, ...] = ("passing", "warning", "critical", "maintenance")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_TAG = re.compile(r"^[A-Za-z0-9_.:=/+@,-]{1,255}$")
_META_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_UNSAFE_VALUE = re.compile(r"[\x00-\x1f\x7f;{}\"'\\`$]")


class InvalidEntry(ValueError):
    """A catalog entry that must not reach a template."""


@dataclass(frozen=True)
class Check:
    """One health check of an instance (node-level checks have no ServiceID)."""

    CheckID: str
    Name: str = ""
    Status: str = "critical"
    Notes: str = ""
    Output: str = ""
    ServiceID: str = ""
    ServiceName: str = ""
    Node: str = ""


@dataclass(frozen=True)
class Instance:
    """One instance of a service, as ``service("name")`` returns it.

    ``Tags`` are sorted and de-duplicated; ``TagList`` keeps duplicates as registered
    (sorted), which is what consul-template's ``.Tags`` shows. The ``Node*`` fields and
    ``Checks`` come from catalogs that know nodes and checks (Consul).
    """

    Name: str
    ID: str
    Address: str
    Port: int
    Tags: tuple[str, ...] = ()
    Meta: Mapping[str, str] = field(default_factory=dict)
    Node: str = ""
    NodeAddress: str = ""
    Status: Status = "passing"
    NodeID: str = ""
    NodeMeta: Mapping[str, str] = field(default_factory=dict)
    NodeTaggedAddresses: Mapping[str, str] = field(default_factory=dict)
    Checks: tuple[Check, ...] = ()
    TagList: tuple[str, ...] | None = None

    @property
    def ServiceMeta(self) -> Mapping[str, str]:
        """consul-template's name for ``Meta``."""
        return self.Meta


@dataclass(frozen=True)
class ServiceSummary:
    """One entry of ``services()``: a service name and the union of its tags."""

    Name: str
    Tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Node:
    """One entry of ``nodes()``."""

    Node: str
    Address: str
    ID: str = ""
    Datacenter: str = ""
    Meta: Mapping[str, str] = field(default_factory=dict)
    TaggedAddresses: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeService:
    """One service registered on a node, as ``node("name")`` lists it (no address fallback)."""

    ID: str
    Service: str
    Address: str
    Port: int
    Tags: tuple[str, ...] = ()
    Meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeServices:
    """``node("name")``: the node (None when unknown) and its services."""

    Node: Node | None
    Services: tuple[NodeService, ...] = ()


@dataclass(frozen=True)
class KVPair:
    """One key: ``Path`` is the full key, ``Key`` the part below the queried prefix."""

    Key: str
    Path: str
    Value: str
    Flags: int = 0


def is_safe_name(name: str) -> bool:
    """True when ``name`` may be used as a proxy identifier (upstream, backend)."""
    return bool(_NAME.fullmatch(name))


@functools.lru_cache(maxsize=1 << 16)
def is_valid_address(address: str) -> bool:
    """True for an IPv4/IPv6 address or an RFC 1123 hostname (remembered: a node's
    addresses are checked again for every instance on it).

    An IPv6 address with a zone (``fe80::1%eth0``) is not: neither nginx nor HAProxy
    accepts one in a server line, so a single such registration would fail the check of
    the whole config.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return bool(_HOSTNAME.fullmatch(address))
    return getattr(ip, "scope_id", None) is None


def parse_port(value: Any) -> int:
    """Return ``value`` as a port in 1..65535 or raise InvalidEntry."""
    if isinstance(value, bool):
        raise InvalidEntry(f"port {value!r} is not a number")
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise InvalidEntry(f"port {value!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise InvalidEntry(f"port {port} is out of range 1-65535")
    return port


_WARNED: set[str] = set()
_WARNED_MAX = 10_000


def warn_once(message: str) -> None:
    """Log a dropped-entry warning once, not on every poll that sees the same entry."""
    if message in _WARNED:
        return
    if len(_WARNED) >= _WARNED_MAX:
        _WARNED.clear()
    _WARNED.add(message)
    log.warning("%s", message)


def is_safe_id(value: Any) -> bool:
    """True for an instance ID that may reach a template."""
    return isinstance(value, str) and bool(value) and not _UNSAFE_VALUE.search(value) \
        and " " not in value


def is_safe_tag(tag: Any) -> bool:
    """True for a tag that is kept (see ``clean_tags``)."""
    return isinstance(tag, str) and bool(_TAG.fullmatch(tag))


def is_safe_meta(key: Any, value: Any) -> bool:
    """True for a metadata pair that is kept (see ``clean_meta``)."""
    safe_key = isinstance(key, str) and _META_KEY.fullmatch(key)
    return bool(safe_key) and isinstance(value, str) and not _UNSAFE_VALUE.search(value)


def clean_tags(where: str, tags: Iterable[Any]) -> tuple[str, ...]:
    """Sorted, de-duplicated tags; unsafe ones are dropped with a warning."""
    return tuple(sorted(set(clean_tag_list(where, tags))))


def clean_tag_list(where: str, tags: Iterable[Any]) -> tuple[str, ...]:
    """Sorted tags with duplicates kept; unsafe ones are dropped with a warning."""
    kept: list[str] = []
    for tag in tags:
        if is_safe_tag(tag):
            kept.append(tag)
        else:
            warn_once(f"{where}: dropped unsafe tag {tag!r}")
    return tuple(sorted(kept))


def clean_text(where: str, what: str, value: Any) -> str:
    """Free text (a check's output) with unsafe characters: dropped to "" with a warning."""
    if not isinstance(value, str):
        return ""
    if _UNSAFE_VALUE.search(value):
        warn_once(f"{where}: dropped unsafe {what} {value!r}")
        return ""
    return value


def clean_addresses(where: str, addresses: Mapping[Any, Any] | None) -> dict[str, str]:
    """Tagged addresses: keys like meta keys, values IP addresses or hostnames."""
    kept: dict[str, str] = {}
    for key, value in sorted((addresses or {}).items(), key=lambda kv: str(kv[0])):
        if isinstance(key, str) and _META_KEY.fullmatch(key) and isinstance(value, str) \
                and value and is_valid_address(value):
            kept[key] = value
        else:
            warn_once(f"{where}: dropped unsafe tagged address {key!r}={value!r}")
    return kept


def clean_meta(where: str, meta: Mapping[Any, Any] | None) -> dict[str, str]:
    """Metadata with unsafe keys or values dropped with a warning."""
    kept: dict[str, str] = {}
    for key, value in sorted((meta or {}).items(), key=lambda kv: str(kv[0])):
        if is_safe_meta(key, value):
            kept[key] = value
            continue
        warn_once(f"{where}: dropped unsafe meta {key!r}={value!r}")
    return kept


def make_instance(
    where: str,
    *,
    name: str,
    id: str,
    address: Any,
    port: Any,
    tags: Iterable[Any] = (),
    meta: Mapping[Any, Any] | None = None,
    node: str = "",
    node_address: str = "",
    status: str = "passing",
) -> Instance:
    """Build a validated Instance; ``where`` names the entry in messages (key, file, query).

    Raises InvalidEntry when the name, ID, address, port or status is unusable.
    """
    if not isinstance(name, str) or not is_safe_name(name):
        raise InvalidEntry(f"{where}: service name {name!r} is not a safe identifier")
    if not is_safe_id(id):
        raise InvalidEntry(f"{where}: instance id {id!r} is not a safe identifier")
    if not isinstance(address, str) or not address or not is_valid_address(address):
        raise InvalidEntry(f"{where}: address {address!r} is not an IP address or hostname")
    try:
        port_number = parse_port(port)
    except InvalidEntry as exc:
        raise InvalidEntry(f"{where}: {exc}") from None
    if status not in STATUSES:
        raise InvalidEntry(f"{where}: status {status!r} is not one of {', '.join(STATUSES)}")
    if node and not is_safe_name(node):
        raise InvalidEntry(f"{where}: node {node!r} is not a safe identifier")
    if node_address and not is_valid_address(node_address):
        node_address = ""
    return Instance(
        Name=name,
        ID=id,
        Address=address,
        Port=port_number,
        Tags=clean_tags(where, tags),
        Meta=clean_meta(where, meta),
        Node=node,
        NodeAddress=node_address,
        Status=status,
    )


def sort_instances(instances: Iterable[Instance]) -> tuple[Instance, ...]:
    """Instances in the documented order (by node, then ID), one per identity.

    An instance's identity is its service name, node and ID — Consul's node + service ID;
    for etcd, whose registrations have no node, that is the key. The same identity reported
    twice (a registration repeated in a file catalog, a registry answering it twice) is
    one instance: the first in sorted order is kept and the repeat is warned about once.
    """
    ordered = sorted(instances, key=lambda i: (i.Node, i.ID, i.Address, i.Port))
    kept: dict[tuple[str, str, str], Instance] = {}
    for inst in ordered:
        identity = (inst.Name, inst.Node, inst.ID)
        first = kept.setdefault(identity, inst)
        if first is not inst:
            node = f"node {inst.Node} " if inst.Node else ""
            warn_once(f"service {inst.Name}: {node}instance {inst.ID} is listed more than "
                      f"once; keeping {first.Address}:{first.Port}")
    return tuple(kept.values())


def summarize(instances: Iterable[Instance]) -> tuple[ServiceSummary, ...]:
    """``services()`` data from instances: one entry per name with the union of tags."""
    tags: dict[str, set[str]] = {}
    for inst in instances:
        tags.setdefault(inst.Name, set()).update(inst.Tags)
    return tuple(ServiceSummary(Name=n, Tags=tuple(sorted(t))) for n, t in sorted(tags.items()))
