"""EtcdCatalog against a real etcd server (tests/fixtures_etcd.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest

from ctmpl.config.model import TLS, CatalogConfig, EtcdConfig
from ctmpl.errors import QueryError, SourceError
from ctmpl.model import Instance, KVPair, ServiceSummary
from ctmpl.sources.base import parse_service
from ctmpl.sources.etcd import EtcdCatalog
from ctmpl.sources.registrations import split_host_port
from tests.fixtures_etcd import EtcdServer, free_port
from tests.queries import blocked, ids, until

# Generous: a change normally arrives in milliseconds; only a stalled machine needs more.
TIMEOUT = 15.0


def make_catalog(endpoint: str, prefix: str = "services", wait: float = 30.0) -> EtcdCatalog:
    etcd = EtcdConfig(endpoints=(endpoint,), prefix=prefix)
    return EtcdCatalog(CatalogConfig(kind="etcd", etcd=etcd, block_query_wait=wait))


@pytest.fixture
async def catalog(etcd: EtcdServer) -> AsyncIterator[EtcdCatalog]:
    cat = make_catalog(etcd.endpoint)
    try:
        yield cat
    finally:
        await cat.aclose()




def test_split_host_port() -> None:
    assert split_host_port("k", "10.0.0.1:80") == ("10.0.0.1", "80")
    assert split_host_port("k", "[fd00::1]:8080") == ("fd00::1", "8080")
    assert split_host_port("k", "web.internal:443") == ("web.internal", "443")
    for bad in ("10.0.0.1", "fd00::1:80", "[fd00::1]80", ""):
        with pytest.raises(ValueError):
            split_host_port("k", bad)


async def follows_web_and_refuses_plain(config: EtcdConfig, server: EtcdServer) -> None:
    """With ``config`` a watch of ``web`` sees a new instance; a plain client is refused."""
    cat = EtcdCatalog(CatalogConfig(kind="etcd", etcd=config))
    try:
        query = cat.service(parse_service("web"))
        data, index = await asyncio.wait_for(query.fetch(0), TIMEOUT)
        assert [i.ID for i in data] == ["a"]
        task = await blocked(query, index)
        server.put("services/web/b", "10.0.0.2:80")
        data, _ = await asyncio.wait_for(task, TIMEOUT)
        assert [i.ID for i in data] == ["a", "b"]
    finally:
        await cat.aclose()
    plain = make_catalog(server.endpoint)
    try:
        with pytest.raises(SourceError, match=r"^etcd\.services: "):
            await asyncio.wait_for(plain.services().fetch(0), TIMEOUT)
    finally:
        await plain.aclose()


async def test_query_keys(etcd: EtcdServer, catalog: EtcdCatalog) -> None:
    assert catalog.service(parse_service("calico.web")).key == "etcd.service(calico.web|passing)"
    assert catalog.service(parse_service("web|any")).key == "etcd.service(web|any)"
    assert catalog.services().key == "etcd.services"
    assert catalog.nodes().key == "etcd.nodes"
    assert catalog.key("/app/x/").key == "etcd.key(app/x)"
    assert catalog.tree("app/").key == "etcd.tree(app)"
    with pytest.raises(QueryError):
        catalog.service(parse_service("web@dc2"))


async def test_nested_layout(etcd: EtcdServer, catalog: EtcdCatalog) -> None:
    etcd.put("services/web/b", "10.0.0.2:8080\n")
    etcd.put("services/web/a", json.dumps(
        {"Address": "10.0.0.1", "Port": 80, "Tags": ["calico", "v1"], "Meta": {"zone": "a"}}
    ))
    etcd.put("services/web/c", "[fd00::3]:81")
    etcd.put("services/web/d", json.dumps({"Address": "10.0.0.4", "Port": 80,
                                           "Status": "critical"}))
    etcd.put("services/db/x", "10.0.1.1:5432")
    etcd.put("elsewhere/web/z", "10.9.9.9:80")

    data, index = await catalog.service(parse_service("web")).fetch(0)
    assert index == etcd.revision()
    assert ids(data) == [
        ("a", "10.0.0.1", 80, ("calico", "v1")),
        ("b", "10.0.0.2", 8080, ()),
        ("c", "fd00::3", 81, ()),
    ]
    assert data[0] == Instance(Name="web", ID="a", Address="10.0.0.1", Port=80,
                               Tags=("calico", "v1"), Meta={"zone": "a"})
    tagged, _ = await catalog.service(parse_service("calico.web")).fetch(0)
    assert ids(tagged) == [("a", "10.0.0.1", 80, ("calico", "v1"))]
    critical, _ = await catalog.service(parse_service("web|critical")).fetch(0)
    assert [i.ID for i in critical] == ["d"]
    summary, _ = await catalog.services().fetch(0)
    assert summary == (ServiceSummary("db"), ServiceSummary("web", ("calico", "v1")))
    nodes, _ = await catalog.nodes().fetch(0)
    assert nodes == ()


async def test_flat_layout(etcd: EtcdServer) -> None:
    etcd.put("/dockreg/web/10.0.0.1:80", "10.0.0.1:80")
    etcd.put("/dockreg/web/[fd00::2]:8080", json.dumps({"Tags": ["blue"]}))
    cat = make_catalog(etcd.endpoint, prefix="/dockreg/web/")
    try:
        data, _ = await cat.service(parse_service("web")).fetch(0)
        assert ids(data) == [
            ("10.0.0.1:80", "10.0.0.1", 80, ()),
            ("[fd00::2]:8080", "fd00::2", 8080, ("blue",)),
        ]
        summary, _ = await cat.services().fetch(0)
        assert summary == (ServiceSummary("web", ("blue",)),)
    finally:
        await cat.aclose()


async def test_blocked_fetch_sees_put_delete_retag(
    etcd: EtcdServer, catalog: EtcdCatalog
) -> None:
    etcd.put("services/web/a", "10.0.0.1:80")
    query = catalog.service(parse_service("web"))
    data, index = await query.fetch(0)
    assert ids(data) == [("a", "10.0.0.1", 80, ())]

    task = await blocked(query, index)
    etcd.put("services/web/b", "10.0.0.2:80")
    data, index = await asyncio.wait_for(task, TIMEOUT)
    assert [i.ID for i in data] == ["a", "b"]
    assert index == etcd.revision()

    task = await blocked(query, index)
    etcd.put("services/web/a", json.dumps({"Address": "10.0.0.1", "Port": 80, "Tags": ["new"]}))
    data, index = await asyncio.wait_for(task, TIMEOUT)
    assert ids(data)[0] == ("a", "10.0.0.1", 80, ("new",))

    task = await blocked(query, index)
    etcd.delete("services/web/b")
    data, index = await asyncio.wait_for(task, TIMEOUT)
    assert [i.ID for i in data] == ["a"]


async def test_block_query_wait_returns_same_index(etcd: EtcdServer) -> None:
    etcd.put("services/web/a", "10.0.0.1:80")
    cat = make_catalog(etcd.endpoint, wait=0.2)
    try:
        query = cat.service(parse_service("web"))
        data, index = await query.fetch(0)
        again, same = await asyncio.wait_for(query.fetch(index), TIMEOUT)
        assert (again, same) == (data, index)
        etcd.put("unrelated/key", "x")  # outside the prefix: no wake-up, same index
        again, same = await asyncio.wait_for(query.fetch(index), TIMEOUT)
        assert same == index
    finally:
        await cat.aclose()


async def test_lease_expiry_removes_instance(etcd: EtcdServer, catalog: EtcdCatalog) -> None:
    etcd.put("services/web/a", "10.0.0.1:80")
    etcd.lease_put("services/web/b", "10.0.0.2:80", ttl=1)
    query = catalog.service(parse_service("web"))
    data, index = await until(query, lambda d: len(d) == 2)
    data, _ = await until(query, lambda d: len(d) == 1, index)
    assert [i.ID for i in data] == ["a"]
    assert etcd.get("services/web/b") is None


async def test_restart_mid_watch(etcd: EtcdServer, catalog: EtcdCatalog) -> None:
    etcd.put("services/web/a", "10.0.0.1:80")
    etcd.put("services/web/b", "10.0.0.2:80")
    query = catalog.service(parse_service("web"))
    data, index = await query.fetch(0)

    task = await blocked(query, index)
    etcd.stop()
    with pytest.raises(SourceError) as err:
        await asyncio.wait_for(task, TIMEOUT)
    assert str(err.value).startswith("etcd.service(web|passing): ")
    assert str(err.value).endswith(f"({etcd.endpoint})")
    with pytest.raises(SourceError, match="connection refused"):
        await asyncio.wait_for(query.fetch(index), TIMEOUT)

    etcd.start()
    etcd.delete("services/web/a")
    etcd.put("services/web/c", "10.0.0.3:80")
    data, index = await until(query, lambda d: [i.ID for i in d] == ["b", "c"], index)
    task = await blocked(query, index)
    etcd.put("services/web/d", "10.0.0.4:80")
    data, _ = await asyncio.wait_for(task, TIMEOUT)
    assert [i.ID for i in data] == ["b", "c", "d"]


async def test_compaction_forces_full_resync(
    etcd: EtcdServer, catalog: EtcdCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    etcd.put("services/web/a", "10.0.0.1:80")
    etcd.put("services/web/b", "10.0.0.2:80")
    query = catalog.service(parse_service("web"))
    data, index = await query.fetch(0)
    etcd.stop()
    with pytest.raises(SourceError):
        await asyncio.wait_for(query.fetch(index), TIMEOUT)

    etcd.start()
    etcd.delete("services/web/a")
    etcd.put("services/web/b", json.dumps({"Address": "10.0.0.2", "Port": 80, "Tags": ["x"]}))
    etcd.put("services/web/c", "10.0.0.3:80")
    etcd.compact()
    with caplog.at_level(logging.INFO, logger="ctmpl.sources.etcd_cache"):
        data, index = await until(query, lambda d: [i.ID for i in d] == ["b", "c"], index)
    assert ids(data) == [("b", "10.0.0.2", 80, ("x",)), ("c", "10.0.0.3", 80, ())]
    assert any("compacted" in r.getMessage() for r in caplog.records)
    task = await blocked(query, index)
    etcd.delete("services/web/c")
    data, _ = await asyncio.wait_for(task, TIMEOUT)
    assert [i.ID for i in data] == ["b"]


async def test_down_at_start(etcd: EtcdServer, catalog: EtcdCatalog) -> None:
    etcd.put("services/web/a", "10.0.0.1:80")
    etcd.stop()
    query = catalog.service(parse_service("web"))
    with pytest.raises(SourceError, match=r"^etcd\.service\(web\|passing\): connection refused"):
        await asyncio.wait_for(query.fetch(0), TIMEOUT)
    etcd.start()
    data, _ = await until(query, lambda d: len(d) == 1)
    assert ids(data) == [("a", "10.0.0.1", 80, ())]


async def test_bad_values_warn_once(
    etcd: EtcdServer, catalog: EtcdCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    bad = {
        "services/web/noport": "10.0.0.9",
        "services/web/range": "10.0.0.9:70000",
        "services/web/json": '{"Address": "10.0.0.9", "Port": ',
        "services/web/noaddr": '{"Port": 80}',
        "services/web/inject": '{"Address": "10.0.0.9;}", "Port": 80}',
        "services/bad;name/x": "10.0.0.9:80",
        "services/10.0.0.9": "not-a-flat-key",
    }
    for key, value in bad.items():
        etcd.put(key, value)
    etcd.put("services/web/good", "10.0.0.1:80")
    query = catalog.service(parse_service("web"))
    with caplog.at_level(logging.WARNING):
        data, index = await query.fetch(0)
        assert ids(data) == [("good", "10.0.0.1", 80, ())]
        summary, _ = await catalog.services().fetch(0)
        assert summary == (ServiceSummary("web"),)
        etcd.put("services/web/good2", "10.0.0.2:80")  # a change re-reads the prefix
        data, index = await until(query, lambda d: len(d) == 2, index)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for key in bad:
        assert sum(f"'{key}'" in w for w in warnings) == 1, (key, warnings)
    assert len(warnings) == len(bad)


async def test_key_and_tree(etcd: EtcdServer, catalog: EtcdCatalog) -> None:
    etcd.put("app/x", "hello ü")
    etcd.put("app/y/z", "deep")
    etcd.put("apple", "not under app/")
    value, index = await catalog.key("app/x").fetch(0)
    assert value == KVPair(Key="app/x", Path="app/x", Value="hello ü")
    missing, _ = await catalog.key("app/none").fetch(0)
    assert missing is None
    tree = catalog.tree("/app")
    pairs, tindex = await tree.fetch(0)
    assert pairs == (KVPair("x", "app/x", "hello ü"), KVPair("y/z", "app/y/z", "deep"))

    task = await blocked(catalog.key("app/x"), index)
    etcd.put("app/x", "changed")
    value, _ = await asyncio.wait_for(task, TIMEOUT)
    assert value == KVPair(Key="app/x", Path="app/x", Value="changed")
    pairs, tindex = await until(tree, lambda p: p[0].Value == "changed", tindex)
    task = await blocked(tree, tindex)
    etcd.delete("app/y/z")
    pairs, _ = await asyncio.wait_for(task, TIMEOUT)
    assert pairs == (KVPair("x", "app/x", "changed"),)


async def test_aclose_cancels_watches(etcd: EtcdServer) -> None:
    cat = make_catalog(etcd.endpoint)
    await cat.service(parse_service("web")).fetch(0)
    await cat.tree("app").fetch(0)
    await cat.aclose()
    names = [t.get_name() for t in asyncio.all_tasks() if not t.done()]
    assert not [n for n in names if n.startswith("etcd watch")]


async def test_second_endpoint_when_first_is_down(etcd: EtcdServer) -> None:
    etcd.put("services/web/a", "10.0.0.1:80")
    config = EtcdConfig(endpoints=(f"127.0.0.1:{free_port()}", etcd.endpoint), prefix="services")
    cat = EtcdCatalog(CatalogConfig(kind="etcd", etcd=config))
    try:
        data, _ = await asyncio.wait_for(cat.service(parse_service("web")).fetch(0), TIMEOUT)
        assert [i.ID for i in data] == ["a"]
    finally:
        await cat.aclose()


async def test_tls_with_client_certificate(etcd_tls: EtcdServer) -> None:
    files = etcd_tls.tls
    assert files is not None
    etcd_tls.put("services/web/a", "10.0.0.1:80")
    tls = TLS(enabled=True, ca_cert=str(files.ca), cert=str(files.client_cert),
              key=str(files.client_key))
    config = EtcdConfig(endpoints=(etcd_tls.endpoint,), prefix="services", tls=tls)
    await follows_web_and_refuses_plain(config, etcd_tls)


async def test_username_and_password(etcd: EtcdServer) -> None:
    etcd.put("services/web/a", "10.0.0.1:80")
    etcd.enable_auth("ctmpl", "s3cret")
    config = EtcdConfig(endpoints=(etcd.endpoint,), prefix="services",
                        username="ctmpl", password="s3cret")
    await follows_web_and_refuses_plain(config, etcd)


async def test_channel_closed_under_blocked_fetches(
    etcd: EtcdServer, catalog: EtcdCatalog
) -> None:
    # grpc.aio reports calls cancelled by a channel close as asyncio.CancelledError: the
    # watch must turn that into an error for its fetches, not die and leave them blocked.
    etcd.put("services/web/a", "10.0.0.1:80")
    etcd.put("app/x", "1")
    service, key = catalog.service(parse_service("web")), catalog.key("app/x")
    _, sindex = await service.fetch(0)
    _, kindex = await key.fetch(0)
    tasks = [await blocked(service, sindex), await blocked(key, kindex)]
    await catalog._conn.aclose()
    for task in tasks:
        with pytest.raises(SourceError, match="connection closed"):
            await asyncio.wait_for(task, TIMEOUT)
    etcd.put("app/x", "2")
    await until(key, lambda v: v is not None and v.Value == "2", kindex)
    data, _ = await asyncio.wait_for(service.fetch(0), TIMEOUT)
    assert [i.ID for i in data] == ["a"]
