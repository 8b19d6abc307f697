"""Consul as a service catalog: health-checked services, catalog services and nodes, and KV.

``ConsulCatalog(config)`` reads ``config.consul`` (address, token, basic auth, TLS,
``max_connections``) and the shared ``max_stale`` / ``block_query_wait``.

Cost follows the change, not the catalog. Queries do not long-poll one by one: a feed
(``ctmpl.sources.consul_feed``) long-polls catalog-wide endpoints and tells each query when
its service changed; a query whose service did not change sends nothing. With
``/v1/internal/ui/nodes`` available, the feed's answer already holds every instance with its
checks, so a change costs one request however many services a template reads; otherwise the
changed services are read again with ``/v1/health/service/<name>``. KV queries follow a
long-poll on ``/v1/kv/?keys&separator=/`` the same way. Queries for another datacenter
(``@dc``) read again every ``OTHER_DC_POLL`` seconds. Every request goes through one pool of
at most ``max_connections`` connections (default 5).

Freshness. The feed's long-polls may be ``stale`` when ``max_stale`` is set (an answer whose
``X-Consul-LastContact`` exceeds it is asked again without ``stale``, as consul-template
does); the reads a feed's change sets off are never stale, so they cannot return data older
than the catalog-wide answer that set them off.

Errors. A failed long-poll retries that request only (``ctmpl.sources.consul_poll``); a
failed read raises ``SourceError`` to its watch, which retries it with backoff. Nothing else
is read again.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from ctmpl.change_signal import ANY, wait_changed
from ctmpl.config.model import CatalogConfig
from ctmpl.logs import TRACE
from ctmpl.model import Instance, KVPair, Node, ServiceSummary, sort_instances
from ctmpl.sources import consul_decode as decode
from ctmpl.sources.base import Query, ServiceSpec, kv_path, relative_pairs
from ctmpl.sources.consul_decode import DecodeCache, aggregated_status
from ctmpl.sources.consul_feed import (
    NODES,
    SERVICES,
    CatalogFeed,
    Feed,
    FeedMode,
    KeyFeed,
)
from ctmpl.sources.consul_http import AgentHTTP, Answer, decode_value, parse_address
from ctmpl.sources.consul_poll import Params
from ctmpl.sources.consul_ui_catalog import InstanceKey, UICatalog
from ctmpl.watch import versioned_index

__all__ = ["ConsulCatalog", "ConsulQuery", "aggregated_status", "parse_address"]


log = logging.getLogger(__name__)

OTHER_DC_POLL = 5.0  # seconds between reads of a query for another datacenter
_READ_TIMEOUT = 15.0  # a non-blocking read
_TIMEOUT_MARGIN = 5.0  # on top of wait + wait/16 for a long-poll

FeedKind = Literal["catalog", "kv", "none"]
Refresh = Callable[[], Awaitable[tuple[object, int]]]


@dataclass(eq=False)
class ConsulQuery:
    """One watched question: ``refresh()`` reads (or computes) its data; ``fetch`` calls it
    again only when the feed's stamp for ``stamp_name`` has moved.

    The index ``fetch`` returns is the query's own version, moved each time its data
    changes: Consul's indexes start over when an agent restarts and may then repeat an
    old value for different data, and the feeds already deal with them. When a feed sees
    the agent restart, every index it serves drops below the previous ones, so watches see
    the reset as they would from Consul (the shrink guard distrusts drops after one).
    """

    catalog: ConsulCatalog
    key: str  # stable identifier naming every argument, e.g. health.service(web|passing)
    stamp_name: str
    refresh: Refresh
    feed_kind: FeedKind
    _stamp: int = -1
    _read_at: float = 0.0
    _version: int = 0
    _data: object = field(default=None, repr=False)

    async def fetch(self, index: int) -> tuple[object, int]:
        """(data, version), waiting up to ``block_query_wait`` while nothing changed past
        ``index``; index 0 answers at once."""
        feed = self.catalog.feed(self.feed_kind)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.catalog.wait
        while True:
            changed = None
            if feed is not None:
                await feed.ready(self.key)
                changed = feed.changed(self.stamp_name)
                stamp = feed.stamp(self.stamp_name)
            else:
                stamp = self._stamp + (loop.time() - self._read_at >= OTHER_DC_POLL)
            if self._version == 0 or index <= 0 or stamp != self._stamp:
                data, _ = await self.refresh()
                if self._version == 0 or data != self._data:
                    self._data, self._version = data, self._version + 1
                self._stamp, self._read_at = stamp, loop.time()
            current = versioned_index(self._version, feed.restarts if feed else 0)
            if index != current:
                return self._data, current
            remaining = deadline - loop.time()
            if remaining <= 0:
                return self._data, current
            if changed is None:  # another datacenter: read again every OTHER_DC_POLL seconds
                await asyncio.sleep(min(remaining, OTHER_DC_POLL))
            else:
                await wait_changed(changed, remaining)


class ConsulCatalog:
    """The Consul backend of the ``Catalog`` protocol (see the module docstring)."""

    name = "consul"

    def __init__(
        self,
        config: CatalogConfig,
        *,
        max_connections: int | None = None,
        feed_mode: FeedMode = "auto",
    ) -> None:
        consul = config.consul
        self._config = config
        self.max_connections = max_connections or consul.max_connections
        self._http = AgentHTTP(consul, self.max_connections)
        self.wait = config.block_query_wait
        self._feed_mode: FeedMode = feed_mode
        self._feeds: dict[str, Feed] = {}
        self._decoded: dict[str, dict[InstanceKey, Decoded]] = {}  # by name, lower case

    @property
    def settings(self) -> CatalogConfig:
        """The catalog configuration this client was built from."""
        return self._config

    def plain_query(
        self, key: str, path: str, decode: Callable[[Any], object], feed_kind: FeedKind,
        stamp_name: str = ANY,
    ) -> ConsulQuery:
        """A query that reads ``path`` again whenever its feed reports a change to
        ``stamp_name`` (default: any change of that feed)."""

        async def refresh() -> tuple[object, int]:
            answer = await self.read(key, path, ())
            return decode(answer.body), answer.index

        return ConsulQuery(self, key, stamp_name, refresh, feed_kind)

    def feed(self, kind: FeedKind) -> Feed | None:
        """The feed of ``kind``, started on first use (None: queries that poll on a timer)."""
        if kind == "none":
            return None
        if kind not in self._feeds:
            stale: Params = (("stale", ""),) if self._config.max_stale > 0 else ()
            retry = self._config.consul.retry
            self._feeds[kind] = (
                CatalogFeed(self.long_poll, retry, stale, self._feed_mode)
                if kind == "catalog" else KeyFeed(self.long_poll, retry, stale))
        return self._feeds[kind]

    @property
    def catalog_feed(self) -> CatalogFeed:
        """The feed of the local datacenter's catalog."""
        feed = self.feed("catalog")
        assert isinstance(feed, CatalogFeed)
        return feed

    # -- the Catalog protocol --------------------------------------------------------

    def services(self) -> Query:
        """``/v1/catalog/services``: every service name with the union of its tags."""
        key = "catalog.services"
        decoded: DecodeCache[ServiceSummary | None] = DecodeCache()
        known: dict[str, tuple[frozenset[str], ServiceSummary | None]] = {}

        async def refresh() -> tuple[object, int]:
            feed = self.catalog_feed
            if feed.mode == "ui":
                return feed.cached(SERVICES, partial(_summaries, key, known)), 0
            index, body = feed.classic_body("services")
            out = [decoded.get([n, t], partial(decode.summary, key, n, t))
                   for n, t in sorted((body or {}).items())]
            decoded.done()
            return tuple(s for s in out if s is not None), index

        return ConsulQuery(self, key, SERVICES, refresh, "catalog")

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
        decoded: DecodeCache[Instance | None] = DecodeCache()
        path = f"/v1/health/service/{spec.name}"

        def pick(instances: Any) -> tuple[Instance, ...]:
            return sort_instances(i for i in instances if i is not None and spec.accepts(i))

        async def read() -> tuple[object, int]:
            answer = await self.read(key, path, tuple(params))
            out = [decoded.get(e, partial(decode.instance, key, e)) for e in answer.body or []]
            decoded.done()
            return pick(out), answer.index

        async def refresh() -> tuple[object, int]:
            feed = self.catalog_feed
            if feed.mode != "ui":
                return await read()
            built = feed.cached(spec.name, partial(_instances, key, spec.name, self._decoded))
            return pick(built), 0

        if spec.dc:
            return ConsulQuery(self, key, spec.name, read, "none")
        return ConsulQuery(self, key, spec.name, refresh, "catalog")

    def nodes(self) -> Query:
        """``/v1/catalog/nodes``: every node of the datacenter."""
        key = "catalog.nodes"
        decoded: DecodeCache[Node | None] = DecodeCache()

        async def refresh() -> tuple[object, int]:
            feed = self.catalog_feed
            if feed.mode == "classic":
                index, body = feed.classic_body("nodes")
            else:
                answer = await self.read(key, "/v1/catalog/nodes", ())
                index, body = answer.index, answer.body
            out = [decoded.get(n, partial(decode.node, key, n)) for n in body or []]
            decoded.done()
            return tuple(sorted((n for n in out if n is not None), key=lambda n: n.Node)), index

        return ConsulQuery(self, key, NODES, refresh, "catalog")

    def key(self, path: str) -> Query:
        """``/v1/kv/<path>``: one key, None while it does not exist."""
        path = kv_path("key", path)
        key = f"kv.get({path})"

        async def refresh() -> tuple[object, int]:
            answer = await self.read(key, f"/v1/kv/{path}", ())
            body = answer.body
            if not body:
                return None, answer.index
            pair = KVPair(Key=path, Path=path, Value=decode_value(body[0].get("Value")),
                          Flags=decode.flags(body[0]))
            return pair, answer.index

        return ConsulQuery(self, key, "", refresh, "kv")

    def tree(self, prefix: str) -> Query:
        """``/v1/kv/<prefix>/?recurse``: every key below a prefix, relative to it."""
        prefix = kv_path("tree", prefix, allow_empty=True)
        key = f"kv.tree({prefix})"
        path = f"/v1/kv/{prefix}/" if prefix else "/v1/kv/"

        async def refresh() -> tuple[object, int]:
            answer = await self.read(key, path, (("recurse", ""),))
            body = answer.body or []
            items = ((str(e.get("Key", "")), decode_value(e.get("Value"))) for e in body)
            flags = {str(e.get("Key", "")): decode.flags(e) for e in body if e.get("Flags")}
            return relative_pairs(prefix, items, flags), answer.index

        return ConsulQuery(self, key, "", refresh, "kv")

    async def aclose(self) -> None:
        """Stop the feeds and close every connection."""
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            await feed.aclose()
        await self._http.aclose()

    # -- requests ----------------------------------------------------------------------

    async def read(self, key: str, path: str, params: Params) -> Answer:
        """A plain (leader) read: never older than a catalog-wide answer before it."""
        return await self._http.get(key, path, list(params), _READ_TIMEOUT)

    async def long_poll(self, key: str, path: str, params: Params, index: int) -> Answer:
        """GET ``path`` blocking past ``index`` (when positive) for up to ``block_query_wait``;
        a ``stale`` answer older than ``max_stale`` is asked again without ``stale``."""
        query = list(params)
        timeout = _READ_TIMEOUT
        if index > 0:
            query += [("index", str(index)), ("wait", f"{max(1, round(self.wait * 1000))}ms")]
            timeout = self.wait + self.wait / 16 + _TIMEOUT_MARGIN
        answer = await self._http.get(key, path, query, timeout)
        if ("stale", "") in params and answer.last_contact > self._config.max_stale:
            log.log(TRACE, "%s: last contact %.3fs exceeds max_stale, asking the leader",
                    key, answer.last_contact)
            fresh = [p for p in query if p != ("stale", "")]
            answer = await self._http.get(key, path, fresh, timeout)
        return answer


# An instance as last decoded: (node fields, service, checks, the instance); the first three
# are the catalog's own objects, the same while they do not change (``keyed_entries``).
Decoded = tuple[Any, Any, list[Any], Instance | None]


def _instances(key: str, name: str, held: dict[str, dict[InstanceKey, Decoded]],
               catalog: UICatalog) -> tuple[Any, ...]:
    """Every instance of ``name`` in the UI catalog, bad entries dropped with a warning.

    An instance whose node, service and checks are the objects it was decoded from last
    time is not decoded again (a node failure changes one instance of each name on it);
    one whose node and service are, but not its checks (a flap, maintenance, a node
    check), has only its checks and status decoded again."""
    last = held.pop(name.lower(), {})
    decoded: dict[InstanceKey, Decoded] = {}
    for ikey, entry in catalog.keyed_entries(name):
        node, service, checks = entry["Node"], entry["Service"], entry["Checks"]
        prev = last.get(ikey)
        if prev is None or prev[0] is not node or prev[1] is not service:
            decoded[ikey] = (node, service, checks, decode.instance(key, entry))
        elif len(prev[2]) == len(checks) and all(map(operator.is_, prev[2], checks)):
            decoded[ikey] = prev
        elif prev[3] is None:  # dropped: its checks do not make it valid
            decoded[ikey] = (node, service, checks, None)
        else:
            decoded[ikey] = (node, service, checks, decode.rechecked(key, prev[3], prev[2], checks))
    if decoded:
        held[name.lower()] = decoded
    return tuple(d[3] for d in decoded.values())


def _summaries(
    key: str, known: dict[str, tuple[frozenset[str], ServiceSummary | None]],
    catalog: UICatalog,
) -> tuple[ServiceSummary, ...]:
    """Every name with its tags; a name whose tags did not change keeps its summary (the
    same object: comparing the tuple with the last one then costs little)."""
    fresh: dict[str, tuple[frozenset[str], ServiceSummary | None]] = {}
    for name in sorted(catalog.names()):
        tags = catalog.tags(name)
        held = known.get(name)
        fresh[name] = held if held is not None and held[0] == tags else (
            tags, decode.summary(key, name, sorted(tags)))
    known.clear()
    known.update(fresh)
    return tuple(s for _, s in fresh.values() if s is not None)
