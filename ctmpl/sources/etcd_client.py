"""One gRPC connection to etcd v3 shared by every watched range of a catalog.

aetcd's ``Client`` only opens plaintext channels and hides the watch stream's
revision headers, so ctmpl uses aetcd's generated stubs (``aetcd.rpc``) directly:
TLS, credentials and endpoint failover live here, read/watch logic in ``etcd_cache``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
from aetcd import rpc

from ctmpl.config.model import EtcdConfig

log = logging.getLogger(__name__)

Metadata = tuple[tuple[str, str], ...] | None

# Keepalives notice a silently dead server while a watch waits; etcd accepts pings
# every 5 s or more (--grpc-keepalive-min-time). Short reconnect backoff: ctmpl.watch
# already backs off, and a restarted etcd should be seen within a second.
_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1_000),
)

# Status codes after which the channel is dropped and the next fetch reconnects.
_RECONNECT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
    }
)


class EtcdUnavailable(Exception):
    """etcd could not be read; the message says why and names the endpoint."""

    def __init__(self, message: str, *, reconnect: bool = True) -> None:
        super().__init__(message)
        self.reconnect = reconnect


@dataclass(eq=False)
class Session:
    """An open channel with its stubs; replaced as a whole after a connection failure."""

    endpoint: str
    channel: Any
    kv: Any
    watch: Any
    metadata: Metadata
    users: int = field(default=0)


def describe(exc: BaseException, endpoint: str) -> EtcdUnavailable:
    """Translate a gRPC or I/O failure into a short message naming the endpoint."""
    if isinstance(exc, EtcdUnavailable):
        return exc
    reconnect = True
    if isinstance(exc, grpc.aio.AioRpcError):
        code, details = exc.code(), exc.details() or ""
        reconnect = code in _RECONNECT_CODES
        if code == grpc.StatusCode.UNAVAILABLE and "refused" in details.lower():
            what = "connection refused"
        elif code == grpc.StatusCode.UNAVAILABLE:
            what = f"unavailable: {details}"
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            what = "timed out"
        elif code == grpc.StatusCode.CANCELLED:
            what = "connection closed"
        else:
            what = f"{code.name.lower()}: {details}"
    elif isinstance(exc, TimeoutError):
        what = "timed out"
    elif isinstance(exc, OSError):
        what = f"cannot read TLS file: {exc}"
    else:
        what = f"{type(exc).__name__}: {exc}"
    return EtcdUnavailable(f"{what} ({endpoint})", reconnect=reconnect)


class EtcdConnection:
    """Opens sessions lazily, rotates through the endpoints after each failure."""

    def __init__(self, config: EtcdConfig, *, timeout: float = 10.0) -> None:
        if not config.endpoints:
            raise ValueError("etcd: no endpoints configured")
        self._config = config
        self.timeout = timeout
        self._next = 0
        self._session: Session | None = None
        self._lock = asyncio.Lock()

    @property
    def endpoint_count(self) -> int:
        """How many endpoints a reconnect may try before giving up."""
        return len(self._config.endpoints)

    async def open(self) -> Session:
        """The current session (connecting when there is none); ``release`` it when done."""
        async with self._lock:
            if self._session is None:
                endpoint = self._config.endpoints[self._next % len(self._config.endpoints)]
                try:
                    self._session = await self._connect(endpoint)
                except Exception as exc:
                    self._next += 1
                    raise describe(exc, endpoint) from exc
            self._session.users += 1
            return self._session

    async def release(self, session: Session, *, failed: bool) -> None:
        """Stop using ``session``; ``failed`` retires it so the next ``open`` reconnects
        (to the next endpoint). A retired channel is closed once its last user is gone:
        closing it earlier would cancel the other ranges' healthy calls."""
        async with self._lock:
            session.users -= 1
            if failed and self._session is session:
                self._session = None
                self._next += 1
            close = session.users <= 0 and self._session is not session
        if close:
            log.debug("etcd: closing channel to %s", session.endpoint)
            await session.channel.close()

    async def aclose(self) -> None:
        """Close the current channel, cancelling its calls."""
        async with self._lock:
            session, self._session = self._session, None
        if session is not None:
            await session.channel.close()

    async def _connect(self, endpoint: str) -> Session:
        log.debug("etcd: connecting to %s", endpoint)
        channel = await self._channel(endpoint)
        metadata: Metadata = None
        try:
            if self._config.username:
                request = rpc.AuthenticateRequest(
                    name=self._config.username, password=self._config.password
                )
                reply = await rpc.AuthStub(channel).Authenticate(request, timeout=self.timeout)
                metadata = (("token", reply.token),)
        except BaseException:
            await channel.close()
            raise
        return Session(
            endpoint=endpoint,
            channel=channel,
            kv=rpc.KVStub(channel),
            watch=rpc.WatchStub(channel),
            metadata=metadata,
        )

    async def _channel(self, endpoint: str) -> Any:
        tls = self._config.tls
        if not (tls.enabled or tls.ca_cert or tls.cert):
            return grpc.aio.insecure_channel(endpoint, options=_CHANNEL_OPTIONS)
        ca, cert, key = await asyncio.to_thread(_read_tls_files, tls.ca_cert, tls.cert, tls.key)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )
        options: list[tuple[str, int | str]] = list(_CHANNEL_OPTIONS)
        if tls.server_name:
            options.append(("grpc.ssl_target_name_override", tls.server_name))
        return grpc.aio.secure_channel(endpoint, credentials, options=options)


def _read_tls_files(*paths: str) -> tuple[bytes | None, ...]:
    return tuple(Path(p).read_bytes() if p else None for p in paths)
