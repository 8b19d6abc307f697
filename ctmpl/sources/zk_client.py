"""One ZooKeeper session (kazoo) shared by every watched subtree of a catalog.

kazoo runs the session in its own threads: its connection thread reconnects by itself (to
any host of the ensemble, with a short capped backoff), and its callback thread delivers
watch events and read results. This module hands both to the asyncio loop with
``call_soon_threadsafe``; the subtrees (``ctmpl.sources.zk_tree``) only ever run on the loop.

Session states, kazoo's names: CONNECTED; SUSPENDED (the connection is lost, the session
may still live); LOST (the session expired: the server dropped its watches, and kazoo
opens a new session). kazoo forgets every watch in both cases, so after each reconnect the
subtrees read their nodes again in full. An outage is logged once at WARNING naming the
hosts, its end once at INFO; kazoo's own per-attempt messages go to DEBUG.

A ZooKeeper server refuses a client that has seen a newer transaction than the server has
(``last_zxid_seen``), so after the ensemble lost its data (recreated, restored from an old
snapshot) kazoo would retry forever. An outage longer than twice the session timeout — the
old session is gone by then anyway — therefore starts over with a new client. When that
client finds the server behind what the old one had seen, ZooKeeper's history went backwards:
that is logged (the full re-read after the reconnect finds what is left). Indexes still only
grow: sent backwards, a query whose index was already the lowest could not tell the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

from kazoo.client import KazooClient
from kazoo.handlers.threading import SequentialThreadingHandler
from kazoo.protocol.states import KazooState, WatchedEvent
from kazoo.retry import KazooRetry

from ctmpl.config.model import ZkConfig
from ctmpl.offloop import in_daemon_thread

log = logging.getLogger("ctmpl.sources.zk")

Op = Literal["get", "get_children", "exists"]
Done = Callable[[Any], None]  # gets the result, or the exception of a failed read
Watch = Callable[[WatchedEvent], None]
State = Literal["connected", "suspended", "lost"]


def auth_data(config: ZkConfig) -> list[tuple[str, str]] | None:
    """kazoo's ``auth_data`` for the configured digest credentials; None without them."""
    return [("digest", f"{config.username}:{config.password}")] if config.username else None


class _KazooToDebug(logging.Filter):
    """kazoo logs every failed reconnect attempt at WARNING; ctmpl logs the outage once."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return _KAZOO_LOG.isEnabledFor(logging.DEBUG)  # the level was checked before
        return True


_KAZOO_LOG = logging.getLogger("ctmpl.sources.zk.kazoo")
_KAZOO_LOG.addFilter(_KazooToDebug())


class ZkConnection:
    """The kazoo client of one catalog, started on first use; every method runs on the loop."""

    def __init__(self, config: ZkConfig) -> None:
        self.hosts = ",".join(config.hosts)
        self.connect_timeout = config.session_timeout
        self._config = config
        self._client: KazooClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[Callable[[State], None]] = []
        self.connected = False
        self._down_since: float | None = None  # loop time the current outage began
        self._expired = False  # the session expired during the current outage
        self._closed = False
        self._restart: asyncio.TimerHandle | None = None
        self._seen_zxid = 0  # the last transaction a replaced client had seen

    def start(self) -> None:
        """Connect in the background (kazoo retries until it reaches a host)."""
        if self._client is not None or self._closed:
            return
        self._loop = asyncio.get_running_loop()
        self._client = self._new_client()
        log.debug("zk: connecting to %s", self.hosts)
        self._client.start_async()

    def _new_client(self) -> KazooClient:
        handler = SequentialThreadingHandler()
        retry = KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=2.0,
                           sleep_func=handler.sleep_func)
        client = KazooClient(
            hosts=self.hosts, timeout=self._config.session_timeout, handler=handler,
            connection_retry=retry, auth_data=auth_data(self._config), logger=_KAZOO_LOG,
        )
        client.add_listener(lambda state: self._state_threadsafe(client, state))
        return client

    def subscribe(self, listener: Callable[[State], None]) -> None:
        """Call ``listener`` on the loop at every session state change."""
        self._listeners.append(listener)

    def read(self, op: Op, path: str, watch: Watch | None, done: Done) -> None:
        """Start ``op`` on ``path`` leaving ``watch``; ``done`` gets the outcome on the loop."""
        if self._client is None or self._loop is None:
            return  # closed: nothing is read any more
        loop = self._loop

        def settle(result: Any) -> None:  # kazoo's callback thread
            outcome = result.value if result.successful() else result.exception
            self._call_soon(loop, done, outcome)

        call = getattr(self._client, f"{op}_async")
        call(path, watch=watch).rawlink(settle)

    def on_loop(self, func: Callable[[WatchedEvent], None]) -> Watch:
        """A kazoo watch callback that runs ``func`` on the loop (after ``start``)."""
        assert self._loop is not None
        loop = self._loop
        return lambda event: self._call_soon(loop, func, event)

    def _call_soon(self, loop: asyncio.AbstractEventLoop, func: Callable[[Any], None],
                   arg: Any) -> None:
        if self._closed:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens any more
            loop.call_soon_threadsafe(func, arg)

    def _state_threadsafe(self, client: KazooClient, state: str) -> None:  # kazoo's thread
        if self._loop is not None:
            self._call_soon(self._loop, self._state, (client, state))

    def _state(self, change: tuple[KazooClient, str]) -> None:
        client, state = change
        if client is not self._client or self._loop is None:
            return  # a client replaced by ``_start_over``
        now = self._loop.time()
        if state == KazooState.CONNECTED:
            self.connected = True
            if self._down_since is None:
                log.debug("zk: connected to %s", self.hosts)
            else:
                how = "with a new session" if self._expired else "in the same session"
                log.info("zk %s: recovered after %.1fs, %s; reading the watched nodes again",
                         self.hosts, now - self._down_since, how)
            self._down_since, self._expired = None, False
            if self._restart is not None:
                self._restart.cancel()
                self._restart = None
            if self._seen_zxid:
                self._probe_history(client)
            self._tell("connected")
            return
        if not self.connected and self._down_since is None:
            return  # never connected yet: the first fetches report it
        lost = state == KazooState.LOST
        self.connected = False
        if self._down_since is None:
            self._down_since = now
            what = "session expired" if lost else "connection lost"
            log.warning("zk %s: %s (reconnecting; keeping the last good data)", self.hosts, what)
            self._restart = self._loop.call_later(2 * self.connect_timeout, self._start_over)
        elif lost:
            log.debug("zk %s: session expired during the outage", self.hosts)
        self._expired |= lost
        self._tell("lost" if lost else "suspended")

    def _probe_history(self, client: KazooClient) -> None:
        """One read tells the server's last transaction; compare it with the old client's."""
        seen, self._seen_zxid = self._seen_zxid, 0

        def compare(_: Any) -> None:
            if client.last_zxid < seen:
                log.warning("zk %s: ZooKeeper's history went backwards (transaction %#x, had "
                            "seen %#x): it lost its data; reading what is left",
                            self.hosts, client.last_zxid, seen)

        self.read("exists", "/", None, compare)

    def _start_over(self) -> None:
        """Still down after twice the session timeout: a new client, from no transaction."""
        old, self._restart = self._client, None
        if old is None or self.connected or self._closed or self._loop is None:
            return
        level = logging.DEBUG if self._expired else logging.INFO  # once per outage
        log.log(level, "zk %s: no session for %.0fs; starting over with a new client",
                self.hosts, 2 * self.connect_timeout)
        self._expired = True
        self._seen_zxid = max(self._seen_zxid, old.last_zxid)
        self._client = self._new_client()
        self._client.start_async()
        self._restart = self._loop.call_later(2 * self.connect_timeout, self._start_over)
        _stop_in_background(old)

    def _tell(self, state: State) -> None:
        for listener in list(self._listeners):
            listener(state)

    async def aclose(self) -> None:
        """Close the session (its watches end with it); later callbacks are dropped."""
        client, self._client = self._client, None
        self._closed = True
        self._listeners.clear()
        if self._restart is not None:
            self._restart.cancel()
        if client is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(in_daemon_thread("zk close", lambda: _stop(client)), 10)


def _stop(client: KazooClient) -> None:
    client.stop()
    client.close()


def _stop_in_background(client: KazooClient) -> None:
    """Stop a replaced client without waiting (its threads end by themselves)."""
    threading.Thread(target=_stop, args=(client,), name="zk close", daemon=True).start()
