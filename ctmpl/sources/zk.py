"""ZooKeeper as a service catalog: registrations under a prefix, plus raw nodes as KV.

``ZkCatalog(config)`` reads ``config.zk`` (hosts, prefix, session timeout, digest auth).
Service queries read the layouts of ``ctmpl.sources.registrations`` below the prefix, as
the etcd catalog does: ``<prefix>/<service>/<id>`` whose value is ``ip:port`` or a JSON
object — or whose value is empty and whose name is the ``ip:port`` (Docker Swarm's
``<prefix>/<service>/<ip>:<port>``) — and the flat ``<prefix>/<ip>:<port>``. All service
queries share one watched copy of the prefix, two levels deep (``ctmpl.sources.zk_tree``);
``key()``/``tree()`` read raw nodes (not under the prefix) with their own copies.

Indexes are per query: a service's index moves only when that service's instances change,
``services()``'s only when the list of names or tags does. Dead instances leave when their
ephemeral node goes with its owner's session. A lost connection or an expired session keeps
the last good data and blocks the queries until kazoo has reconnected and the copies are
read again in full; only a catalog never read yet makes its fetches fail (``SourceError``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ctmpl.config.model import CatalogConfig
from ctmpl.config.zk import zk_path
from ctmpl.errors import ConfigError, QueryError
from ctmpl.model import Instance, KVPair, ServiceSummary, sort_instances
from ctmpl.sources.base import UNPINNED, Pin, Query, ServiceSpec, kv_path, relative_pairs
from ctmpl.sources.registrations import EntryParser
from ctmpl.sources.zk_client import ZkConnection
from ctmpl.sources.zk_tree import Owner, ZkTree, child_path

SERVICES = "\0services"  # the stamp of the service list (names and their tags)
NODES = "\0nodes"  # never moves: ZooKeeper registrations carry no node
WHOLE = "\0whole"  # the stamp of a KV tree or key
SERVICE_DEPTH = 2  # <prefix>/<service>/<instance>
TREE_DEPTH = 32  # how deep tree() follows nodes

View = Callable[[Any], object]


class ServiceIndex:
    """Instances by service name, re-parsed only for the services a change touches."""

    def __init__(self, prefix: str) -> None:
        self._parser = EntryParser(prefix, "zk node")
        self._flat = prefix.rsplit("/", 1)[-1]  # the flat layout's service ("" at the root)
        self._base = len(child_path(prefix, ""))
        self._memo: dict[str, tuple[bytes, Instance | None]] = {}
        self._summaries: dict[str, ServiceSummary] = {}
        # Replaced, never mutated: a pinned render keeps reading the version it took.
        self.state: tuple[dict[str, tuple[Instance, ...]], tuple[ServiceSummary, ...]] = ({}, ())

    def update(self, tree: ZkTree, changed: set[str]) -> Iterable[str]:
        """Re-read the services whose nodes changed; the names whose instances changed."""
        names = {self._service_of(path) for path in changed if path != tree.root}
        names.discard("")
        for path in changed:
            if path not in tree.data:
                self._memo.pop(path, None)
        instances = dict(self.state[0])
        touched = set()
        for name in names:
            found = self._read(tree, name)
            if found != instances.get(name, ()):
                touched.add(name)
                self._set(instances, name, found)
        if touched:
            summary = tuple(self._summaries[n] for n in sorted(self._summaries))
            if summary != self.state[1]:
                touched.add(SERVICES)
            self.state = (instances, summary)
        return touched

    def _service_of(self, path: str) -> str:
        first = path[self._base:].split("/", 1)[0]
        return self._flat if ":" in first else first  # a name with ':' is a flat ip:port

    def _read(self, tree: ZkTree, name: str) -> tuple[Instance, ...]:
        folder = child_path(tree.root, name)
        paths = [child_path(folder, c) for c in tree.children.get(folder, ())]
        if name == self._flat:
            paths += [child_path(tree.root, c) for c in tree.children.get(tree.root, ())
                      if ":" in c]
        found = [self._parse(path, tree.data.get(path)) for path in paths]
        return sort_instances(i for i in found if i is not None)

    def _parse(self, path: str, data: bytes | None) -> Instance | None:
        if data is None:
            return None  # listed, not read yet: the next settled update has it
        hit = self._memo.get(path)
        if hit is None or hit[0] != data:
            hit = self._memo[path] = (data, self._parser.parse(path.encode(), data))
        return hit[1]

    def _set(self, instances: dict[str, tuple[Instance, ...]], name: str,
             found: tuple[Instance, ...]) -> None:
        if not found:
            instances.pop(name, None)
            self._summaries.pop(name, None)
            return
        instances[name] = found
        tags = sorted({t for i in found for t in i.Tags})
        self._summaries[name] = ServiceSummary(Name=name, Tags=tuple(tags))


class KeyOwner:
    """One node's data as a KVPair (None while the node does not exist)."""

    def __init__(self, key: str) -> None:
        self._key = key
        self.state: KVPair | None = None

    def update(self, tree: ZkTree, changed: set[str]) -> Iterable[str]:
        """The node's new value; ``WHOLE`` when it changed."""
        raw = tree.data.get(tree.root)
        value = None if raw is None else KVPair(Key=self._key, Path=self._key, Value=_text(raw))
        if value == self.state:
            return ()
        self.state = value
        return (WHOLE,)


class TreeOwner:
    """Every leaf node below a prefix as sorted KVPairs (nodes with children are folders)."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self.state: tuple[KVPair, ...] = ()

    def update(self, tree: ZkTree, changed: set[str]) -> Iterable[str]:
        """The pairs again; ``WHOLE`` when they changed."""
        items = ((path[1:], _text(raw)) for path, raw in tree.data.items()
                 if path != tree.root and not tree.children.get(path))
        pairs = relative_pairs(self._prefix, items)
        if pairs == self.state:
            return ()
        self.state = pairs
        return (WHOLE,)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class ZkQuery:
    """One query: blocks on ``name``'s stamp in ``tree``; ``view`` reads the owner's state."""

    def __init__(self, key: str, tree: ZkTree, owner: Any, *, name: str, wait: float,
                 view: View) -> None:
        self._key = key
        self.tree = tree
        self.owner = owner
        self._name = name
        self._wait = wait
        self._view = view

    @property
    def key(self) -> str:
        """Stable identifier, e.g. ``zk.service(calico.web|passing)``."""
        return self._key

    def read(self, state: Any) -> object:
        """This query's data in a pinned state of its owner."""
        return self._view(state)

    async def fetch(self, index: int) -> tuple[object, int]:
        """(data, stamp); blocks while ``index`` is current, up to block_query_wait."""
        stamp = await self.tree.wait(self._name, index, self._wait, self._key)
        return self._view(self.owner.state), stamp


class ZkCatalog:
    """The ``Catalog`` protocol over ZooKeeper (see the module docstring for the layouts)."""

    name = "zk"

    def __init__(self, config: CatalogConfig) -> None:
        self._wait = config.block_query_wait
        self._prefix = config.zk.prefix
        self._conn = ZkConnection(config.zk)
        self._trees: dict[tuple[str, int], tuple[ZkTree, Any]] = {}

    def _tree(self, root: str, depth: int, make: Callable[[], Owner]) -> tuple[ZkTree, Any]:
        found = self._trees.get((root, depth))
        if found is None:
            owner = make()
            found = self._trees[root, depth] = (ZkTree(self._conn, root, depth, owner), owner)
        return found

    def _query(self, key: str, name: str, view: View) -> Query:
        tree, index = self._tree(self._prefix, SERVICE_DEPTH,
                                 lambda: ServiceIndex(self._prefix))
        return ZkQuery(key, tree, index, name=name, wait=self._wait, view=view)

    def services(self) -> Query:
        """Every service name under the prefix with the union of its tags."""
        return self._query("zk.services", SERVICES, lambda state: state[1])

    def service(self, spec: ServiceSpec) -> Query:
        """Instances of one service; ``~near`` is accepted and ignored (no node distances)."""
        if spec.dc:
            raise QueryError(f"service({spec.key!r}): ZooKeeper catalogs have no datacenters")

        def view(state: Any) -> object:
            return tuple(i for i in state[0].get(spec.name, ()) if spec.accepts(i))

        return self._query(f"zk.service({spec.key})", spec.name, view)

    def nodes(self) -> Query:
        """Always an empty tuple: ZooKeeper registrations have no nodes."""
        return self._query("zk.nodes", NODES, lambda state: ())

    def key(self, path: str) -> Query:
        """One raw node (not under the catalog prefix) as a KVPair, or None."""
        path = kv_path("key", path)
        tree, owner = self._tree(_node("key", path), 0, lambda: KeyOwner(path))
        return ZkQuery(f"zk.key({path})", tree, owner, name=WHOLE, wait=self._wait,
                       view=lambda s: s)

    def tree(self, prefix: str) -> Query:
        """Every raw leaf node below ``prefix`` as sorted KVPairs."""
        prefix = kv_path("tree", prefix, allow_empty=True)
        tree, owner = self._tree(_node("tree", prefix), TREE_DEPTH, lambda: TreeOwner(prefix))
        return ZkQuery(f"zk.tree({prefix})", tree, owner, name=WHOLE, wait=self._wait,
                       view=lambda s: s)

    def pin(self) -> Pin:
        """Answer queries from the copies as they are now: one version per render (a copy
        not read in full yet answers nothing: its queries fall back to the brain)."""
        frozen = {id(owner): owner.state for tree, owner in self._trees.values()
                  if tree.complete}

        def read(query: Query) -> object:
            if not isinstance(query, ZkQuery) or id(query.owner) not in frozen:
                return UNPINNED
            return query.read(frozen[id(query.owner)])

        return read

    async def aclose(self) -> None:
        """Close the session; queries must not be used afterwards."""
        await self._conn.aclose()


def _node(func: str, path: str) -> str:
    try:
        return zk_path(func, path)
    except ConfigError:
        raise QueryError(f"{func}({path!r}): not a ZooKeeper path") from None
