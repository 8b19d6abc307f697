"""One contract for every catalog: the same registrations and keys, seeded into each store.

A contract test takes the ``seeded`` fixture (``tests/test_catalog_contract.py``), which runs
it once per entry of ``CATALOGS``. Each entry is an adapter that writes instances and KV keys
the way its store holds them and gives the ctmpl flags that select it:

- ``file``: a YAML file catalog, rewritten atomically on every change;
- ``etcd``: a real etcd; instances as JSON under ``/services/<name>/<id>``;
- ``consul``: the Consul API double (or a real agent with ``CTMPL_CONSUL_BIN``);
- ``zk``: a real ZooKeeper; instances as JSON nodes under ``<prefix>/<name>/<id>``, KV keys
  as nodes from the root (the test's ``/app`` is cleared first: the server is shared).

A new catalog joins by adding an adapter with the ``SeededCatalog`` methods and its name to
``CATALOGS``; ``supports`` lists the template functions it answers, so a test of a function
the catalog does not have is skipped for it with the reason named, never silently passed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.daemon import write_catalog
from tests.fixtures_consul import ConsulFixture
from tests.fixtures_etcd import EtcdServer

ALL = frozenset({"services", "service", "key", "keyOrDefault", "ls", "tree", "nodes"})


class SeededCatalog(Protocol):
    """A catalog filled through its own store, the same way for every contract test."""

    name: str
    supports: frozenset[str]  # template functions this catalog answers

    def register(self, id: str, name: str, address: str, port: int, *,
                 tags: tuple[str, ...] = (), status: str = "passing") -> None:
        """Add (or replace) one instance of service ``name``."""

    def put(self, key: str, value: str) -> None:
        """Set a KV key."""

    def args(self) -> list[str]:
        """The ctmpl flags that select this catalog."""


class FileSeed:
    """The file catalog: everything in one YAML file."""

    name = "file"
    supports = ALL

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "catalog.yaml"
        self._services: dict[str, dict[str, dict[str, Any]]] = {}
        self._kv: dict[str, str] = {}
        self._write()

    def register(self, id: str, name: str, address: str, port: int, *,
                 tags: tuple[str, ...] = (), status: str = "passing") -> None:
        self._services.setdefault(name, {})[id] = {
            "id": id, "address": address, "port": port, "tags": list(tags), "status": status}
        self._write()

    def put(self, key: str, value: str) -> None:
        self._kv[key] = value
        self._write()

    def args(self) -> list[str]:
        return ["-catalog", f"file://{self.path}"]

    def _write(self) -> None:
        services = {n: list(by_id.values()) for n, by_id in self._services.items()}
        write_catalog(self.path, services, kv=dict(self._kv))


class EtcdSeed:
    """etcd: one JSON value per instance under ``/services/<name>/<id>``; KV keys as they are."""

    name = "etcd"
    supports = ALL - {"nodes"}  # etcd has no nodes

    def __init__(self, server: EtcdServer) -> None:
        self._server = server

    def register(self, id: str, name: str, address: str, port: int, *,
                 tags: tuple[str, ...] = (), status: str = "passing") -> None:
        value = {"Address": address, "Port": port, "Tags": list(tags), "Status": status}
        self._server.put(f"/services/{name}/{id}", json.dumps(value))

    def put(self, key: str, value: str) -> None:
        self._server.put(key, value)

    def args(self) -> list[str]:
        return ["-catalog", f"etcd://{self._server.endpoint}/services"]


class ConsulSeed:
    """Consul: instances registered through the agent with a TTL check for their status."""

    name = "consul"
    supports = ALL

    def __init__(self, consul: ConsulFixture) -> None:
        self._consul = consul

    def register(self, id: str, name: str, address: str, port: int, *,
                 tags: tuple[str, ...] = (), status: str = "passing") -> None:
        self._consul.register(id, name, address, port, tags=tags, status=status)

    def put(self, key: str, value: str) -> None:
        self._consul.put(key, value)

    def args(self) -> list[str]:
        return ["-consul-addr", self._consul.addr]


class ZkSeed:
    """ZooKeeper: one JSON node per instance below the test's prefix; KV keys as nodes."""

    name = "zk"
    supports = ALL - {"nodes"}  # registrations in ZooKeeper carry no node

    def __init__(self, client: Any, hosts: str, prefix: str) -> None:
        self._zk, self._hosts, self._prefix = client, hosts, prefix
        if self._zk.exists("/app"):
            self._zk.delete("/app", recursive=True)

    def register(self, id: str, name: str, address: str, port: int, *,
                 tags: tuple[str, ...] = (), status: str = "passing") -> None:
        value = {"Address": address, "Port": port, "Tags": list(tags), "Status": status}
        self._set(f"{self._prefix}/{name}/{id}", json.dumps(value))

    def put(self, key: str, value: str) -> None:
        self._set(f"/{key}", value)

    def args(self) -> list[str]:
        return ["-catalog", f"zk://{self._hosts}{self._prefix}"]

    def _set(self, path: str, value: str) -> None:
        if self._zk.exists(path):
            self._zk.set(path, value.encode())
        else:
            self._zk.create(path, value.encode(), makepath=True)


# name → how to build the adapter from the pytest request (fixtures are started lazily, so a
# file-catalog run never starts etcd or Consul).
CATALOGS: dict[str, Callable[[pytest.FixtureRequest, Path], SeededCatalog]] = {
    "file": lambda request, tmp_path: FileSeed(tmp_path),
    "etcd": lambda request, tmp_path: EtcdSeed(request.getfixturevalue("etcd")),
    "consul": lambda request, tmp_path: ConsulSeed(request.getfixturevalue("consul")),
    "zk": lambda request, tmp_path: ZkSeed(request.getfixturevalue("zk"),
                                           request.getfixturevalue("zk_server").hosts,
                                           request.getfixturevalue("zk_prefix")),
}


def require(catalog: SeededCatalog, *functions: str) -> None:
    """Skip, naming the reason, when ``catalog`` lacks one of ``functions``."""
    missing = sorted(set(functions) - catalog.supports)
    if missing:
        pytest.skip(f"the {catalog.name} catalog has no {', '.join(missing)}")
