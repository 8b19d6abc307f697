"""Long random sequences of changes, and transport errors, against the Consul source.

Watches (``ctmpl.watch``) run for every service of a catalog of a few hundred; random changes
of every kind are applied one by one through the agent's API, and after each one the watched
data must show it within the documented staleness (one catalog-wide round trip; the blocking
wait is set far longer, so a change that only a wait timeout would bring fails the test). Once
quiet, every watch equals what a per-service query gives. Both feeds run: the UI endpoint
and the documented fallback. Transport errors (reset, 500, 429, timeout) injected by the proxy
cost the failed request's retry only, and the data converges.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ctmpl.config.model import CatalogConfig, ConsulConfig, Retry
from ctmpl.sources import consul as consul_source
from ctmpl.sources.base import parse_service
from ctmpl.sources.consul import ConsulCatalog, aggregated_status
from ctmpl.sources.consul_feed import FeedMode
from ctmpl.watch import Watcher, WatchPolicy
from tests.consul_proxy import ConsulProxy
from tests.fixtures_consul import ConsulFixture

SERVICES = 120
STALENESS = 10.0  # generous: the blocking wait is 600 s, so only the feed can bring a change
FAST_RETRY = Retry(backoff=0.05, max_backoff=0.2)

View = list[tuple[str, str, int, tuple[str, ...], str]]


def view(data: object) -> View:
    assert isinstance(data, tuple)
    return [(i.ID, i.Address, i.Port, i.Tags, i.Status) for i in data]


def truth(consul: ConsulFixture, name: str) -> View:
    """What ``/v1/health/service/<name>`` says, in ctmpl's order and form."""
    out = []
    for e in consul.call("GET", f"/v1/health/service/{name}") or []:
        s, node = e["Service"], e["Node"]
        out.append((node["Node"], s["ID"], s["Address"] or node["Address"], s["Port"],
                    tuple(sorted(set(s["Tags"] or []))), aggregated_status(e["Checks"])))
    return [tuple(x[1:]) for x in sorted(out)]  # type: ignore[misc]


class Harness:
    """Watches for ``service(name|any)`` of every service, data kept as they emit it."""

    def __init__(self, consul: ConsulFixture, addr: str, mode: FeedMode) -> None:
        self.consul = consul
        config = CatalogConfig(consul=ConsulConfig(address=addr, retry=FAST_RETRY),
                               block_query_wait=600.0)
        self.catalog = ConsulCatalog(config, feed_mode=mode)
        self.data: dict[str, object] = {}
        self.watcher = Watcher(WatchPolicy(retry=FAST_RETRY, min_interval=0.0),
                               self._emit, self._fail)
        self.keys: dict[str, str] = {}

    def _emit(self, key: str, data: object) -> None:
        self.data[key] = data

    def _fail(self, key: str, exc: BaseException) -> None:
        raise AssertionError(f"{key}: {exc}")

    def watch(self, name: str) -> None:
        query = self.catalog.service(parse_service(f"{name}|any"))
        self.keys[name] = query.key
        self.watcher.add(query)

    async def shows(self, name: str, timeout: float = STALENESS) -> None:
        """Wait until the watch of ``name`` equals the agent's answer."""
        want = await asyncio.to_thread(truth, self.consul, name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got = self.data.get(self.keys[name])
            if got is not None and view(got) == want:
                return
            if loop.time() > deadline:
                raise AssertionError(f"{name}: watch shows {got!r}, agent says {want!r}")
            await asyncio.sleep(0.02)

    async def aclose(self) -> None:
        await self.watcher.aclose()
        await self.catalog.aclose()


def populate(consul: ConsulFixture, rng: random.Random) -> None:
    for n in range(SERVICES):
        kind = n % 3
        if kind == 0:  # agent-registered, with a TTL check
            consul.register(f"s{n}-a", f"s{n}", f"10.4.{n}.1", 80, tags=["calico"])
        elif kind == 1:  # no check at all
            consul.register(f"s{n}-a", f"s{n}", f"10.4.{n}.1", 80, status=None)
        else:  # on another node, registered through the catalog
            consul.register_external(f"ext-{n % 4}", f"10.5.0.{n % 4 + 1}", f"s{n}-a",
                                     f"s{n}", address=f"10.4.{n}.1", port=80, tags=["x"])
    _ = rng


def random_change(consul: ConsulFixture, rng: random.Random) -> list[str]:
    """Apply one random change; the names it affects."""
    n = rng.randrange(SERVICES)
    name, sid = f"s{n}", f"s{n}-a"
    kind = n % 3
    if kind == 2:
        node = f"ext-{n % 4}"
        choice = rng.choice(["move", "node", "add"])
        if choice == "node":
            consul.node_check(node, f"10.5.0.{n % 4 + 1}", rng.choice(["passing", "critical"]))
            return [f"s{m}" for m in range(2, SERVICES, 3) if m % 4 == n % 4]
        consul.register_external(node, f"10.5.0.{n % 4 + 1}", sid if choice == "move"
                                 else f"{sid}-{rng.randrange(99)}", name,
                                 address=f"10.6.{rng.randrange(250)}.1", port=80, tags=["x"])
        return [name]
    choice = rng.choice(["move", "port", "retag", "flap", "maint", "add", "remove"])
    try:
        if choice == "move":
            consul.move(sid, f"10.6.{rng.randrange(250)}.{n % 250 + 1}")
        elif choice == "port":
            consul.move(sid, f"10.4.{n}.1", rng.randrange(1000, 2000))
        elif choice == "retag":
            consul.retag(sid, rng.sample(["calico", "v1", "v2", "blue"], rng.randrange(3)))
        elif choice == "flap" and kind == 0:
            consul.set_status(sid, rng.choice(["passing", "warning", "critical"]))
        elif choice == "maint":
            consul.maintenance(sid, rng.random() < 0.5)
        elif choice == "add":
            consul.register(f"{sid}{rng.randrange(99)}", name, "10.7.0.1", 81,
                            status=None if kind == 1 else "passing")
        elif choice == "remove":
            consul.deregister(sid)
            consul.register(sid, name, f"10.4.{n}.1", 80,
                            status=None if kind == 1 else "passing")
    except KeyError:  # the fixture does not know this instance (an earlier change)
        pass
    return [name]


@pytest.fixture(params=["ui", "classic"])
async def harness(request: pytest.FixtureRequest, consul: ConsulFixture
                  ) -> AsyncIterator[Harness]:
    rng = random.Random(20261201)
    await asyncio.to_thread(populate, consul, rng)
    h = Harness(consul, consul.addr, request.param)
    yield h
    await h.aclose()


async def test_random_changes_converge(consul: ConsulFixture, harness: Harness) -> None:
    rng = random.Random(7)
    names = [f"s{n}" for n in range(SERVICES)]
    for name in names:
        harness.watch(name)
    for name in names:
        await harness.shows(name, timeout=60)
    for _ in range(40):
        touched = await asyncio.to_thread(random_change, consul, rng)
        for name in touched:
            await harness.shows(name)
    for name in names:
        await harness.shows(name)


# -- transport errors ---------------------------------------------------------------------


@pytest.fixture
def proxy(consul: ConsulFixture) -> Any:
    p = ConsulProxy(consul.addr)
    p.start()
    yield p
    p.stop()


CASES = [(mode, fault) for mode in ("ui", "classic") for fault in ("reset", "500", "429",
                                                                    "timeout")]
POLLS = ("GET /v1/internal/ui/nodes", "GET /v1/catalog/", "GET /v1/health/state/any")


@pytest.mark.parametrize("case", CASES, ids=[f"{m}-{f}" for m, f in CASES])
async def test_transport_errors_cost_one_retry(
    consul: ConsulFixture, proxy: ConsulProxy, case: tuple[FeedMode, Any],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """A failed catalog-wide long-poll is retried alone; the change it hid arrives; one
    WARNING names the endpoint and one INFO reports the recovery."""
    mode, fault = case
    monkeypatch.setattr(consul_source, "_TIMEOUT_MARGIN", 0.3)
    for n in range(20):
        consul.register(f"e{n}-a", f"e{n}", f"10.4.{n}.1", 80)
    h = Harness(consul, proxy.addr, mode)
    h.catalog.wait = 1.0  # long-polls of 1 s: a held one times out after 1 + 1/16 + 0.3 s
    target = "GET /v1/internal/ui/nodes" if mode == "ui" else "GET /v1/health/state/any"
    try:
        for n in range(20):
            h.watch(f"e{n}")
        for n in range(20):
            await h.shows(f"e{n}", timeout=30)
        caplog.clear()
        # aiohttp sends a request again once by itself when a reused connection is reset
        proxy.inject(fault, lambda r: r.startswith(target), count=2 if fault == "reset" else 1)
        await asyncio.to_thread(wait_until, lambda: bool(proxy.faults))
        mark = proxy.mark()
        await asyncio.to_thread(consul.set_status, "e3-a", "critical")
        await h.shows("e3", timeout=30)
        await asyncio.to_thread(consul.move, "e5-a", "10.9.9.9")
        await h.shows("e5", timeout=30)
        reads = [r for r in proxy.since(mark) if not r.startswith(POLLS)]
        if mode == "ui":
            assert reads == []  # the UI answer carries everything: nothing else is read
        else:  # after a failure the fallback reads each watched service once more
            names = [r.split("?")[0] for r in reads]
            assert all(names.count(n) <= 3 for n in names), reads
        # the change can arrive through another long-poll before the failed one is retried
        await asyncio.to_thread(
            wait_until, lambda: any("recovered" in r.getMessage() for r in caplog.records))
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        recovered = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].startswith("catalog.feed("), warnings
        assert len(recovered) == 1, recovered
    finally:
        await h.aclose()


def wait_until(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition never held")
        time.sleep(0.02)
