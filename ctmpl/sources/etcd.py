"""etcd v3 as a service catalog: registrator/docker-register and dockreg layouts, plus raw KV.

``EtcdCatalog(config)`` reads ``config.etcd`` (endpoints, prefix, TLS, credentials).
Service queries read the layouts described in ``registrations`` under the catalog
prefix through one watched cache of it, indexed by service (``etcd_index``): a change
costs work for its own service only, and wakes only the queries whose data it changed.
``key()``/``tree()`` read raw etcd keys (not under the prefix), each range with its own
shared cache. A query's index is the etcd revision of the last change to its own data.

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
from dataclasses import dataclass

from aetcd import rpc, utils

from ctmpl import tasks
from ctmpl.change_signal import ANY, ChangeSignal, wait_changed
from ctmpl.config.model import CatalogConfig
from ctmpl.errors import QueryError, SourceError
from ctmpl.model import KVPair, sort_instances
from ctmpl.sources.base import (
    UNPINNED,
    ConstantQuery,
    Pin,
    Query,
    ServiceSpec,
    filter_instances,
    kv_path,
    relative_pairs,
)
from ctmpl.sources.etcd_cache import RangeCache, RangeView
from ctmpl.sources.etcd_client import EtcdConnection, EtcdUnavailable
from ctmpl.sources.etcd_index import SUMMARY, Answers, IndexView, ServiceIndex
from ctmpl.sources.registrations import EntryParser, etcd_prefix, key_base

log = logging.getLogger(__name__)

Compute = Callable[["Pinned | None"], "tuple[object, int] | None"]

# etcd has no nodes; this constant index makes a nodes() watch block quietly.


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


@dataclass(frozen=True)
class Pinned:
    """What one render reads: the service index and every range as they were at its start."""

    services: IndexView | None
    ranges: Mapping[int, RangeView]  # id(cache) -> its view


class EtcdQuery:
    """One query: ``answer`` gives (data, version) now or in a pinned state; ``fetch``
    waits on ``signal.changed(name)`` while the version stays at the caller's index."""

    def __init__(
        self, key: str, cache: RangeCache, wait: float, *, signal: ChangeSignal, name: str,
        answer: Compute,
    ) -> None:
        self._key = key
        self.cache = cache
        self._wait = wait
        self._signal = signal
        self._name = name
        self._answer = answer

    def read(self, pinned: Pinned) -> object:
        """This query's data in a pinned state (UNPINNED when that has none)."""
        answer = self._answer(pinned)
        return UNPINNED if answer is None else answer[0]

    @property
    def key(self) -> str:
        """Stable identifier, e.g. ``etcd.service(calico.web|passing)``."""
        return self._key

    async def fetch(self, index: int) -> tuple[object, int]:
        """(data, version); blocks while ``index`` is current, up to block_query_wait."""
        self.cache.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        while True:
            try:
                await self.cache.established()
            except EtcdUnavailable as exc:
                raise SourceError(f"{self._key}: {exc}") from exc
            event = self._signal.changed(self._name)
            answer = self._answer(None)
            assert answer is not None, "an established watch has read its range"
            remaining = deadline - loop.time()
            if answer[1] != index or remaining <= 0:
                return answer
            await wait_changed(event, remaining)


class EtcdCatalog:
    """The ``Catalog`` protocol over etcd v3 (see the module docstring for the layouts)."""

    name = "etcd"

    def __init__(self, config: CatalogConfig) -> None:
        self._config = config
        self._prefix = etcd_prefix(config.etcd.prefix)
        self._conn = EtcdConnection(config.etcd)
        self._caches: dict[tuple[bytes, bytes], RangeCache] = {}
        self._index: ServiceIndex | None = None
        self._answers = Answers()
        self._variant_check: asyncio.Task[None] | None = None

    def _range_empty(self) -> None:
        """The catalog prefix holds no keys: look next door once (see below)."""
        if self._variant_check is None and slash_variant(self._prefix):
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to schedule
                asyncio.get_running_loop()
                self._variant_check = tasks.spawn(self._warn_if_variant_has_keys(),
                                                  name="etcd prefix check")

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
        key = "etcd.services"

        def answer(view: IndexView) -> tuple[object, int]:
            summary = view.summary
            return self._answers.get(key, summary.seq, summary.version, lambda: summary.data)

        return self._service_query(key, SUMMARY, answer)

    def service(self, spec: ServiceSpec) -> Query:
        """Instances of one service; ``~near`` is accepted and ignored (no node distances)."""
        if spec.dc:
            raise QueryError(f"service({spec.key!r}): etcd catalogs have no datacenters")
        key = f"etcd.service({spec.key})"

        def answer(view: IndexView) -> tuple[object, int]:
            state = view.service(spec.name)
            return self._answers.get(
                key, state.seq, state.version,
                lambda: sort_instances(filter_instances(spec, state.instances)),
            )

        return self._service_query(key, spec.name, answer)

    def nodes(self) -> Query:
        """Always an empty tuple: etcd has no nodes."""
        return ConstantQuery("etcd.nodes", (), self._config.block_query_wait)

    def key(self, path: str) -> Query:
        """One raw etcd key (not under the catalog prefix) as a KVPair, or None."""
        path = kv_path("key", path)
        raw_key = path.encode()

        def view(values: RangeView) -> object:
            raw = values.get(raw_key)
            return None if raw is None else KVPair(Key=path, Path=path, Value=_text(raw))

        return self._raw_query(f"etcd.key({path})", raw_key, b"", view)

    def tree(self, prefix: str) -> Query:
        """Every raw etcd key below ``prefix`` as sorted KVPairs."""
        prefix = kv_path("tree", prefix, allow_empty=True)

        def view(values: RangeView) -> object:
            return relative_pairs(prefix, ((_text(k), _text(v)) for k, v in values.items()))

        return self._raw_query(f"etcd.tree({prefix})", *_prefix_range(prefix), view)

    def pin(self) -> Pin:
        """Answer queries from the catalog as it is now: one revision per range per render.

        Service queries all read the prefix's index, so they see one revision together;
        ranges of raw keys are watched by their own streams and may be a moment apart.
        """
        index = self._index
        pinned = Pinned(
            services=index.view() if index is not None and index.ready else None,
            ranges={id(c): c.view() for c in self._caches.values() if c.index},
        )

        def read(query: Query) -> object:
            return query.read(pinned) if isinstance(query, EtcdQuery) else UNPINNED

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

    def _cache(self, start: bytes, end: bytes) -> RangeCache:
        cache = self._caches.get((start, end))
        if cache is None:
            cache = self._caches[start, end] = RangeCache(self._conn, start, end)
        return cache

    def _service_query(
        self, key: str, name: str, answer: Callable[[IndexView], tuple[object, int]]
    ) -> Query:
        cache = self._cache(*_prefix_range(self._prefix))
        index = self._index
        if index is None:
            parser = EntryParser(self._prefix)
            index = self._index = ServiceIndex(cache, parser, self._range_empty)

        def compute(pinned: Pinned | None) -> tuple[object, int] | None:
            if pinned is None:
                return answer(index.view(frozen=False))
            return None if pinned.services is None else answer(pinned.services)

        wait = self._config.block_query_wait
        return EtcdQuery(key, cache, wait, signal=index.signal, name=name, answer=compute)

    def _raw_query(
        self, key: str, start: bytes, end: bytes, view: Callable[[RangeView], object]
    ) -> Query:
        cache = self._cache(start, end)

        def compute(pinned: Pinned | None) -> tuple[object, int] | None:
            values = cache.view(frozen=False) if pinned is None else pinned.ranges.get(id(cache))
            if values is None:
                return None
            return self._answers.get(key, values.seq, values.index, lambda: view(values))

        wait = self._config.block_query_wait
        return EtcdQuery(key, cache, wait, signal=cache.signal, name=ANY, answer=compute)
