"""A live copy of one etcd key range: one read, then a watch from the next revision.

Every query over the same range shares one cache (service queries all share the
catalog prefix). The background task does no backoff of its own: after a failure it
tries each other endpoint once, then hands the error to the blocked fetches as
``EtcdUnavailable`` and ends; the next fetch starts a new task that resumes the watch
at the last seen revision + 1, so no change is lost. If that revision was compacted
meanwhile, the range is read again in full
(https://etcd.io/docs/v3.4/learning/api/#watch-streams).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping

from aetcd import rpc

from ctmpl.sources.etcd_client import EtcdConnection, EtcdUnavailable, Session, describe

log = logging.getLogger(__name__)

Values = Mapping[bytes, bytes]


class _Compacted(Exception):
    """The watch's start revision is gone; only a full read can catch up."""


class RangeCache:
    """Keys in ``[start, end)`` (a single key when ``end`` is empty) kept current by a watch."""

    def __init__(self, conn: EtcdConnection, start: bytes, end: bytes) -> None:
        self._conn = conn
        self._start = start
        self._end = end
        self._values: dict[bytes, bytes] = {}
        self.index = 0  # revision of the last change to the values (0: never read)
        self._seen = 0  # the values are known current up to this revision
        self._live = False  # a watch is established and the values are current
        self._error: EtcdUnavailable | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._label = "(all keys)" if start == b"\0" else start.decode("utf-8", "replace")

    async def wait(self, index: int, block: float) -> tuple[Values, int]:
        """Current (values, index); blocks while ``index`` is current, up to ``block`` s.

        Raises EtcdUnavailable when the connection fails before data is available or
        while blocked; the next call reconnects.
        """
        self._ensure_running()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block
        while True:
            if self._error is not None:
                raise self._error
            remaining = deadline - loop.time()
            if self._live and (index != self.index or remaining <= 0):
                return dict(self._values), self.index
            wake = self._wake
            # While (re)connecting, wait for the task's verdict: it has its own timeouts.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), remaining if self._live else None)

    async def aclose(self) -> None:
        """Stop the background watch."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _ensure_running(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._error = None
        self._task = asyncio.create_task(self._run(), name=f"etcd watch {self._label}")

    def _notify(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    async def _run(self) -> None:
        """Follow the range until it fails on every endpoint; whatever ends the task, the
        blocked fetches are woken with an error (the next fetch starts over)."""
        error = EtcdUnavailable("watch stopped")
        try:
            error = await self._attempts()
        except Exception as exc:  # a bug must not leave fetches blocked forever
            log.exception("etcd: watch of %s crashed", self._label)
            error = describe(exc, "etcd")
        finally:
            self._live, self._error = False, error
            self._notify()

    async def _attempts(self) -> EtcdUnavailable:
        """After a connection failure try each other endpoint once, then give up."""
        failures = 0
        while True:
            error = await self._attempt()
            log.debug("etcd: watch of %s failed: %s", self._label, error)
            failures = 1 if self._live else failures + 1
            self._live = False
            if not error.reconnect or failures >= self._conn.endpoint_count:
                return error

    async def _attempt(self) -> EtcdUnavailable:
        try:
            session = await self._conn.open()
        except EtcdUnavailable as exc:
            return exc
        error: EtcdUnavailable | None = None
        try:
            await self._follow(session)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # grpc.aio raises CancelledError for a call cancelled under it (channel closed).
            error = EtcdUnavailable(f"connection closed ({session.endpoint})")
        except Exception as exc:
            error = describe(exc, session.endpoint)
        finally:
            await self._conn.release(session, failed=error is not None and error.reconnect)
        return error or EtcdUnavailable(f"watch ended ({session.endpoint})")

    async def _follow(self, session: Session) -> None:
        need_read = self.index == 0
        while True:
            if need_read:
                await self._read(session)
            try:
                await self._watch(session)
            except _Compacted:
                log.info("etcd: history of %s after revision %d was compacted; reading it again",
                         self._label, self._seen)
                need_read = True

    async def _read(self, session: Session) -> None:
        request = rpc.RangeRequest(key=self._start, range_end=self._end)
        reply = await session.kv.Range(
            request, timeout=self._conn.timeout, metadata=session.metadata
        )
        values = {kv.key: kv.value for kv in reply.kvs}
        if self.index == 0 or values != self._values:
            self._values, self.index = values, reply.header.revision
        self._seen = reply.header.revision
        self._notify()

    async def _watch(self, session: Session) -> None:
        create = rpc.WatchCreateRequest(
            key=self._start,
            range_end=self._end,
            start_revision=self._seen + 1,
            progress_notify=True,
        )
        call = session.watch.Watch(_requests(create), metadata=session.metadata)
        try:
            replies = aiter(call)
            async with asyncio.timeout(self._conn.timeout):
                first = await anext(replies)
            self._check(first)
            if first.header.revision < self._seen:
                # The cluster's history went backwards (restored or recreated): start over.
                raise _Compacted()
            self._live = True
            self._apply(first)
            self._notify()
            async for reply in replies:
                self._check(reply)
                self._apply(reply)
        finally:
            call.cancel()
        raise EtcdUnavailable(f"watch stream closed ({session.endpoint})")

    def _check(self, reply: rpc.WatchResponse) -> None:
        if reply.compact_revision:
            raise _Compacted()
        if reply.canceled:
            raise EtcdUnavailable(f"watch cancelled: {reply.cancel_reason}", reconnect=False)

    def current(self) -> tuple[Values, int] | None:
        """The values and their revision right now (never mutated later), None before a read."""
        return (self._values, self.index) if self.index else None

    def _apply(self, reply: rpc.WatchResponse) -> None:
        changed = False
        values = dict(self._values) if reply.events else self._values  # copy on write
        for event in reply.events:
            key, value = event.kv.key, event.kv.value
            if event.type == rpc.Event.DELETE:
                changed |= values.pop(key, None) is not None
            elif values.get(key) != value:
                values[key] = value
                changed = True
            self._seen = max(self._seen, event.kv.mod_revision)
        self._values = values
        if not reply.created:
            # A created reply's header is the store's revision, not the watch's progress:
            # the history from start_revision is still to come.
            self._seen = max(self._seen, reply.header.revision)
        if changed:
            self.index = self._seen
            self._notify()


async def _requests(create: rpc.WatchCreateRequest) -> AsyncIterator[rpc.WatchRequest]:
    """The request side of a watch stream: one create, then stay open until cancelled."""
    yield rpc.WatchRequest(create_request=create)
    await asyncio.Event().wait()
