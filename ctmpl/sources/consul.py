"""Consul as a service catalog: health-checked services, catalog services and nodes, and KV.

``ConsulCatalog(config)`` reads ``config.consul`` (address, token, basic auth, TLS, connection
budget) and the shared ``max_stale`` / ``block_query_wait``. Each query is a Consul blocking
query: index 0 answers at once, otherwise ``index=<n>&wait=<block_query_wait>s``. With
``max_stale > 0`` reads are ``stale``; an answer whose ``X-Consul-LastContact`` exceeds
``max_stale`` is asked again without ``stale``, as consul-template does. Retry and backoff live
in ``ctmpl.watch``; the HTTP client and its error messages in ``ctmpl.sources.consul_http``; how
many connections the queries share in ``ctmpl.sources.consul_budget``.

Lost connections. After a transport failure (the connection ``epoch`` moves) every query
re-reads without an index before blocking again, and long-polls use short waits for a while,
because a restarted agent's indexes start over and one equal to an old index would otherwise
hold a watch for a whole ``wait``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Generic, TypeVar

from ctmpl.config.model import CatalogConfig
from ctmpl.logs import TRACE
from ctmpl.model import (
    Check,
    Instance,
    InvalidEntry,
    KVPair,
    Node,
    ServiceSummary,
    clean_addresses,
    clean_meta,
    clean_tag_list,
    clean_tags,
    clean_text,
    is_safe_name,
    is_valid_address,
    make_instance,
    sort_instances,
)
from ctmpl.sources.base import Query, ServiceSpec, kv_path, relative_pairs
from ctmpl.sources.consul_budget import Budget, Kind, Mode, Params
from ctmpl.sources.consul_http import AgentHTTP, Answer, decode_value, parse_address

__all__ = ["ConsulCatalog", "ConsulQuery", "aggregated_status", "parse_address"]

log = logging.getLogger(__name__)

_READ_TIMEOUT = 15.0  # a non-blocking read
_TIMEOUT_MARGIN = 5.0  # on top of wait + wait/16 for a blocking read
_RECOVERY_WAIT = 1.0  # the wait of a long-poll soon after a lost connection
_NODE_MAINT = "_node_maintenance"
_SERVICE_MAINT = "_service_maintenance:"

T = TypeVar("T")


def aggregated_status(checks: Iterable[Mapping[str, Any]]) -> str:
    """consul-template's HealthChecks.AggregatedStatus: maintenance > critical > warning."""
    seen: set[str] = set()
    for check in checks:
        check_id = str(check.get("CheckID", ""))
        if check_id == _NODE_MAINT or check_id.startswith(_SERVICE_MAINT):
            seen.add("maintenance")
        else:
            status = check.get("Status")
            seen.add(status if status in ("passing", "warning") else "critical")
    for status in ("maintenance", "critical", "warning"):
        if status in seen:
            return status
    return "passing"


class _Seen(Generic[T]):
    """Results per distinct raw entry, so a bad entry is warned about once, not every poll."""

    def __init__(self) -> None:
        self._old: dict[str, T] = {}
        self._new: dict[str, T] = {}

    def get(self, raw: Any, build: Callable[[], T]) -> T:
        key = json.dumps(raw, sort_keys=True, default=str)
        if key not in self._new:
            self._new[key] = self._old[key] if key in self._old else build()
        return self._new[key]

    def done(self) -> None:
        self._old, self._new = self._new, {}


@dataclass(eq=False)
class ConsulQuery:
    """One Consul blocking query; ``decode`` turns the JSON body (None on 404) into data."""

    catalog: ConsulCatalog
    key: str  # stable identifier naming every argument, e.g. health.service(web|passing)
    path: str
    params: Params
    decode: Callable[[Any], object]
    kind: Kind
    dc: str = ""
    epoch: int = -1  # connection epoch of the last answer (see ConsulCatalog.epoch)

    async def fetch(self, index: int) -> tuple[object, int]:
        """(data, X-Consul-Index), blocking while nothing changed past ``index``."""
        try:
            answer = await self.catalog.blocking_get(self, index)
        except BaseException:
            # Any failure, not only a lost connection: an agent that is shutting down may
            # answer 500 before it goes, and comes back with its indexes started over.
            self.epoch = -1
            raise
        self.epoch = answer.epoch
        return self.decode(answer.body), answer.index


class ConsulCatalog:
    """The Consul backend of the ``Catalog`` protocol (see the module docstring)."""

    name = "consul"

    def __init__(self, config: CatalogConfig, *, max_connections: int | None = None) -> None:
        consul = config.consul
        self._config = config
        self._budget = Budget(self, max_connections or consul.max_connections)
        self.max_connections = self._budget.max_connections
        self._http = AgentHTTP(consul, self.max_connections)
        self.hostport = self._http.hostport

    @property
    def settings(self) -> CatalogConfig:
        """The catalog configuration this client was built from."""
        return self._config

    @property
    def epoch(self) -> int:
        """Bumped by every transport failure: the agent may have restarted."""
        return self._http.epoch

    # -- the Catalog protocol --------------------------------------------------------

    def services(self) -> Query:
        """``/v1/catalog/services``: every service name with the union of its tags."""
        key = "catalog.services"
        seen: _Seen[ServiceSummary | None] = _Seen()

        def decode(body: Any) -> tuple[ServiceSummary, ...]:
            out = [seen.get([n, t], partial(_summary, key, n, t))
                   for n, t in sorted((body or {}).items())]
            seen.done()
            return tuple(s for s in out if s is not None)

        return ConsulQuery(self, key, "/v1/catalog/services", (), decode, "catalog")

    def service(self, spec: ServiceSpec) -> Query:
        """``/v1/health/service/<name>``: instances filtered by tag and status."""
        key = f"health.service({spec.key})"
        params: list[tuple[str, str]] = []
        if spec.tag:
            params.append(("tag", spec.tag))
        if spec.statuses == ("passing",):
            params.append(("passing", "1"))
        if spec.dc:
            params.append(("dc", spec.dc))
        if spec.near:
            params.append(("near", spec.near))
        seen: _Seen[Instance | None] = _Seen()

        def decode(body: Any) -> tuple[Instance, ...]:
            out = [seen.get(e, partial(_instance, key, e)) for e in body or []]
            seen.done()
            return sort_instances(i for i in out if i is not None and spec.accepts(i))

        path = f"/v1/health/service/{spec.name}"
        return ConsulQuery(self, key, path, tuple(params), decode, "catalog", spec.dc)

    def nodes(self) -> Query:
        """``/v1/catalog/nodes``: every node of the datacenter."""
        key = "catalog.nodes"
        seen: _Seen[Node | None] = _Seen()

        def decode(body: Any) -> tuple[Node, ...]:
            out = [seen.get(n, partial(_node, key, n)) for n in body or []]
            seen.done()
            return tuple(sorted((n for n in out if n is not None), key=lambda n: n.Node))

        return ConsulQuery(self, key, "/v1/catalog/nodes", (), decode, "catalog")

    def key(self, path: str) -> Query:
        """``/v1/kv/<path>``: one key, None while it does not exist."""
        path = kv_path("key", path)

        def decode(body: Any) -> KVPair | None:
            if not body:
                return None
            return KVPair(Key=path, Path=path, Value=decode_value(body[0].get("Value")),
                          Flags=_flags(body[0]))

        return ConsulQuery(self, f"kv.get({path})", f"/v1/kv/{path}", (), decode, "kv")

    def tree(self, prefix: str) -> Query:
        """``/v1/kv/<prefix>/?recurse``: every key below a prefix, relative to it."""
        prefix = kv_path("tree", prefix, allow_empty=True)

        def decode(body: Any) -> tuple[KVPair, ...]:
            items = ((str(e.get("Key", "")), decode_value(e.get("Value"))) for e in body or [])
            flags = {str(e.get("Key", "")): _flags(e) for e in body or [] if e.get("Flags")}
            return relative_pairs(prefix, items, flags)

        path = f"/v1/kv/{prefix}/" if prefix else "/v1/kv/"
        return ConsulQuery(self, f"kv.tree({prefix})", path, (("recurse", ""),), decode, "kv")

    async def aclose(self) -> None:
        """Stop the pulses and close every connection."""
        await self._budget.aclose()
        await self._http.aclose()

    # -- blocking queries -----------------------------------------------------------

    async def blocking_get(self, query: ConsulQuery, index: int) -> Answer:
        """One fetch: a long-poll when a slot is free, else quick reads paced by a pulse."""
        key, path, params = query.key, query.path, query.params
        if index <= 0 or query.epoch != self.epoch:
            # After a lost connection the index may come from an agent that has restarted
            # since (a dev agent starts again near 0): long-polling with it would hang.
            return await self.stale_get(key, path, params, 0, "quick")
        with self._budget.long_poll() as granted:
            if granted:
                return await self.stale_get(key, path, params, index, "long")
        read = partial(self.stale_get, key, path, params, 0, "quick")
        wait = self._config.block_query_wait
        return await self._budget.paced(read, query.kind, query.dc, index, wait)

    async def stale_get(
        self, key: str, path: str, params: Params, index: int, mode: Mode
    ) -> Answer:
        """A read that allows stale answers, repeated consistently when they are too old."""
        max_stale = self._config.max_stale
        if max_stale <= 0:
            return await self.request(key, path, params, index, mode)
        answer = await self.request(key, path, (*params, ("stale", "")), index, mode)
        if answer.last_contact > max_stale:
            log.log(TRACE, "%s: last contact %.3fs exceeds max_stale, asking the leader",
                    key, answer.last_contact)
            answer = await self.request(key, path, params, index, mode)
        return answer

    async def request(
        self, key: str, path: str, params: Params, index: int, mode: Mode
    ) -> Answer:
        """GET ``path``, blocking past ``index`` when it is positive, through ``mode``'s slots."""
        query = list(params)
        wait = 0.0
        if index > 0:
            wait = self._config.block_query_wait
            if self._http.recovering():
                wait = min(wait, _RECOVERY_WAIT)
            query += [("index", str(index)), ("wait", f"{max(1, round(wait * 1000))}ms")]
        timeout = wait + wait / 16 + _TIMEOUT_MARGIN if wait else _READ_TIMEOUT
        if mode == "quick":
            async with self._budget.quick:
                return await self._http.get(key, path, query, timeout)
        if index <= 0:
            return await self._http.get(key, path, query, timeout)
        answer = await self._http.unless_lost(self._http.get(key, path, query, timeout))
        if answer is None:
            log.log(TRACE, "%s: another request lost the agent; reading afresh", key)
            return await self._http.get(key, path, list(params), _READ_TIMEOUT)
        return answer


def _flags(entry: Mapping[str, Any]) -> int:
    flags = entry.get("Flags")
    return flags if isinstance(flags, int) and not isinstance(flags, bool) else 0


def _summary(key: str, name: Any, tags: Any) -> ServiceSummary | None:
    if not isinstance(name, str) or not is_safe_name(name):
        log.warning("%s: service name %r is not a safe identifier (dropped)", key, name)
        return None
    return ServiceSummary(Name=name, Tags=clean_tags(f"{key} {name}", tags or []))


def _instance(key: str, entry: Mapping[str, Any]) -> Instance | None:
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
        log.warning("%s (dropped)", err)
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


def _node(key: str, raw: Mapping[str, Any]) -> Node | None:
    name, address = raw.get("Node"), raw.get("Address")
    if not isinstance(name, str) or not is_safe_name(name):
        log.warning("%s: node name %r is not a safe identifier (dropped)", key, name)
        return None
    if not isinstance(address, str) or not is_valid_address(address):
        log.warning("%s %s: address %r is not an IP address or hostname (dropped)", key, name,
                    address)
        return None
    return Node(
        Node=name,
        Address=address,
        ID=str(raw.get("ID") or ""),
        Datacenter=str(raw.get("Datacenter") or ""),
        Meta=clean_meta(f"{key} {name}", raw.get("Meta")),
        TaggedAddresses=clean_addresses(f"{key} {name}", raw.get("TaggedAddresses")),
    )
