"""Random sequences of etcd changes: once quiet, the watched catalog answers exactly what a
fresh read of etcd answers (the per-service index must never drift from the keys).

The changes mix every layout the catalog reads (nested ``ip:port`` and JSON, the flat
``<ip>:<port>`` layout, a flat and a nested instance with the same ID), hostile values,
keys that only look like they are under the prefix (the other leading-slash spelling,
``servicesx/``, deeper keys), transactions, whole-service deletes, a watch cut off midway
and compaction of the history it must resume from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctmpl.config.model import Retry
from ctmpl.sources.base import Query, parse_service
from ctmpl.sources.etcd import EtcdCatalog
from ctmpl.watch import Watcher, WatchPolicy
from tests.daemon import poll_until
from tests.fixtures_etcd import EtcdServer
from tests.test_etcd import make_catalog

NAMES = ("web", "api", "services")  # "services": the flat layout's name under …/services
SPECS = tuple(s for n in NAMES for s in (n, f"calico.{n}", f"{n}|any", f"{n}|passing,warning"))

# Keys are written with {P} for the catalog prefix as configured and {O} for its twin
# with (or without) the leading slash, which the catalog must not read.
NESTED = st.builds("{{P}}/{}/{}".format, st.sampled_from(NAMES),
                   st.sampled_from(["a", "b", "10.0.0.1:80"]))
FLAT = st.sampled_from(["{P}/10.0.0.1:80", "{P}/10.0.0.2:81", "{P}/[fd00::1]:80"])
ODD = st.sampled_from(["{P}/web/a/deep", "{O}/web/a", "{P}x/web/a", "{P}/api"])
KEYS = st.one_of(NESTED, NESTED, NESTED, FLAT, ODD)
GOOD = st.one_of(
    st.builds("10.0.0.{}:{}".format, st.integers(1, 3), st.sampled_from([80, 81])),
    st.builds(
        lambda n, tags, status: json.dumps(
            {"Address": f"10.0.1.{n}", "Port": 80, "Tags": tags, "Status": status}),
        st.integers(1, 3), st.lists(st.sampled_from(["calico", "v1"]), max_size=2),
        st.sampled_from(["passing", "warning", "critical"])),
)
BAD = st.sampled_from(["nonsense", '{"Port": 80}', "10.0.0.1:99999",
                       '{"Address": "x;y", "Port": 1}', '{"Tags": ["calico"]}'])
VALUES = st.one_of(GOOD, GOOD, BAD)
CHANGES = st.one_of(
    st.tuples(st.just("put"), KEYS, VALUES),
    st.tuples(st.just("put"), KEYS, VALUES),
    st.tuples(st.just("delete"), KEYS),
    st.tuples(st.just("delete"), KEYS),
    st.tuples(st.just("txn"), st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=4)),
    st.tuples(st.just("drop"), st.sampled_from(NAMES)),
)
OPS = st.one_of(
    CHANGES, CHANGES, CHANGES,
    st.tuples(st.sampled_from(["pause", "restart", "compact"])),
    # The connection is cut, changes happen, history is compacted, then it comes back.
    st.tuples(st.just("outage"), st.lists(CHANGES, max_size=5)),
)


def queries(catalog: EtcdCatalog, prefix: str) -> list[Query]:
    return [catalog.services(), catalog.tree(prefix), catalog.key(f"{prefix}/web/a"),
            *(catalog.service(parse_service(spec)) for spec in SPECS)]


async def fresh_answers(etcd: EtcdServer, prefix: str) -> dict[str, Any]:
    catalog = make_catalog(etcd.endpoint, prefix=prefix)
    try:
        return {q.key: (await q.fetch(0))[0] for q in queries(catalog, prefix)}
    finally:
        await catalog.aclose()


async def apply_all(etcd: EtcdServer, live: EtcdCatalog, prefix: str, ops: list[Any]) -> None:
    other = prefix[1:] if prefix.startswith("/") else f"/{prefix}"

    def key(text: str) -> str:
        return text.format(P=prefix, O=other)

    for op in ops:
        match op:
            case ("put", k, v):
                await asyncio.to_thread(etcd.put, key(k), v)
            case ("delete", k):
                await asyncio.to_thread(etcd.delete, key(k))
            case ("txn", items):
                await asyncio.to_thread(etcd.put_all, {key(k): v for k, v in items})
            case ("drop", name):
                await asyncio.to_thread(etcd.delete_prefix, key(f"{{P}}/{name}/"))
            case ("pause",):  # let the watches see what came before on its own
                await asyncio.sleep(0.05)
            case ("restart",):  # the watches fail and resume from their last revision
                await live._conn.aclose()
            case ("compact",):
                await compact(etcd)
            case ("outage", changes):
                await outage(etcd, live, prefix, changes)


async def outage(etcd: EtcdServer, live: EtcdCatalog, prefix: str, changes: list[Any]) -> None:
    """Cut the connection and hold every reconnect while ``changes`` happen and the history
    is compacted: the watches must then read their ranges again."""
    gate = asyncio.Event()
    connect = live._conn.open

    async def held() -> Any:
        await gate.wait()
        return await connect()

    live._conn.open = held  # type: ignore[method-assign]
    await live._conn.aclose()
    await apply_all(etcd, live, prefix, changes)
    await compact(etcd)
    live._conn.open = connect  # type: ignore[method-assign]
    gate.set()


async def compact(etcd: EtcdServer) -> None:
    with contextlib.suppress(urllib.error.HTTPError):  # compacted at this revision already
        await asyncio.to_thread(etcd.compact)


async def converge(etcd: EtcdServer, prefix: str, ops: list[Any]) -> None:
    await asyncio.to_thread(etcd.delete_prefix, "")
    live = make_catalog(etcd.endpoint, prefix=prefix, wait=300.0)
    last: dict[str, object] = {}

    def fail(key: str, exc: BaseException) -> None:
        raise AssertionError(f"{key}: {exc}")

    policy = WatchPolicy(retry=Retry(backoff=0.05, max_backoff=0.2))
    watcher = Watcher(policy, last.__setitem__, fail)
    watched = queries(live, prefix)
    try:
        for query in watched:
            watcher.add(query)
        await poll_until(lambda: len(last) == len(watched))
        await apply_all(etcd, live, prefix, ops)
        want = await fresh_answers(etcd, prefix)

        def pinned() -> dict[str, object]:  # what a render would read now
            pin = live.pin()
            return {q.key: pin(q) for q in watched}

        with contextlib.suppress(TimeoutError):
            await poll_until(lambda: last == want and pinned() == want)
        assert last == want
        assert pinned() == want
    finally:
        await watcher.aclose()
        await live.aclose()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["services", "/services"]), st.lists(OPS, min_size=1, max_size=30))
def test_random_changes_converge_to_a_fresh_read(
    etcd: EtcdServer, prefix: str, ops: list[Any]
) -> None:
    asyncio.run(converge(etcd, prefix, ops))
