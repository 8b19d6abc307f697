"""The etcd catalog's work per change follows the change, not the catalog (issue 11).

3,000 services × 3 instances in a real etcd, watched as the shipped nginx template watches
them: ``services()`` and ``service(name, tag="calico")`` for every tagged service, through
``ctmpl.watch``. Each change must parse only the keys it touched, recompute only the
answers of its own service and wake only that service's queries — counted, not timed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from ctmpl.sources.base import service_by_name
from ctmpl.sources.etcd import EtcdCatalog
from ctmpl.watch import Watcher, WatchPolicy
from tests.daemon import poll_until
from tests.fixtures_etcd import EtcdServer
from tests.test_etcd import make_catalog

SERVICES = 3000
INSTANCES = 3


def name(n: int) -> str:
    return f"svc-{n:05d}"


def value(n: int, i: int, *, port: int = 8080, status: str = "passing",
          tags: tuple[str, ...] = ()) -> str:
    base = ("calico",) if n % 2 == 0 else ("internal",)
    return json.dumps({"Address": f"10.{i + 1}.{n // 250}.{n % 250 + 1}", "Port": port,
                       "Tags": [*base, *tags], "Status": status})


def load(etcd: EtcdServer, services: int) -> int:
    """Every instance of ``services`` services, in transactions of etcd's 128-op limit."""
    items = {f"services/{name(n)}/{i}": value(n, i)
             for n in range(services) for i in range(INSTANCES)}
    pairs = list(items.items())
    for start in range(0, len(pairs), 128):
        etcd.put_all(dict(pairs[start:start + 128]))
    return len(items)


class Counts:
    """The catalog's work counters and the watch's emits since the last ``take``."""

    def __init__(self, catalog: EtcdCatalog, emitted: dict[str, int]) -> None:
        self._catalog = catalog
        self._emitted = emitted
        self._last = self._now()

    def _now(self) -> dict[str, Any]:
        index, answers = self._catalog._index, self._catalog._answers
        assert index is not None
        return {"parsed": index.parsed, "computed": answers.computed,
                "woken": index.signal.woken, "emitted": dict(self._emitted)}

    def take(self) -> dict[str, Any]:
        now, last = self._now(), self._last
        self._last = now
        emitted = {k: v - last["emitted"].get(k, 0) for k, v in now["emitted"].items()}
        return {"parsed": now["parsed"] - last["parsed"],
                "computed": now["computed"] - last["computed"],
                "woken": now["woken"] - last["woken"],
                "emitted": {k: v for k, v in emitted.items() if v}}


async def test_one_change_costs_its_own_service(etcd: EtcdServer) -> None:
    keys = load(etcd, SERVICES)
    catalog = make_catalog(etcd.endpoint, wait=300.0)
    emitted: dict[str, int] = {}

    def emit(key: str, data: object) -> None:
        emitted[key] = emitted.get(key, 0) + 1

    def fail(key: str, exc: BaseException) -> None:
        raise AssertionError(f"{key}: {exc}")

    watcher = Watcher(WatchPolicy(), emit, fail)
    tagged = [name(n) for n in range(0, SERVICES, 2)]
    queries = {n: catalog.service(service_by_name(n, "calico")) for n in tagged}
    try:
        watcher.add(catalog.services())
        for query in queries.values():
            watcher.add(query)
        await poll_until(lambda: len(emitted) == len(tagged) + 1)
        counts = Counts(catalog, emitted)
        index = catalog._index
        assert index is not None
        assert index.parsed == keys  # each key parsed once, however many queries read it

        async def change(apply: Callable[[], int], emits: set[str]) -> dict[str, Any]:
            revision = await asyncio.to_thread(apply)
            cache = next(iter(catalog._caches.values()))
            await poll_until(lambda: cache.current_through >= revision)
            await poll_until(lambda: all(emitted.get(k, 0) > counts._last["emitted"].get(k, 0)
                                   for k in emits))
            return counts.take()

        # "woken" counts the names whose waiting queries a change woke: at most the changed
        # service's (a query still pausing between two fetches is not waiting, hence <=).
        web = queries[name(10)].key
        moved = await change(lambda: etcd.put(f"services/{name(10)}/1", value(10, 1, port=9)),
                             {web})
        assert moved == {"parsed": 1, "computed": 1, "woken": moved["woken"], "emitted": {web: 1}}
        assert moved["woken"] <= 1
        flap = await change(lambda: etcd.put(f"services/{name(10)}/2",
                                             value(10, 2, status="critical")), {web})
        assert flap == {"parsed": 1, "computed": 1, "woken": flap["woken"], "emitted": {web: 1}}
        assert flap["woken"] <= 1
        added = await change(lambda: etcd.put(f"services/{name(10)}/9", value(10, 9)), {web})
        assert added == {"parsed": 1, "computed": 1, "woken": added["woken"], "emitted": {web: 1}}
        assert added["woken"] <= 1
        gone = await change(lambda: etcd.delete(f"services/{name(10)}/9"), {web})
        assert gone == {"parsed": 0, "computed": 1, "woken": gone["woken"], "emitted": {web: 1}}
        assert gone["woken"] <= 1
        # Nobody reads an untagged service's instances, and its tags stay the same.
        unread = await change(lambda: etcd.put(f"services/{name(11)}/0", value(11, 0, port=9)),
                              set())
        assert unread == {"parsed": 1, "computed": 0, "woken": 0, "emitted": {}}
        # A new tag moves services() and the service itself: two answers, two wake-ups.
        retag = await change(lambda: etcd.put(f"services/{name(12)}/0",
                                              value(12, 0, tags=("v2",))),
                             {"etcd.services", queries[name(12)].key})
        assert retag["parsed"] == 1 and retag["woken"] <= 2 and retag["computed"] == 2
        assert set(retag["emitted"]) == {"etcd.services", queries[name(12)].key}
        bad = await change(lambda: etcd.put(f"services/{name(14)}/x", "not-an-address"), set())
        assert bad == {"parsed": 1, "computed": 0, "woken": 0, "emitted": {}}
        new = await change(lambda: etcd.put("services/brand-new/0", value(0, 0)),
                           {"etcd.services"})
        assert new == {"parsed": 1, "computed": 1, "woken": new["woken"],
                       "emitted": {"etcd.services": 1}}
        assert new["woken"] <= 1
    finally:
        await watcher.aclose()
        await catalog.aclose()
