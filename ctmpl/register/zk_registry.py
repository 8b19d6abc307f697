"""Registration in ZooKeeper: one ephemeral node that lives with the sidekick's session.

The node and its data are the layouts the ZooKeeper catalog reads (``ctmpl.register.layout``):
``<prefix>/<service>/<id>`` valued ``host:port`` or JSON, or the flat ``<prefix>/<host>:<port>``.
The session's timeout is the registration's TTL: ZooKeeper deletes an ephemeral node when its
session ends, so a crashed or cut-off sidekick is gone after it, and a stop closes the session
at once. Every healthy tick reads the node: when it belongs to this session it is left alone;
otherwise (first start, deleted by hand, session expired, ZooKeeper restarted empty) it is
created again. An unhealthy tick or a stop deletes it.

kazoo reconnects by itself (and opens a new session when the old one expired). After an
outage longer than twice the session timeout the client is replaced, as the catalog does
(``ctmpl.sources.zk_client``): a ZooKeeper that lost its data refuses a client that has seen
newer transactions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from ctmpl.config.model import ZkConfig
from ctmpl.register.base import RegistryDown
from ctmpl.sources.zk_client import auth_data

_KAZOO_LOG = logging.getLogger("ctmpl.register.kazoo")
_KAZOO_LOG.setLevel(logging.ERROR)  # its per-attempt reconnect warnings; outages are ours


class ZkRegistry:
    """The ``Registry`` over ZooKeeper (see the module docstring)."""

    def __init__(self, config: ZkConfig, path: str, value: str, session_timeout: float,
                 timeout: float) -> None:
        self.what = f"ZooKeeper node {path}"
        self._config = config
        self._hosts = ",".join(config.hosts)
        self._path = path
        self._value = value.encode()
        self._session_timeout = session_timeout
        self._timeout = timeout
        self._client: KazooClient | None = None
        self._down_since: float | None = None  # when the current outage was first seen
        self._registered_once = False

    async def healthy(self, detail: str) -> str | None:
        """Make sure this session's ephemeral node holds the registration."""
        return await self._call(self._ensure)

    async def unhealthy(self, detail: str) -> str | None:
        """Delete the node."""
        return await self._call(self._delete)

    async def stop(self) -> str | None:
        """Delete the node (closing the session would too)."""
        return await self._call(self._delete)

    async def aclose(self) -> None:
        """Close the session: ZooKeeper deletes its ephemeral node at once."""
        if self._client is not None:
            await asyncio.to_thread(self._drop_client)

    async def _call(self, step: Any) -> str | None:
        try:
            result: str | None = await asyncio.to_thread(step)
            return result
        except RegistryDown:
            raise
        except KazooTimeoutError as exc:
            raise RegistryDown(f"ZooKeeper: cannot connect to {self._hosts} within "
                               f"{self._timeout:g}s") from exc
        except Exception as exc:
            raise RegistryDown(f"ZooKeeper: {type(exc).__name__} ({self._hosts})") from exc

    def _connected(self) -> KazooClient:
        client = self._client
        if client is None:
            client = KazooClient(
                hosts=self._hosts, timeout=self._session_timeout,
                auth_data=auth_data(self._config),
                connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=2.0),
                logger=_KAZOO_LOG,
            )
            client.start(timeout=self._timeout)  # stops the client and raises on timeout
            self._client, self._down_since = client, None
            return client
        if client.connected:
            self._down_since = None
            return client
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        elif now - self._down_since > 2 * self._session_timeout:
            self._drop_client()  # the session is gone anyway; start over next time
        raise RegistryDown(f"ZooKeeper: connection lost ({self._hosts})")

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.stop()
            client.close()

    def _ensure(self) -> str | None:
        client = self._connected()
        session = client.client_id[0] if client.client_id else 0
        try:
            data, stat = client.get(self._path)
        except NoNodeError:
            data, stat = None, None
        if stat is not None and stat.ephemeralOwner == session:
            if data == self._value:
                return None
            client.set(self._path, self._value, version=stat.version)
            return f"{self.what}: data restored"
        if stat is None:
            why = "the node is missing"
        else:
            why = "the node belonged to another session" if stat.ephemeralOwner else \
                "a persistent node held its path"
            client.delete(self._path, version=stat.version)
        client.create(self._path, self._value, ephemeral=True, makepath=True)
        first, self._registered_once = not self._registered_once, True
        what = "registered" if first else f"registration lost ({why}); registered again"
        return f"{self.what}: {what} (session {session:x}, timeout " \
               f"{self._session_timeout:g}s)"

    def _delete(self) -> str | None:
        client = self._connected()
        try:
            client.delete(self._path)
        except NoNodeError:
            return None
        return f"{self.what}: deregistered"
