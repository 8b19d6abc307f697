"""ConsulCatalog against the ``consul`` fixture (the API double, or a real dev agent).

Mutation check: each bug below, planted in ``ctmpl/sources/consul*.py``, makes at least the
named tests fail (on the double, which randomizes what Consul leaves unordered). Tests that
take ``mode`` run both feeds: the UI endpoint and the documented fallback ("classic").

- ``/v1/catalog/services`` dropped from the fallback's long-polls (or the UI feed ignoring
  an instance's ``ModifyIndex``): an address-only change is seen by nothing else ->
  ``test_every_change_reaches_a_watch[address*]``, ``[port*]``.
- ``/v1/health/state/any`` dropped from the fallback -> ``[check flap-classic]``,
  ``[maintenance-classic]``, ``[node failure-classic]``,
  ``test_many_watches_stay_under_the_connection_limit[classic]``.
- the instance sort dropped (the order then follows Consul's, which the UI endpoint and
  streaming answers do not promise) -> ``test_instances_sorted_whatever_consul_order[ui]``,
  ``test_service_instances_and_status``, ``test_blocking_register``.
- the index not reset after a failed request (a restarted agent's indexes start over) ->
  ``test_agent_restart_does_not_stall_watches``; an answer after a failure diffed by index
  alone (indexes repeat after a restart) -> ``test_consul_e2e.py::test_consul_restart``.
- ``stale`` dropped from the long-polls while ``max_stale`` is set ->
  ``test_stale_reads_ask_stale``, ``test_stale_read_too_old_is_repeated``,
  ``test_stale_read_fresh_enough_is_used``.
- any kind of change not watched -> ``test_every_change_reaches_a_watch[<kind>-<mode>]``;
  ``tests/test_consul_ui_catalog.py`` checks the UI feed's diff on random catalogs.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ctmpl.config.model import TLS, CatalogConfig, ConsulConfig, Retry
from ctmpl.errors import SourceError
from ctmpl.model import Instance
from ctmpl.sources import consul as consul_source
from ctmpl.sources.base import Query, parse_service
from ctmpl.sources.consul import ConsulCatalog, aggregated_status, parse_address
from ctmpl.sources.consul_feed import FeedMode
from tests.fixtures_consul import ConsulFixture, free_port

PROMPT = 3.0  # a change must end a blocking fetch well before block_query_wait (10 s)
RESTART = 20.0  # a real agent takes seconds to start; the old index would block 60 s


def make(addr: str, mode: FeedMode = "auto", **consul: Any) -> ConsulCatalog:
    return ConsulCatalog(CatalogConfig(consul=ConsulConfig(address=addr, **consul),
                                       block_query_wait=10.0), feed_mode=mode)


@pytest.fixture
async def catalog(consul: ConsulFixture) -> AsyncIterator[ConsulCatalog]:
    cat = make(consul.addr)
    yield cat
    await cat.aclose()


def service(cat: ConsulCatalog, text: str) -> Query:
    return cat.service(parse_service(text))


def ids(data: object) -> list[str]:
    assert isinstance(data, tuple)
    return [i.ID for i in data]


def web(consul: ConsulFixture) -> None:
    consul.register("web-1", "web", "10.0.0.1", 8080, tags=["calico", "v1"],
                    meta={"version": "1"})
    consul.register("web-2", "web", "10.0.0.2", 8080, tags=["v1"], status="warning")
    consul.register("web-3", "web", "10.0.0.3", 8081, tags=["calico"], status="critical")


async def test_services(consul: ConsulFixture, catalog: ConsulCatalog) -> None:
    web(consul)
    consul.register("db-1", "db", "10.0.1.1", 5432, tags=["postgres"])
    query = catalog.services()
    assert query.key == "catalog.services"
    data, index = await query.fetch(0)
    assert index > 0
    assert isinstance(data, tuple)
    summary = {s.Name: s.Tags for s in data}
    assert summary["web"] == ("calico", "v1")
    assert summary["db"] == ("postgres",)
    assert [s.Name for s in data] == sorted(summary)


async def test_service_instances_and_status(consul: ConsulFixture, catalog: ConsulCatalog) -> None:
    web(consul)
    query = service(catalog, "web|any")
    assert query.key == "health.service(web|any)"
    data, _ = await query.fetch(0)
    assert isinstance(data, tuple)
    first = data[0]
    assert isinstance(first, Instance)
    assert (first.Name, first.ID, first.Address, first.Port) == ("web", "web-1", "10.0.0.1", 8080)
    assert first.Tags == ("calico", "v1") and dict(first.Meta) == {"version": "1"}
    assert first.NodeAddress == "127.0.0.1" and first.Node
    assert [i.Status for i in data] == ["passing", "warning", "critical"]


@pytest.mark.parametrize(("text", "expected"), [
    ("web", ["web-1"]),
    ("web|passing", ["web-1"]),
    ("web|passing,warning", ["web-1", "web-2"]),
    ("web|critical", ["web-3"]),
    ("web|any", ["web-1", "web-2", "web-3"]),
    ("calico.web", ["web-1"]),
    ("calico.web|any", ["web-1", "web-3"]),
    ("nope|any", []),
])
async def test_filters(
    consul: ConsulFixture, catalog: ConsulCatalog, text: str, expected: list[str]
) -> None:
    web(consul)
    data, _ = await service(catalog, text).fetch(0)
    assert ids(data) == expected


async def test_maintenance_status(consul: ConsulFixture, catalog: ConsulCatalog) -> None:
    web(consul)
    consul.maintenance("web-1")
    data, _ = await service(catalog, "web|any").fetch(0)
    assert isinstance(data, tuple)
    assert data[0].Status == "maintenance"
    assert ids((await service(catalog, "web|maintenance").fetch(0))[0]) == ["web-1"]


def test_aggregated_status() -> None:
    passing = {"CheckID": "a", "Status": "passing"}
    warning = {"CheckID": "b", "Status": "warning"}
    critical = {"CheckID": "c", "Status": "critical"}
    maint = {"CheckID": "_service_maintenance:x", "Status": "critical"}
    assert aggregated_status([]) == "passing"
    assert aggregated_status([passing, warning]) == "warning"
    assert aggregated_status([warning, critical, passing]) == "critical"
    assert aggregated_status([passing, maint]) == "maintenance"
    assert aggregated_status([{"CheckID": "_node_maintenance", "Status": "critical"}]) == (
        "maintenance")


async def test_address_falls_back_to_node(consul: ConsulFixture, catalog: ConsulCatalog) -> None:
    consul.register_external("ext-node-1", "10.5.0.1", "ext-1", "ext", port=9000)
    query = service(catalog, "ext")
    data, index = await query.fetch(0)
    assert isinstance(data, tuple)
    assert (data[0].Address, data[0].Port, data[0].Node) == ("10.5.0.1", 9000, "ext-node-1")
    # The node moves; the instance itself is not written again.
    consul.call("PUT", "/v1/catalog/register", {"Node": "ext-node-1", "Address": "10.5.0.2"})
    data, _ = await asyncio.wait_for(query.fetch(index), PROMPT)
    assert isinstance(data, tuple) and data[0].Address == "10.5.0.2"


async def test_nodes(consul: ConsulFixture, catalog: ConsulCatalog) -> None:
    consul.register_external("ext-node-1", "10.5.0.1", "ext-1", "ext", port=9000)
    query = catalog.nodes()
    assert query.key == "catalog.nodes"
    data, index = await query.fetch(0)
    assert index > 0 and isinstance(data, tuple)
    names = [n.Node for n in data]
    assert "ext-node-1" in names and names == sorted(names)
    assert data[names.index("ext-node-1")].Address == "10.5.0.1"


async def test_kv(consul: ConsulFixture, catalog: ConsulCatalog) -> None:
    consul.put("app/config/greeting", "héllo")
    consul.put("app/config/nested/deep", "x")
    consul.put("app/empty", "")
    consul.put("app/bin", b"\xff\xfeok")
    consul.put("application/other", "no")
    query = catalog.key("/app/config/greeting/")
    assert query.key == "kv.get(app/config/greeting)"
    pair, index = await query.fetch(0)
    assert index > 0
    assert pair is not None and getattr(pair, "Value", None) == "héllo"
    empty, _ = await catalog.key("app/empty").fetch(0)
    assert getattr(empty, "Value", None) == ""
    binary, _ = await catalog.key("app/bin").fetch(0)
    assert getattr(binary, "Value", None) == "\ufffd\ufffdok"
    missing, missing_index = await catalog.key("app/missing").fetch(0)
    assert missing is None and missing_index > 0
    tree = catalog.tree("app")
    assert tree.key == "kv.tree(app)"
    pairs, _ = await tree.fetch(0)
    assert isinstance(pairs, tuple)
    assert [(p.Key, p.Path) for p in pairs] == [
        ("bin", "app/bin"), ("config/greeting", "app/config/greeting"),
        ("config/nested/deep", "app/config/nested/deep"), ("empty", "app/empty")]
    none, none_index = await catalog.tree("nothing-here").fetch(0)
    assert none == () and none_index > 0


async def changes_promptly(query: Query, change: Callable[[], None]) -> object:
    """Start a blocking fetch, make the change, and return the data it answers with."""
    data, index = await query.fetch(0)
    task = asyncio.create_task(query.fetch(index))
    await asyncio.sleep(0.2)
    assert not task.done(), "the blocking fetch returned before any change"
    await asyncio.to_thread(change)
    new, new_index = await asyncio.wait_for(task, PROMPT)
    assert new_index > index and new != data
    return new


async def test_blocking_register(consul: ConsulFixture, catalog: ConsulCatalog) -> None:
    web(consul)
    new = await changes_promptly(service(catalog, "web"), lambda: consul.register(
        "web-4", "web", "10.0.0.4", 8080))
    assert ids(new) == ["web-1", "web-4"]


async def test_blocking_deregister(consul: ConsulFixture, catalog: ConsulCatalog) -> None:
    web(consul)
    new = await changes_promptly(service(catalog, "web|any"), lambda: consul.deregister("web-2"))
    assert ids(new) == ["web-1", "web-3"]


async def test_blocking_check_failure(consul: ConsulFixture, catalog: ConsulCatalog) -> None:
    web(consul)
    new = await changes_promptly(service(catalog, "web"),
                                 lambda: consul.set_status("web-1", "critical"))
    assert ids(new) == []


async def test_blocking_retag(consul: ConsulFixture, catalog: ConsulCatalog) -> None:
    web(consul)
    new = await changes_promptly(service(catalog, "calico.web|any"),
                                 lambda: consul.retag("web-2", ["calico"]))
    assert ids(new) == ["web-1", "web-2", "web-3"]


async def test_blocking_services(consul: ConsulFixture, catalog: ConsulCatalog) -> None:
    web(consul)
    new = await changes_promptly(catalog.services(), lambda: consul.register(
        "api-1", "api", "10.0.2.1", 80))
    assert "api" in [s.Name for s in new]  # type: ignore[attr-defined]


async def test_blocking_kv_edit(consul: ConsulFixture, catalog: ConsulCatalog) -> None:
    consul.put("app/color", "blue")
    new = await changes_promptly(catalog.key("app/color"), lambda: consul.put("app/color", "red"))
    assert getattr(new, "Value", None) == "red"
    new = await changes_promptly(catalog.tree("app"), lambda: consul.delete("app/color"))
    assert new == ()


async def test_invalid_instances_dropped_once(
    consul: ConsulFixture, catalog: ConsulCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    web(consul)
    consul.register("web-bad-addr", "web", "1.2.3.4;}", 8080)
    consul.register("web-port-0", "web", "10.0.0.5", 0)
    consul.register("web-port-big", "web", "10.0.0.6", 70000)
    consul.register("web 7", "web", "10.0.0.7", 8080)
    consul.register("bad-1", "bad name", "10.0.0.8", 8080)
    caplog.clear()
    query = service(catalog, "web|any")
    for _ in range(3):
        data, _ = await query.fetch(0)
        assert ids(data) == ["web-1", "web-2", "web-3"]
        names, _ = await catalog.services().fetch(0)
        assert "bad name" not in [s.Name for s in names]  # type: ignore[attr-defined]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for bad in ("web-bad-addr", "web-port-0", "web-port-big", "web 7"):
        assert len([w for w in warnings if f"health.service(web|any) {bad}" in w]) == 1, bad
    for _ in range(3):  # another query of the same data does not warn again either
        await catalog.services().fetch(0)
    assert len([r for r in caplog.records if "bad name" in r.getMessage()]) == 1


async def test_unreachable_agent() -> None:
    cat = make(f"127.0.0.1:{free_port()}")
    with pytest.raises(SourceError) as err:
        await service(cat, "web").fetch(0)
    await cat.aclose()
    message = str(err.value)
    assert message.startswith("health.service(web|passing): connection refused (127.0.0.1:")
    assert "\n" not in message


async def test_acl_denied_without_leaking_token(consul: ConsulFixture) -> None:
    if consul.is_real:
        pytest.skip("a dev agent has ACLs disabled")
    consul.require_token("t0ps3cret")
    wrong = make(consul.addr, token="wr0ng-token")
    with pytest.raises(SourceError) as err:
        await wrong.key("app/x").fetch(0)
    await wrong.aclose()
    assert str(err.value) == "kv.get(app/x): ACL denied (403: Permission denied)"
    assert "wr0ng" not in repr(err.value)
    consul.put("app/x", "1")
    right = make(consul.addr, token="t0ps3cret")
    pair, _ = await right.key("app/x").fetch(0)
    await right.aclose()
    assert getattr(pair, "Value", None) == "1"


async def test_tls_to_plain_http_port(consul: ConsulFixture) -> None:
    cat = make(consul.addr, ssl=TLS(enabled=True, verify=False))
    with pytest.raises(SourceError) as err:
        await cat.nodes().fetch(0)
    await cat.aclose()
    assert str(err.value).startswith("catalog.nodes: TLS handshake failed: ")


async def test_too_many_requests_is_a_source_error(consul: ConsulFixture) -> None:
    consul.double("a dev agent cannot be told to refuse every connection").conn_limit = 0
    cat = make(consul.addr)
    with pytest.raises(SourceError) as err:
        await cat.services().fetch(0)
    await cat.aclose()
    assert "catalog.services: " in str(err.value)
    # the agent may close the connection before the client reads its 429
    assert "429 too many requests" in str(err.value) or "closed" in str(err.value)


async def test_dead_agent_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consul_source, "_READ_TIMEOUT", 0.5)
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        cat = make(f"127.0.0.1:{silent.getsockname()[1]}")
        with pytest.raises(SourceError) as err:
            await asyncio.wait_for(cat.key("app/x").fetch(0), 5)
        await cat.aclose()
    assert str(err.value).startswith("kv.get(app/x): no answer within 0.5s")


LAST_CONTACT = "a dev agent is its own leader: X-Consul-LastContact is always 0"
COUNTS = "counts the requests the agent receives, which only the double records"


async def test_stale_read_too_old_is_repeated(consul: ConsulFixture) -> None:
    """A stale catalog-wide answer whose last contact exceeds max_stale is asked again."""
    double = consul.double(LAST_CONTACT)
    double.last_contact_ms = 5000
    web(consul)
    cat = ConsulCatalog(CatalogConfig(consul=ConsulConfig(address=consul.addr), max_stale=2.0))
    double.requests.clear()
    data, _ = await service(cat, "web").fetch(0)
    await cat.aclose()
    assert ids(data) == ["web-1"]
    assert double.requests[:2] == ["GET /v1/internal/ui/nodes?stale=",
                                   "GET /v1/internal/ui/nodes"]


async def test_stale_read_fresh_enough_is_used(consul: ConsulFixture) -> None:
    double = consul.double(LAST_CONTACT)
    double.last_contact_ms = 100
    cat = ConsulCatalog(CatalogConfig(consul=ConsulConfig(address=consul.addr), max_stale=2.0))
    double.requests.clear()
    await cat.nodes().fetch(0)
    await cat.aclose()
    assert double.requests[0] == "GET /v1/internal/ui/nodes?stale="
    assert "GET /v1/catalog/nodes" in double.requests  # a read after the feed: never stale


@pytest.mark.parametrize("mode", ["ui", "classic"])
async def test_many_watches_stay_under_the_connection_limit(
    consul: ConsulFixture, mode: FeedMode
) -> None:
    """Many more blocking queries than connections: all still see their changes promptly,
    through at most 5 connections (the agent here refuses a sixth)."""
    double = consul.double("sets the agent's connection limit and counts open connections")
    double.conn_limit = 5
    count = 60
    for n in range(count):
        consul.register(f"svc{n}-1", f"svc{n}", "10.9.0.1", 8000 + n)
    cat = ConsulCatalog(CatalogConfig(consul=ConsulConfig(address=consul.addr),
                                      block_query_wait=30.0), feed_mode=mode)
    queries = [service(cat, f"svc{n}") for n in range(count)]
    first = [await q.fetch(0) for q in queries]
    tasks = [asyncio.create_task(q.fetch(i)) for q, (_, i) in zip(queries, first, strict=True)]
    await asyncio.sleep(0.5)
    assert not any(t.done() for t in tasks)
    assert double.open_connections() <= 5
    for n in (0, count - 1):
        await asyncio.to_thread(consul.set_status, f"svc{n}-1", "critical")
        data, _ = await asyncio.wait_for(tasks[n], PROMPT)
        assert data == ()
    assert not any(t.done() for t in tasks[1:-1])
    assert double.open_connections() <= 5
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await cat.aclose()


@pytest.mark.parametrize(("address", "tls", "expected"), [
    ("127.0.0.1:8500", False, ("http://127.0.0.1:8500", "127.0.0.1:8500")),
    ("consul.local", False, ("http://consul.local:8500", "consul.local:8500")),
    ("https://consul.local:8501", False, ("https://consul.local:8501", "consul.local:8501")),
    ("http://10.0.0.1:8500/", True, ("https://10.0.0.1:8500", "10.0.0.1:8500")),
    ("[::1]:8500", False, ("http://[::1]:8500", "[::1]:8500")),
])
def test_parse_address(address: str, tls: bool, expected: tuple[str, str]) -> None:
    assert parse_address(address, TLS(enabled=tls)) == expected


async def test_agent_restart_does_not_stall_watches(consul: ConsulFixture) -> None:
    """A restarted dev agent starts its indexes again, lower than before: the catalog-wide
    long-poll must not keep asking with the old index (it would block for a whole wait)."""
    for n in range(8):  # push the index up, so the restarted agent's stays below it
        consul.register(f"pad-{n}", "pad", "10.0.9.1", 80 + n)
    web(consul)
    cat = ConsulCatalog(CatalogConfig(
        consul=ConsulConfig(address=consul.addr, retry=Retry(backoff=0.1, max_backoff=1.0)),
        block_query_wait=60.0))
    query = service(cat, "web|any")
    try:
        _, index = await query.fetch(0)
        pending = asyncio.create_task(query.fetch(index))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(consul.stop)
        await asyncio.to_thread(consul.start)
        await asyncio.to_thread(consul.register, "web-9", "web", "10.0.0.9", 8080)
        data, new_index = await asyncio.wait_for(pending, RESTART)
        assert ids(data) == ["web-9"]
        data, _ = await asyncio.wait_for(query.fetch(index), RESTART)  # the old index
        assert ids(data) == ["web-9"] and new_index != index
    finally:
        await cat.aclose()


@pytest.mark.parametrize("mode", ["ui", "classic"])
async def test_stale_reads_ask_stale(consul: ConsulFixture, mode: FeedMode) -> None:
    """With ``max_stale`` set the catalog-wide long-polls carry ``stale``; the reads they
    set off do not, so they cannot return data older than the answer that set them off."""
    double = consul.double(COUNTS)
    double.last_contact_ms = 10
    web(consul)
    cat = ConsulCatalog(CatalogConfig(consul=ConsulConfig(address=consul.addr), max_stale=2.0,
                                      block_query_wait=10.0), feed_mode=mode)
    query = service(cat, "web|any")
    try:
        double.requests.clear()
        _, index = await query.fetch(0)
        pending = asyncio.create_task(query.fetch(index))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(consul.set_status, "web-2", "critical")
        await asyncio.wait_for(pending, PROMPT)
    finally:
        await cat.aclose()
    feeds = ("GET /v1/internal/", "GET /v1/catalog/", "GET /v1/health/state")
    polls = [r for r in double.requests if r.startswith(feeds)]
    reads = [r for r in double.requests if r.startswith("GET /v1/health/service/")]
    assert len(polls) >= 2 and all("stale" in r for r in polls)
    assert all("stale" not in r for r in reads)


@pytest.mark.parametrize("mode", ["ui", "classic"])
async def test_instances_sorted_whatever_consul_order(consul: ConsulFixture, mode: FeedMode
                                                      ) -> None:
    """Instances come sorted by node then ID, whatever order Consul answers in (streaming
    answers and the UI endpoint promise none; the double shuffles them)."""
    for n in (5, 1, 4, 2, 6, 3):
        consul.register(f"web-{n}", "web", f"10.0.0.{n}", 8080)
    catalog = make(consul.addr, mode)
    query = service(catalog, "web|any")
    data, index = await query.fetch(0)
    for status in ("warning", "passing", "critical", "passing"):
        pending = asyncio.create_task(query.fetch(index))
        await asyncio.sleep(0.1)
        await asyncio.to_thread(consul.set_status, "web-3", status)
        data, index = await asyncio.wait_for(pending, PROMPT)
        assert ids(data) == [f"web-{n}" for n in range(1, 7)]
    await catalog.aclose()


def _changes() -> dict[str, tuple[str, Callable[[ConsulFixture], None], list[str]]]:
    """Kind of change -> (watched service, the change, instance IDs the watch must show)."""
    return {
        "registration": ("svc-9", lambda c: c.register("svc-9-b", "svc-9", "10.8.0.2", 80),
                         ["svc-9-a", "svc-9-b"]),
        "deregistration": ("svc-9", lambda c: c.deregister("svc-9-a"), []),
        "address, no check": ("nochk", lambda c: c.move("nochk-a", "10.8.1.9"), ["10.8.1.9"]),
        "address, with check": ("svc-9", lambda c: c.move("svc-9-a", "10.8.0.9"), ["10.8.0.9"]),
        "port": ("nochk", lambda c: c.move("nochk-a", "10.8.1.1", 81), ["10.8.1.1:81"]),
        "tag": ("svc-9", lambda c: c.retag("svc-9-a", ["blue"]), ["blue"]),
        "check flap": ("svc-9", lambda c: c.set_status("svc-9-a", "critical"), []),
        "maintenance": ("svc-9", lambda c: c.maintenance("svc-9-a"), []),
        "node failure": ("ext", lambda c: c.node_check("ext-node", "10.8.2.1", "critical"), []),
    }


def _view(data: object) -> list[str]:
    assert isinstance(data, tuple)
    return [f"{i.ID} {i.Address}:{i.Port} {','.join(i.Tags)}" for i in data]


@pytest.mark.parametrize("mode", ["ui", "classic"])
@pytest.mark.parametrize("kind", list(_changes()))
async def test_every_change_reaches_a_watch(consul: ConsulFixture, kind: str, mode: FeedMode
                                            ) -> None:
    """Each kind of change ends a blocking fetch of the changed service promptly, also when
    watches outnumber the connections (catalog-wide watches must see every kind)."""
    name, change, want = _changes()[kind]
    for n in range(12):
        consul.register(f"svc-{n}-a", f"svc-{n}", f"10.8.0.{n + 1}", 80)
    consul.register("nochk-a", "nochk", "10.8.1.1", 80, status=None)
    consul.register_external("ext-node", "10.8.2.1", "ext-a", "ext", address="10.8.2.2", port=80)
    consul.node_check("ext-node", "10.8.2.1", "passing")
    cat = ConsulCatalog(CatalogConfig(consul=ConsulConfig(address=consul.addr),
                                      block_query_wait=30.0), feed_mode=mode)
    names = [f"svc-{n}" for n in range(12)] + ["nochk", "ext"]
    queries = {n: service(cat, n) for n in names}
    try:
        first = {n: await q.fetch(0) for n, q in queries.items()}
        tasks = {n: asyncio.create_task(q.fetch(first[n][1])) for n, q in queries.items()}
        await asyncio.sleep(0.3)
        assert not any(t.done() for t in tasks.values())
        await asyncio.to_thread(change, consul)
        data, index = await asyncio.wait_for(tasks[name], PROMPT)
        assert index > first[name][1]
        view = _view(data)
        for part in want:
            assert any(part in line for line in view), (kind, view)
        if not want:
            assert view == [], (kind, view)
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        await cat.aclose()
