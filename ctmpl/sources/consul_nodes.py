"""Consul queries that only the Go-template functions use: one node with its services
(``/v1/catalog/node/<name>``), the datacenters (``/v1/catalog/datacenters``) and a key read
verbatim, trailing ``/`` included (a folder key), for ``keyExists``.

Node data passes the same source-boundary checks as every other catalog answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ctmpl.model import (
    InvalidEntry,
    KVPair,
    NodeService,
    NodeServices,
    clean_meta,
    clean_tag_list,
    is_safe_name,
    is_valid_address,
    parse_port,
    warn_once,
)
from ctmpl.sources.consul import ConsulCatalog, ConsulQuery
from ctmpl.sources.consul_decode import node as decode_node
from ctmpl.sources.consul_http import decode_value

log = logging.getLogger(__name__)


def node_query(catalog: ConsulCatalog, name: str) -> ConsulQuery:
    """``catalog.node(name)``: the node and its services; an unknown node has Node None."""
    key = f"catalog.node({name})"

    def decode(body: Any) -> NodeServices:
        if not isinstance(body, Mapping) or not body.get("Node"):
            return NodeServices(Node=None)
        node = decode_node(key, body["Node"])
        raw = body.get("Services") or {}
        services = [s for s in (_service(key, v) for v in raw.values()) if s is not None]
        services.sort(key=lambda s: (s.Service, s.ID))
        return NodeServices(Node=node, Services=tuple(services))

    path = f"/v1/catalog/node/{quote(name, safe='')}"
    return catalog.plain_query(key, path, decode, "catalog")


@dataclass(eq=False)
class DatacentersQuery:
    """``/v1/catalog/datacenters``: every known datacenter, sorted.

    Consul cannot block on this endpoint (it sends no index), so it is read at once and
    then re-read every ``block_query_wait``, as consul-template polls it.
    """

    catalog: ConsulCatalog
    key: str = "catalog.datacenters"

    async def fetch(self, index: int) -> tuple[object, int]:
        """(names, generation): the first read at once, later ones after a pause."""
        if index > 0:
            await asyncio.sleep(self.catalog.settings.block_query_wait)
        answer = await self.catalog.read(self.key, "/v1/catalog/datacenters", ())
        names = [d for d in answer.body or [] if isinstance(d, str) and is_safe_name(d)]
        return tuple(sorted(names)), index + 1


@dataclass(eq=False)
class LocalNodeQuery:
    """``node`` without a name: the agent's own node (``/v1/agent/self``), then as named."""

    catalog: ConsulCatalog
    key: str = "catalog.node()"
    name: str = ""
    _query: ConsulQuery | None = None

    async def fetch(self, index: int) -> tuple[object, int]:
        """The agent's node and its services, blocking like ``node_query``."""
        if self._query is None:
            answer = await self.catalog.read(self.key, "/v1/agent/self", ())
            config = (answer.body or {}).get("Config") or {}
            name = config.get("NodeName")
            if not isinstance(name, str) or not is_safe_name(name):
                log.warning("%s: the agent's node name %r is unusable", self.key, name)
                return NodeServices(Node=None), max(index, 1)
            self.name = name
            self._query = node_query(self.catalog, self.name)
        return await self._query.fetch(index)


def datacenters_query(catalog: ConsulCatalog) -> DatacentersQuery:
    """``catalog.datacenters``: every known datacenter name, sorted."""
    return DatacentersQuery(catalog)


def raw_key_query(catalog: ConsulCatalog, path: str) -> ConsulQuery:
    """``kv.get(path)`` without normalizing a trailing ``/`` (folder keys exist in Consul)."""

    def decode(body: Any) -> KVPair | None:
        if not body:
            return None
        return KVPair(Key=path, Path=path, Value=decode_value(body[0].get("Value")))

    return catalog.plain_query(f"kv.get({path})", f"/v1/kv/{quote(path)}", decode, "kv")


def _service(key: str, raw: Any) -> NodeService | None:
    if not isinstance(raw, Mapping):
        return None
    name, sid, address = raw.get("Service"), raw.get("ID"), raw.get("Address") or ""
    where = f"{key} {sid}"
    try:
        if not isinstance(name, str) or not is_safe_name(name):
            raise InvalidEntry(f"{where}: service name {name!r} is not a safe identifier")
        if not isinstance(sid, str) or not is_safe_name(sid):
            raise InvalidEntry(f"{where}: instance id {sid!r} is not a safe identifier")
        if not isinstance(address, str) or (address and not is_valid_address(address)):
            raise InvalidEntry(f"{where}: address {address!r} is not an IP address or hostname")
        port = parse_port(raw.get("Port"))
    except InvalidEntry as err:
        warn_once(f"{err} (dropped)")
        return None
    return NodeService(ID=sid, Service=name, Address=address, Port=port,
                       Tags=clean_tag_list(where, raw.get("Tags") or ()),
                       Meta=clean_meta(where, raw.get("Meta")))
