"""A live copy of one ZooKeeper subtree, kept current by one-shot watches, on the event loop.

Every read leaves a watch (``get`` a data watch, ``get_children`` a child watch, ``exists``
one on a missing root); a fired watch reads that node again, which sets the next watch.
A node is read down to ``depth`` levels below the root (0: the root alone). A missing root
is an empty tree that fills in when the root is created.

*Settled*: no read is in flight and none failed since the last (re)connect. Only a settled
tree publishes: its owner turns the changed paths into changed *names* (services, or the
tree as a whole), and each name's *stamp* — the index a query returns — moves to a new
number. A query blocks until its name's stamp moves (``wait``), so a change wakes only the
queries it concerns. After every reconnect (connection loss or session expiry: kazoo has
dropped every watch) the tree reads every node again; what vanished meanwhile (an
ephemeral node of an expired session) is found missing and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from kazoo.exceptions import ConnectionLoss, NoAuthError, NoNodeError, SessionExpiredError
from kazoo.protocol.states import EventType, WatchedEvent

from ctmpl.change_signal import ChangeSignal
from ctmpl.errors import SourceError
from ctmpl.model import warn_once
from ctmpl.sources.zk_client import Op, State, ZkConnection

log = logging.getLogger("ctmpl.sources.zk")

_CONNECTION_ERRORS = (ConnectionLoss, SessionExpiredError)
_RETRY_AFTER = 1.0  # seconds before a read that failed unexpectedly is tried again
_COMPLETE = "\0complete"  # woken by the first complete read (which moves every stamp)


class Owner(Protocol):
    """What a tree's data means: a service index, one key, a KV tree."""

    def update(self, tree: ZkTree, changed: set[str]) -> Iterable[str]:
        """Take the settled tree's changed paths; return the names whose data changed."""
        ...


def child_path(parent: str, name: str) -> str:
    """``/a`` + ``b`` → ``/a/b``; ``/`` + ``b`` → ``/b``."""
    return f"{parent.rstrip('/')}/{name}"


class ZkTree:
    """Nodes below ``root`` (``data``: path → bytes; ``children``: path → names)."""

    def __init__(self, conn: ZkConnection, root: str, depth: int, owner: Owner) -> None:
        self.root = root
        self.data: dict[str, bytes] = {}
        self.children: dict[str, set[str]] = {}
        self.complete = False  # settled at least once: the data is whole
        self._conn = conn
        self._depth = depth
        self._owner = owner
        self._base_depth = root.rstrip("/").count("/")
        self._skip = {"/zookeeper"} if root == "/" else set()  # the server's own nodes
        self._pending = 0
        self._broken = False  # a read failed for connection reasons since the last reconnect
        self._changed: set[str] = set()
        self._started = False
        self._changes = ChangeSignal()
        self._watch: Any = None

    # -- queries -------------------------------------------------------------------------

    def stamp(self, name: str) -> int:
        """The index of ``name``'s data: it moves whenever that data changes."""
        return self._changes.stamp(name)

    async def wait(self, name: str, index: int, block: float, key: str) -> int:
        """``name``'s stamp once it differs from ``index``, or after ``block`` seconds.

        Before the first complete read, SourceError (naming ``key`` and the hosts) when it
        does not come within the session timeout. Afterwards an outage only blocks: the
        last good data stays, and the connection logs the outage once.
        """
        self._start()
        if not self.complete:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changes.changed(_COMPLETE).wait(),
                                       self._conn.connect_timeout)
            if not self.complete and self._conn.connected:
                raise SourceError(f"{key}: reading {self.root} from ZooKeeper at "
                                  f"{self._conn.hosts} timed out")
            if not self.complete:
                raise SourceError(f"{key}: cannot connect to ZooKeeper at {self._conn.hosts}")
        return await self._changes.wait_past(name, index, block)

    def _touch(self, names: Iterable[str], everything: bool) -> None:
        if everything:
            self._changes.touch_all()
        self._changes.touch(names)

    # -- reading -------------------------------------------------------------------------

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        self._conn.start()
        self._watch = self._conn.on_loop(self._on_event)
        self._conn.subscribe(self._on_state)
        if self._conn.connected:
            self._resync()

    def _on_state(self, state: State) -> None:
        if state == "connected":
            self._resync()
        else:
            self._broken = True

    def _resync(self) -> None:
        """Read every known node again (and the root): kazoo has forgotten every watch."""
        self._broken = False
        known = {self.root, *self.data, *self.children}
        for path in sorted(known):
            self._load(path)

    def _load(self, path: str) -> None:
        self._read("get", path)
        if self._level(path) < self._depth:
            self._read("get_children", path)

    def _level(self, path: str) -> int:
        return path.rstrip("/").count("/") - self._base_depth

    def _read(self, op: Op, path: str) -> None:
        self._pending += 1
        self._conn.read(op, path, self._watch, lambda outcome: self._result(op, path, outcome))

    def _on_event(self, event: WatchedEvent) -> None:
        if event.type == EventType.CHILD:
            self._read("get_children", event.path)
        elif event.type == EventType.CHANGED:
            self._read("get", event.path)
        elif event.type == EventType.CREATED:
            self._load(event.path)
        elif event.type == EventType.DELETED:
            self._drop(event.path)
            self._settle()
        # EventType.NONE: the connection changed; ``_on_state`` handles it.

    def _result(self, op: Op, path: str, outcome: Any) -> None:
        self._pending -= 1
        if isinstance(outcome, NoNodeError):
            self._drop(path)
        elif isinstance(outcome, _CONNECTION_ERRORS):
            self._broken = True  # read again in full once reconnected
        elif isinstance(outcome, NoAuthError):
            warn_once(f"zk node {path!r}: not readable with the configured credentials; "
                      "ignored")
            self._drop(path, watch_root=False)  # it exists: waiting for it would spin
        elif isinstance(outcome, BaseException):
            log.warning("zk: reading %s failed: %r (retrying)", path, outcome)
            self._broken = True
            asyncio.get_running_loop().call_later(_RETRY_AFTER, self._retry, op, path)
        elif self._wanted(path):
            self._store(op, path, outcome)
        self._settle()

    def _retry(self, op: Op, path: str) -> None:
        self._broken = False
        self._read(op, path)

    def _wanted(self, path: str) -> bool:
        """True for the root and for nodes their parent still lists (a late answer for a
        node dropped meanwhile is ignored)."""
        if path == self.root:
            return True
        parent, _, name = path.rpartition("/")
        return name in self.children.get(parent or "/", ())

    def _store(self, op: Op, path: str, outcome: Any) -> None:
        if op == "exists":
            if outcome is not None:  # the root was created meanwhile
                self._load(path)
            return
        if op == "get":
            data = outcome[0] or b""
            if self.data.get(path) != data:
                self.data[path] = data
                self._changed.add(path)
            return
        names = {n for n in outcome if child_path(path, n) not in self._skip}
        known = self.children.get(path, set())
        for gone in known - names:
            self._drop(child_path(path, gone))
        self.children[path] = names
        for new in sorted(names - known):
            self._load(child_path(path, new))
        if names != known:
            self._changed.add(path)

    def _drop(self, path: str, *, watch_root: bool = True) -> None:
        """Forget ``path`` and everything below it; a missing root is watched for."""
        stack = [path]
        while stack:
            node = stack.pop()
            stack.extend(child_path(node, n) for n in self.children.pop(node, ()))
            if self.data.pop(node, None) is not None:
                self._changed.add(node)
        parent, _, name = path.rpartition("/")
        siblings = self.children.get(parent or "/")
        if siblings is not None and name in siblings and path != self.root:
            siblings.discard(name)
            self._changed.add(parent or "/")
        if path == self.root and watch_root:
            self._read("exists", path)

    def _settle(self) -> None:
        if self._pending or self._broken or not self._conn.connected:
            return
        first = not self.complete
        if not (self._changed or first):
            return
        changed, self._changed = self._changed, set()
        names = set(self._owner.update(self, changed))
        self.complete = True
        self._touch(names, everything=first)
        if first:
            log.debug("zk: read %s (%d nodes)", self.root, len(self.data))
