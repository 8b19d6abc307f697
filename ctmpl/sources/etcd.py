"""etcd v3 as a service catalog: registrator/docker-register and dockreg layouts, plus raw KV.

``EtcdCatalog(config)`` reads ``config.etcd`` (endpoints, prefix, TLS, credentials).
Service queries read the layouts described in ``registrations`` under the catalog
prefix and share one watched cache of it; ``key()``/``tree()`` read raw etcd keys
(not under the prefix), each range with its own shared cache. Indexes are etcd
revisions: the revision of the last change to the watched range.

Dead instances leave when their lease expires: etcd deletes the key and the watch's
delete event removes the instance. A lost connection raises SourceError from the
blocked fetch; ``ctmpl.watch`` backs off and keeps the last good data, and the next
fetch reconnects and resumes the watch where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from aetcd import rpc, utils

from ctmpl.config.model import CatalogConfig
from ctmpl.errors import QueryError, SourceError
from ctmpl.model import Instance, KVPair, sort_instances, summarize
from ctmpl.sources.base import (
    UNPINNED,
    Pin,
    Query,
    ServiceSpec,
    filter_instances,
    kv_path,
    relative_pairs,
)
from ctmpl.sources.etcd_cache import RangeCache
from ctmpl.sources.etcd_client import EtcdConnection, EtcdUnavailable
from ctmpl.sources.registrations import EntryParser, etcd_prefix, key_base

log = logging.getLogger(__name__)

View = Callable[[Mapping[bytes, bytes], int], object]

# etcd has no nodes; this constant index makes a nodes() watch block quietly.
_NODES_INDEX = 1


def _prefix_range(prefix: str) -> tuple[bytes, bytes]:
    """The key range below ``prefix`` (``/services`` → ``/services/…``); all keys for ""."""
    if not prefix:
        return b"\0", b"\0"
    start = key_base(prefix).encode()
    return start, utils.prefix_range_end(start)


def slash_variant(prefix: str) -> str:
    """The same prefix with the leading slash toggled ("" when there is no such prefix)."""
    variant = prefix[1:] if prefix.startswith("/") else f"/{prefix}" if prefix else ""
    return "" if variant in ("", "/") else variant


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class EtcdQuery:
    """One query over a shared range cache: ``view`` turns the raw values into data."""

    def __init__(self, key: str, cache: RangeCache, wait: float, view: View) -> None:
        self._key = key
        self.cache = cache
        self._wait = wait
        self._view = view

    def read(self, values: Mapping[bytes, bytes], revision: int) -> object:
        """This query's data in a pinned version of its range."""
        return self._view(values, revision)

    @property
    def key(self) -> str:
        """Stable identifier, e.g. ``etcd.service(calico.web|passing)``."""
        return self._key

    async def fetch(self, index: int) -> tuple[object, int]:
        """(data, revision); blocks while ``index`` is current, up to block_query_wait."""
        try:
            values, revision = await self.cache.wait(index, self._wait)
        except EtcdUnavailable as exc:
            raise SourceError(f"{self._key}: {exc}") from exc
        return self._view(values, revision), revision


class NodesQuery:
    """``nodes()``: always empty, since etcd registrations carry no node."""

    def __init__(self, wait: float) -> None:
        self._wait = wait

    @property
    def key(self) -> str:
        """Stable identifier."""
        return "etcd.nodes"

    async def fetch(self, index: int) -> tuple[object, int]:
        """``()`` at once for index 0; otherwise block for block_query_wait (nothing changes)."""
        if index == _NODES_INDEX:
            await asyncio.sleep(self._wait)
        return (), _NODES_INDEX


class EtcdCatalog:
    """The ``Catalog`` protocol over etcd v3 (see the module docstring for the layouts)."""

    name = "etcd"

    def __init__(self, config: CatalogConfig) -> None:
        self._config = config
        self._prefix = etcd_prefix(config.etcd.prefix)
        self._conn = EtcdConnection(config.etcd)
        self._caches: dict[tuple[bytes, bytes], RangeCache] = {}
        self._entries = EntryParser(self._prefix)
        self._variant_check: asyncio.Task[None] | None = None

    def _instances(self, values: Mapping[bytes, bytes]) -> list[Instance]:
        """Registrations in the catalog range; an empty range triggers the slash check once."""
        if not values and self._variant_check is None and slash_variant(self._prefix):
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to schedule
                self._variant_check = asyncio.get_running_loop().create_task(
                    self._warn_if_variant_has_keys()
                )
        return self._entries.instances(values)

    async def _warn_if_variant_has_keys(self) -> None:
        """One WARNING when the prefix is empty but its slash/no-slash twin holds keys.

        Registration tools disagree on the leading slash (dockreg writes ``/service/…``,
        ``etcdctl put services/…`` none): an empty catalog with keys next door is almost
        always that mistake, and would otherwise render no instances without a word.
        """
        variant = slash_variant(self._prefix)
        start, end = _prefix_range(variant)
        try:
            session = await self._conn.open()
        except EtcdUnavailable:
            return
        failed = False
        try:
            reply = await session.kv.Range(
                rpc.RangeRequest(key=start, range_end=end, count_only=True),
                timeout=self._conn.timeout, metadata=session.metadata,
            )
        except Exception:  # a best-effort hint: the watch reports connection problems
            failed = True
            return
        finally:
            await self._conn.release(session, failed=failed)
        if reply.count:
            log.warning(
                "etcd: prefix %r holds no keys, but %r holds %d: keys are read exactly as "
                "written, a leading '/' included; set the prefix to %r (etcd { prefix = … }) "
                "or register under %r", self._prefix, key_base(variant), reply.count,
                variant, key_base(self._prefix),
            )

    def services(self) -> Query:
        """Every service name under the prefix with the union of its tags."""
        return self._query("etcd.services", *_prefix_range(self._prefix), self._services_view)

    def service(self, spec: ServiceSpec) -> Query:
        """Instances of one service; ``~near`` is accepted and ignored (no node distances)."""
        if spec.dc:
            raise QueryError(f"service({spec.key!r}): etcd catalogs have no datacenters")

        def view(values: Mapping[bytes, bytes], revision: int) -> object:
            instances = self._instances(values)
            return sort_instances(filter_instances(spec, instances))

        return self._query(f"etcd.service({spec.key})", *_prefix_range(self._prefix), view)

    def nodes(self) -> Query:
        """Always an empty tuple: etcd has no nodes."""
        return NodesQuery(self._config.block_query_wait)

    def key(self, path: str) -> Query:
        """One raw etcd key (not under the catalog prefix) as a KVPair, or None."""
        path = kv_path("key", path)

        def view(values: Mapping[bytes, bytes], revision: int) -> object:
            raw = values.get(path.encode())
            return None if raw is None else KVPair(Key=path, Path=path, Value=_text(raw))

        return self._query(f"etcd.key({path})", path.encode(), b"", view)

    def tree(self, prefix: str) -> Query:
        """Every raw etcd key below ``prefix`` as sorted KVPairs."""
        prefix = kv_path("tree", prefix, allow_empty=True)

        def view(values: Mapping[bytes, bytes], revision: int) -> object:
            return relative_pairs(prefix, ((_text(k), _text(v)) for k, v in values.items()))

        return self._query(f"etcd.tree({prefix})", *_prefix_range(prefix), view)

    def pin(self) -> Pin:
        """Answer queries from the ranges as they are now: one revision per range per render.

        Service queries all read the prefix's range, so they see one revision together;
        ranges of raw keys are watched by their own streams and may be a moment apart.
        """
        frozen = {id(c): c.current() for c in self._caches.values()}

        def read(query: Query) -> object:
            if not isinstance(query, EtcdQuery):
                return UNPINNED
            pinned = frozen.get(id(query.cache))
            return UNPINNED if pinned is None else query.read(*pinned)

        return read

    async def aclose(self) -> None:
        """Cancel the background watches and close the channel."""
        if self._variant_check is not None:
            self._variant_check.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._variant_check
        caches = list(self._caches.values())
        self._caches.clear()
        await asyncio.gather(*(cache.aclose() for cache in caches))
        await self._conn.aclose()

    def _services_view(self, values: Mapping[bytes, bytes], revision: int) -> object:
        return summarize(self._instances(values))

    def _query(self, key: str, start: bytes, end: bytes, view: View) -> Query:
        cache = self._caches.get((start, end))
        if cache is None:
            cache = self._caches[start, end] = RangeCache(self._conn, start, end)
        return EtcdQuery(key, cache, self._config.block_query_wait, view)
