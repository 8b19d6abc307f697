"""Registration in etcd v3: one key bound to a lease that is kept alive while healthy.

The key and value are the layouts the etcd catalog reads (``ctmpl.register.layout``). Every
healthy tick reads the key: when it is ours and its lease is alive, the lease is kept alive;
otherwise (first start, deleted key, expired lease, a registry restarted empty) a new lease
is granted and the key written.
An unhealthy tick or a stop deletes the key and revokes its lease; a crash leaves the lease
to expire after its TTL. The connection is ``ctmpl.sources.etcd_client``'s, as the catalog's.
"""

from __future__ import annotations

from typing import Any

import grpc  # type: ignore[import-untyped]
from aetcd import rpc

from ctmpl.config.model import EtcdConfig
from ctmpl.register.base import RegistryDown
from ctmpl.sources.etcd_client import EtcdConnection, Session, describe


class EtcdRegistry:
    """The ``Registry`` over etcd v3 (see the module docstring)."""

    def __init__(
        self, config: EtcdConfig, key: str, value: str, ttl: int, timeout: float
    ) -> None:
        self.what = f"etcd key {key}"
        self._conn = EtcdConnection(config, timeout=timeout)
        self._key = key.encode()
        self._value = value.encode()
        self._ttl = ttl
        self._timeout = timeout
        self._lease = 0  # the lease of our last write; 0 before the first

    async def healthy(self, detail: str) -> str | None:
        """Keep the key's lease alive, or write the key under a new lease."""
        return await self._call(self._refresh_or_write)

    async def unhealthy(self, detail: str) -> str | None:
        """Delete the key and revoke its lease."""
        return await self._call(self._delete)

    async def stop(self) -> str | None:
        """Delete the key and revoke its lease."""
        return await self._call(self._delete)

    async def aclose(self) -> None:
        """Close the channel."""
        await self._conn.aclose()

    async def _call(self, step: Any) -> str | None:
        try:
            session = await self._conn.open()
        except Exception as exc:
            raise RegistryDown(f"etcd: {describe(exc, '?')}") from exc
        failed = True
        try:
            result: str | None = await step(session)
            failed = False
            return result
        except RegistryDown:
            raise
        except Exception as exc:
            raise RegistryDown(f"etcd: {describe(exc, session.endpoint)}") from exc
        finally:
            await self._conn.release(session, failed=failed)

    async def _refresh_or_write(self, session: Session) -> str | None:
        current = await self._read(session)
        if current is not None and current.value == self._value and current.lease:
            ttl = await self._keepalive(session, current.lease)
            if ttl > 0:
                adopted, self._lease = self._lease != current.lease, current.lease
                if not adopted:
                    return None
                return f"{self.what}: registered already (lease {current.lease:x}, {ttl}s " \
                    "left); keeping it alive"
            why = "its lease expired"
        else:
            why = "the key is missing" if current is None else "the key holds another value"
        grant = await rpc.LeaseStub(session.channel).LeaseGrant(
            rpc.LeaseGrantRequest(TTL=self._ttl), timeout=self._timeout, metadata=session.metadata
        )
        if grant.error:
            raise RegistryDown(f"etcd: lease grant refused: {grant.error}")
        await session.kv.Put(
            rpc.PutRequest(key=self._key, value=self._value, lease=grant.ID),
            timeout=self._timeout, metadata=session.metadata,
        )
        first = not self._lease
        self._lease = grant.ID
        what = "registered" if first else f"registration lost ({why}); registered again"
        return f"{self.what}: {what} (lease {grant.ID:x}, ttl {grant.TTL}s)"

    async def _delete(self, session: Session) -> str | None:
        current = await self._read(session)
        leases = {self._lease, current.lease if current is not None else 0} - {0}
        if current is not None:
            await session.kv.DeleteRange(
                rpc.DeleteRangeRequest(key=self._key), timeout=self._timeout,
                metadata=session.metadata,
            )
        for lease in leases:
            await self._revoke(session, lease)
        self._lease = 0
        return f"{self.what}: deregistered" if current is not None else None

    async def _read(self, session: Session) -> Any:
        reply = await session.kv.Range(
            rpc.RangeRequest(key=self._key), timeout=self._timeout, metadata=session.metadata
        )
        return reply.kvs[0] if reply.kvs else None

    async def _keepalive(self, session: Session, lease: int) -> int:
        """Refresh ``lease`` once; its remaining TTL, 0 when etcd no longer knows it."""
        call = rpc.LeaseStub(session.channel).LeaseKeepAlive(
            timeout=self._timeout, metadata=session.metadata
        )
        try:
            await call.write(rpc.LeaseKeepAliveRequest(ID=lease))
            reply = await call.read()
            await call.done_writing()
        finally:
            call.cancel()
        return int(reply.TTL) if reply is not grpc.aio.EOF else 0

    async def _revoke(self, session: Session, lease: int) -> None:
        try:
            await rpc.LeaseStub(session.channel).LeaseRevoke(
                rpc.LeaseRevokeRequest(ID=lease), timeout=self._timeout,
                metadata=session.metadata,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:  # already expired or revoked
                raise
