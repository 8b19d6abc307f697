"""ZkCatalog against a real ZooKeeper server (tests/fixtures_zk.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from ctmpl.config.model import CatalogConfig, ZkConfig
from ctmpl.errors import QueryError, SourceError
from ctmpl.model import Instance, KVPair, ServiceSummary
from ctmpl.sources.base import UNPINNED, parse_service, pin_of
from ctmpl.sources.zk import ZkCatalog
from tests.fixtures_etcd import free_port
from tests.fixtures_zk import ZkServer, java
from tests.queries import blocked, ids, until

TIMEOUT = 20.0  # a change normally arrives in milliseconds; only a stalled machine needs more


def make_catalog(hosts: str, prefix: str, wait: float = 30.0, **zk: Any) -> ZkCatalog:
    config = ZkConfig(hosts=(hosts,), prefix=prefix, **zk)
    return ZkCatalog(CatalogConfig(kind="zk", zk=config, block_query_wait=wait))


@pytest.fixture
async def catalog(zk_server: ZkServer, zk: KazooClient, zk_prefix: str
                  ) -> AsyncIterator[ZkCatalog]:
    cat = make_catalog(zk_server.hosts, zk_prefix, session_timeout=2.0)
    try:
        yield cat
    finally:
        await cat.aclose()




async def test_layouts_services_and_filters(
    zk: KazooClient, zk_prefix: str, catalog: ZkCatalog
) -> None:
    p = zk_prefix
    zk.create(f"{p}/web/10.0.0.1:80", makepath=True)  # Swarm: the name is ip:port
    zk.create(f"{p}/web/b", b"10.0.0.2:8080\n")
    zk.create(f"{p}/web/c", json.dumps({"Address": "10.0.0.3", "Port": 81,
                                        "Tags": ["calico", "v1"], "Meta": {"zone": "a"}}).encode())
    zk.create(f"{p}/web/10.0.0.4:80", b'{"Tags": ["calico"], "Status": "critical"}')
    zk.create(f"{p}/db/x", b"[fd00::5]:5432", makepath=True)
    zk.create(f"{p}/empty", b"")  # a service folder without instances
    zk.create(f"{p}/10.0.0.9:9000", b"")  # flat layout: a "services" instance

    web, index = await catalog.service(parse_service("web")).fetch(0)
    assert index > 0
    assert ids(web) == [("10.0.0.1:80", "10.0.0.1", 80, ()), ("b", "10.0.0.2", 8080, ()),
                        ("c", "10.0.0.3", 81, ("calico", "v1"))]
    assert web[2] == Instance(Name="web", ID="c", Address="10.0.0.3", Port=81,
                              Tags=("calico", "v1"), Meta={"zone": "a"})
    tagged, _ = await catalog.service(parse_service("calico.web|any")).fetch(0)
    assert [i.ID for i in tagged] == ["10.0.0.4:80", "c"]
    flat, _ = await catalog.service(parse_service("services")).fetch(0)
    assert ids(flat) == [("10.0.0.9:9000", "10.0.0.9", 9000, ())]
    summary, _ = await catalog.services().fetch(0)
    assert summary == (ServiceSummary("db"), ServiceSummary("services"),
                       ServiceSummary("web", ("calico", "v1")))
    assert (await catalog.nodes().fetch(0))[0] == ()
    assert catalog.service(parse_service("calico.web")).key == "zk.service(calico.web|passing)"
    with pytest.raises(QueryError):
        catalog.service(parse_service("web@dc2"))
    with pytest.raises(QueryError, match="not a ZooKeeper path"):
        catalog.key("a//b")


async def test_changes_wake_only_the_queries_they_concern(
    zk: KazooClient, zk_prefix: str, catalog: ZkCatalog
) -> None:
    p = zk_prefix
    zk.create(f"{p}/web/a", b"10.0.0.1:80", makepath=True)
    zk.create(f"{p}/db/x", b"10.0.1.1:5432", makepath=True)
    web, db = catalog.service(parse_service("web")), catalog.service(parse_service("db"))
    _, web_index = await web.fetch(0)
    _, db_index = await db.fetch(0)
    services = catalog.services()
    _, services_index = await services.fetch(0)
    web_task = await blocked(web, web_index)
    services_task = await blocked(services, services_index)

    zk.create(f"{p}/db/y", b"10.0.1.2:5432")
    data, _ = await until(db, lambda d: len(d) == 2, db_index)
    await asyncio.sleep(0.1)
    assert not web_task.done(), "a change of db woke a query of web"
    assert not services_task.done(), "a new instance without new tags changed services()"

    zk.delete(f"{p}/web/a")
    data, index = await asyncio.wait_for(web_task, TIMEOUT)
    assert data == () and index > web_index
    summary, _ = await asyncio.wait_for(services_task, TIMEOUT)
    assert summary == (ServiceSummary("db"),)

    zk.create(f"{p}/web/b", b"10.0.0.2:80")
    zk.set(f"{p}/db/y", b'{"Address": "10.0.1.3", "Port": 5432, "Tags": ["v2"]}')
    data, _ = await until(web, lambda d: [i.ID for i in d] == ["b"], index)
    summary, _ = await until(services, lambda s: s == (ServiceSummary("db", ("v2",)),
                                                       ServiceSummary("web")))


async def test_block_query_wait_returns_the_same_index(
    zk_server: ZkServer, zk: KazooClient, zk_prefix: str
) -> None:
    zk.create(f"{zk_prefix}/web/a", b"10.0.0.1:80", makepath=True)
    cat = make_catalog(zk_server.hosts, zk_prefix, wait=0.3)
    try:
        query = cat.service(parse_service("web"))
        data, index = await query.fetch(0)
        again, same = await asyncio.wait_for(query.fetch(index), TIMEOUT)
        assert (again, same) == (data, index)
    finally:
        await cat.aclose()


async def test_prefix_created_after_start(
    zk: KazooClient, zk_prefix: str, catalog: ZkCatalog
) -> None:
    query = catalog.service(parse_service("web"))
    data, index = await query.fetch(0)
    assert data == ()
    zk.create(f"{zk_prefix}/web/a", b"10.0.0.1:80", makepath=True)
    data, index = await until(query, lambda d: len(d) == 1, index)
    zk.delete(zk_prefix, recursive=True)
    data, index = await until(query, lambda d: d == (), index)
    zk.create(f"{zk_prefix}/web/b", b"10.0.0.2:80", makepath=True)
    data, _ = await until(query, lambda d: [i.ID for i in d] == ["b"], index)


async def test_ephemeral_nodes_leave_with_their_session(
    zk_server: ZkServer, zk: KazooClient, zk_prefix: str, catalog: ZkCatalog
) -> None:
    zk.create(f"{zk_prefix}/web/a", b"10.0.0.1:80", makepath=True)
    owner = zk_server.client()
    try:
        owner.create(f"{zk_prefix}/web/10.0.0.2:80", ephemeral=True)
        query = catalog.service(parse_service("web"))
        _, index = await until(query, lambda d: len(d) == 2)
    finally:
        owner.stop()  # closing the session deletes its ephemeral nodes
        owner.close()
    await until(query, lambda d: [i.ID for i in d] == ["a"], index)


async def test_key_tree_and_pin(zk: KazooClient, zk_prefix: str, catalog: ZkCatalog) -> None:
    root = zk_prefix.rsplit("/", 1)[0]  # raw nodes live outside the catalog prefix
    app = f"{root}/app"[1:]
    zk.create(f"/{app}/mode", b"blue", makepath=True)
    zk.create(f"/{app}/db/host", b"db1", makepath=True)
    zk.create(f"/{app}/db/port", b"5432")
    key, tree = catalog.key(f"{app}/mode"), catalog.tree(app)
    assert key.key == f"zk.key({app}/mode)" and tree.key == f"zk.tree({app})"
    value, key_index = await key.fetch(0)
    assert value == KVPair(Key=f"{app}/mode", Path=f"{app}/mode", Value="blue")
    pairs, tree_index = await tree.fetch(0)
    assert [(p.Key, p.Value) for p in pairs] == [("db/host", "db1"), ("db/port", "5432"),
                                                 ("mode", "blue")]
    missing, _ = await catalog.key(f"{app}/nope").fetch(0)
    assert missing is None

    unread = catalog.key(f"{app}/db/host")  # a copy that was never read in full
    pin = pin_of(catalog)
    assert pin is not None and pin(unread) is UNPINNED
    zk.set(f"/{app}/mode", b"green")
    value, _ = await until(key, lambda v: v is not None and v.Value == "green", key_index)
    assert pin(key).Value == "blue"  # type: ignore[attr-defined]
    zk.delete(f"/{app}/db", recursive=True)
    pairs, _ = await until(tree, lambda p: len(p) == 1, tree_index)
    assert pairs[0].Key == "mode"


async def test_hostile_values_are_dropped_with_one_warning(
    zk: KazooClient, zk_prefix: str, catalog: ZkCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    p = zk_prefix
    bad = {
        f"{p}/web/noport": b"10.0.0.9",
        f"{p}/web/range": b"10.0.0.9:70000",
        f"{p}/web/json": b'{"Address": "10.0.0.9", "Port": ',
        f"{p}/web/inject": b'{"Address": "10.0.0.9;}", "Port": 80}',
        f"{p}/web/10.0.0.9:80;": b"",
        f"{p}/bad;name/x": b"10.0.0.9:80",
    }
    zk.create(f"{p}/web/good", b"10.0.0.1:80", makepath=True)
    for path, value in bad.items():
        zk.create(path, value, makepath=True)
    query = catalog.service(parse_service("web"))
    with caplog.at_level(logging.WARNING):
        data, index = await query.fetch(0)
        assert ids(data) == [("good", "10.0.0.1", 80, ())]
        zk.create(f"{p}/web/good2", b"10.0.0.2:80")  # a change must not warn again
        data, _ = await until(query, lambda d: len(d) == 2, index)
        summary, _ = await catalog.services().fetch(0)
        assert summary == (ServiceSummary("web"),)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for path in bad:
        assert sum(f"zk node '{path}'" in w for w in warnings) == 1, (path, warnings)
    assert len(warnings) == len(bad)


async def test_unreachable_at_start_names_query_and_host(zk_prefix: str) -> None:
    hosts = f"127.0.0.1:{free_port()}"
    cat = make_catalog(hosts, zk_prefix, session_timeout=1.0)
    try:
        with pytest.raises(SourceError, match=rf"^zk\.services: cannot connect to .*{hosts}"):
            await asyncio.wait_for(cat.services().fetch(0), TIMEOUT)
    finally:
        await cat.aclose()


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


async def test_session_expiry_loses_no_update(
    zk_server: ZkServer, zk: KazooClient, zk_prefix: str, catalog: ZkCatalog,
    caplog: pytest.LogCaptureFixture,
) -> None:
    p = zk_prefix
    zk.create(f"{p}/web/a", b"10.0.0.1:80", makepath=True)
    zk.create(f"{p}/web/b", b"10.0.0.2:80")
    query = catalog.service(parse_service("web"))
    data, index = await query.fetch(0)
    assert [i.ID for i in data] == ["a", "b"]
    client = catalog._conn._client  # the catalog's session, taken over and closed below
    assert client is not None
    thief = KazooClient(hosts=zk_server.hosts, client_id=client.client_id)
    thief.start(timeout=15)  # the server moves the session to the thief: the catalog is cut off
    try:
        zk.delete(f"{p}/web/a")  # changes while the catalog holds no live watch
        zk.create(f"{p}/web/c", b"10.0.0.3:80")
    finally:
        thief.stop()  # closing the session expires it for the catalog
        thief.close()
    data, _ = await until(query, lambda d: [i.ID for i in d] == ["b", "c"], index)
    await until_logged(caplog, "with a new session")
    assert any("keeping the last good data" in m for m in messages(caplog, logging.WARNING))


async def until_logged(caplog: pytest.LogCaptureFixture, needle: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not any(needle in r.getMessage() for r in caplog.records):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_server_restart_loses_no_update(
    zk_server: ZkServer, zk: KazooClient, zk_prefix: str, catalog: ZkCatalog,
    caplog: pytest.LogCaptureFixture,
) -> None:
    p = zk_prefix
    zk.create(f"{p}/web/a", b"10.0.0.1:80", makepath=True)
    zk.create(f"{p}/web/b", b"10.0.0.2:80")
    query = catalog.service(parse_service("web"))
    _, index = await query.fetch(0)
    zk_server.stop()
    await until_logged(caplog, "connection lost (reconnecting; keeping the last good data)")
    task = await blocked(query, index)  # the outage blocks: no error, no empty answer
    zk_server.start()
    zk.retry(zk.delete, f"{p}/web/a")
    zk.retry(zk.create, f"{p}/web/c", b"10.0.0.3:80")
    await asyncio.wait_for(task, TIMEOUT)  # the re-read after the restart answers it
    await until(query, lambda d: [i.ID for i in d] == ["b", "c"])
    await until_logged(caplog, "recovered after")
    assert len([m for m in messages(caplog, logging.WARNING) if "zk " in m]) == 1


async def test_digest_auth_reads_protected_nodes(
    zk_server: ZkServer, zk: KazooClient, zk_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    acl = [make_digest_acl("reader", "s3cret", all=True)]
    zk.create(f"{zk_prefix}/web/a", b"10.0.0.1:80", makepath=True)
    zk.create(f"{zk_prefix}/web/b", b"10.0.0.2:80", acl=acl)
    zk.create(f"{zk_prefix}-locked", acl=acl)
    plain = make_catalog(zk_server.hosts, zk_prefix)
    locked = make_catalog(zk_server.hosts, f"{zk_prefix}-locked")
    authed = make_catalog(zk_server.hosts, zk_prefix, username="reader", password="s3cret")
    try:
        with caplog.at_level(logging.WARNING):
            data, _ = await plain.service(parse_service("web")).fetch(0)
        assert [i.ID for i in data] == ["a"]
        assert any(f"zk node '{zk_prefix}/web/b': not readable" in m
                   for m in messages(caplog, logging.WARNING))
        data, _ = await authed.service(parse_service("web")).fetch(0)
        assert [i.ID for i in data] == ["a", "b"]
        # An unreadable prefix is empty and said so once; nothing is asked again and again.
        assert (await asyncio.wait_for(locked.services().fetch(0), TIMEOUT))[0] == ()
        await asyncio.sleep(0.3)
        tree = locked._trees[f"{zk_prefix}-locked", 2][0]
        assert tree._pending == 0
        assert any(f"zk node '{zk_prefix}-locked': not readable" in m
                   for m in messages(caplog, logging.WARNING))
    finally:
        for cat in (plain, authed, locked):
            await cat.aclose()


async def test_a_server_that_lost_its_data_is_read_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A server refuses a client that has seen newer transactions than it has: after the
    # data is gone, only a new client gets in (after twice the session timeout).
    server = ZkServer(java(), tmp_path / "zk")
    server.start()
    cat = make_catalog(server.hosts, "/svc", session_timeout=1.0)
    try:
        writer = server.client()
        writer.create("/svc/web/a", b"10.0.0.1:80", makepath=True)
        query = cat.service(parse_service("web"))
        for port in range(81, 101):  # history the wiped server will not have
            writer.set("/svc/web/a", f"10.0.0.1:{port}".encode())
        _, index = await until(query, lambda d: d[0].Port == 100)
        writer.stop()
        writer.close()
        server.stop()
        server.wipe()
        server.start()
        writer = server.client()
        writer.create("/svc/web/b", b"10.0.0.2:80", makepath=True)
        writer.stop()
        writer.close()
        await until(query, lambda d: [i.ID for i in d] == ["b"], index)
    finally:
        await cat.aclose()
        server.stop()
    assert any("starting over with a new client" in m for m in messages(caplog, logging.INFO))
    assert any("history went backwards" in m for m in messages(caplog, logging.WARNING))
