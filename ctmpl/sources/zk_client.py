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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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


class _KazooToDebug(logging.Filter):
    """kazoo logs every failed reconnect attempt at WARNING; ctmpl logs the outage once."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
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

    def start(self) -> None:
        """Connect in the background (kazoo retries until it reaches a host)."""
        if self._client is not None or self._closed:
            return
        self._loop = asyncio.get_running_loop()
        handler = SequentialThreadingHandler()
        retry = KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=2.0,
                           sleep_func=handler.sleep_func)
        auth = [("digest", f"{self._config.username}:{self._config.password}")] \
            if self._config.username else None
        self._client = KazooClient(
            hosts=self.hosts, timeout=self._config.session_timeout, handler=handler,
            connection_retry=retry, auth_data=auth, logger=_KAZOO_LOG,
        )
        self._client.add_listener(self._state_threadsafe)
        log.debug("zk: connecting to %s", self.hosts)
        self._client.start_async()

    def subscribe(self, listener: Callable[[State], None]) -> None:
        """Call ``listener`` on the loop at every session state change."""
        self._listeners.append(listener)

    def read(self, op: Op, path: str, watch: Watch, done: Done) -> None:
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

    def _state_threadsafe(self, state: str) -> None:  # kazoo's connection thread
        if self._loop is not None:
            self._call_soon(self._loop, self._state, state)

    def _state(self, state: str) -> None:
        assert self._loop is not None
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
        elif lost:
            log.debug("zk %s: session expired during the outage", self.hosts)
        self._expired |= lost
        self._tell("lost" if lost else "suspended")

    def _tell(self, state: State) -> None:
        for listener in list(self._listeners):
            listener(state)

    async def aclose(self) -> None:
        """Close the session (its watches end with it); later callbacks are dropped."""
        client, self._client = self._client, None
        self._closed = True
        self._listeners.clear()
        if client is None:
            return

        def stop() -> None:
            client.stop()
            client.close()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(in_daemon_thread("zk close", stop), 10)
