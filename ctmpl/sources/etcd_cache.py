"""A live copy of one etcd key range: one read, then a watch from the next revision.

Every query over the same range shares one cache (service queries all share the
catalog prefix). The keys are kept in *groups*: a key's group is its first path segment
below the range's start (``/services/web/a`` in ``/services/`` → ``web``; a key with no
further ``/`` is in group ``b""``). A watch event replaces only its group, and the
listeners (``RangeListener``) are told which groups changed, so one change costs work in
proportion to its group, not to the range.

The background task does no backoff of its own: after a failure it tries each other
endpoint once, then hands the error to the waiting queries as ``EtcdUnavailable`` and
ends; the next fetch starts a new task that resumes the watch at the last seen revision,
so no change is lost. If that revision was compacted meanwhile, the range is read
again in full (https://etcd.io/docs/v3.4/learning/api/#watch-streams) and only the
groups that differ are reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from aetcd import rpc

from ctmpl import tasks
from ctmpl.change_signal import ANY, ChangeSignal
from ctmpl.sources.etcd_client import EtcdConnection, EtcdUnavailable, Session, describe

log = logging.getLogger(__name__)

Values = Mapping[bytes, bytes]
_EMPTY: Values = {}


class _Compacted(Exception):
    """The watch's start revision is gone; only a full read can catch up."""


class RangeListener(Protocol):
    """Told about every change a cache applies, synchronously, as it applies it."""

    def changed(self, groups: Collection[bytes], revision: int, full: bool) -> None:
        """``groups`` changed at ``revision``; ``full``: a full read of the range."""

    def state_changed(self) -> None:
        """The watch failed or was established: waiting queries must look again."""


def group_of(base: bytes, key: bytes) -> bytes:
    """The group of ``key`` in a range whose keys start with ``base``."""
    head, slash, _ = key[len(base):].partition(b"/")
    return head if slash else b""


@dataclass(frozen=True)
class RangeView:
    """The range at one moment: groups never mutated later, the revision of the last change
    (``index``) and a count of the changes applied so far (``seq``)."""

    base: bytes
    groups: Mapping[bytes, Values]
    index: int
    seq: int

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, None when absent."""
        return self.groups.get(group_of(self.base, key), _EMPTY).get(key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every key and value of the range, in no particular order."""
        for values in self.groups.values():
            yield from values.items()


class RangeCache:
    """Keys in ``[start, end)`` (a single key when ``end`` is empty) kept current by a watch."""

    def __init__(self, conn: EtcdConnection, start: bytes, end: bytes) -> None:
        self._conn = conn
        self._start = start
        self._end = end
        self._base = b"" if start == b"\0" else start  # what every key of the range starts with
        self._groups: dict[bytes, Values] = {}  # each group's dict is replaced, never mutated
        self._shared = False  # a RangeView holds self._groups: copy it before changing it
        self.index = 0  # revision of the last change to the values (0: never read)
        self.seq = 0  # changes applied so far
        self.current_through = 0  # the values are known current up to this revision
        self.watch_established = False  # a watch is established and the values are current
        self.signal = ChangeSignal()  # ANY: set by every change and every state change
        self._listeners: list[RangeListener] = []
        self._error: EtcdUnavailable | None = None
        self._task: asyncio.Task[None] | None = None
        self._label = "(all keys)" if start == b"\0" else start.decode("utf-8", "replace")

    def listen(self, listener: RangeListener) -> None:
        """Tell ``listener`` about every change from now on."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Start following the range unless a watch runs (clears the last failure)."""
        if self._task is not None and not self._task.done():
            return
        self._error = None
        self._task = tasks.spawn(self._run(), name=f"etcd watch {self._label}")

    async def established(self) -> None:
        """Return once a watch is established and the values are current.

        Raises EtcdUnavailable when the watch has failed (``start`` tries again). While
        (re)connecting this waits for the task's verdict: it has its own timeouts.
        """
        while not self.watch_established:
            if self._error is not None:
                raise self._error
            await self.signal.changed(ANY).wait()  # every change of state touches all
        if self._error is not None:
            raise self._error

    def group(self, name: bytes) -> Values:
        """The keys of one group now (never mutated later)."""
        return self._groups.get(name, _EMPTY)

    @property
    def empty(self) -> bool:
        """True when the range holds no keys."""
        return not self._groups

    def view(self, *, frozen: bool = True) -> RangeView:
        """The range now; ``frozen``: later changes copy rather than alter it."""
        self._shared |= frozen
        return RangeView(self._base, self._groups, self.index, self.seq)

    async def aclose(self) -> None:
        """Stop the background watch."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _state_changed(self) -> None:
        self.signal.touch_all()
        for listener in self._listeners:
            listener.state_changed()

    def _publish(self, updates: Mapping[bytes, Values], revision: int, full: bool) -> None:
        """Replace the groups in ``updates`` (an empty one is removed) as of ``revision``."""
        if self._shared:
            self._groups, self._shared = dict(self._groups), False
        for name, values in updates.items():
            if values:
                self._groups[name] = values
            else:
                self._groups.pop(name, None)
        self.index, self.seq = revision, self.seq + 1
        for listener in self._listeners:
            listener.changed(updates.keys(), revision, full)
        self.signal.touch(())

    async def _run(self) -> None:
        """Follow the range until it fails on every endpoint; whatever ends the task, the
        waiting queries are woken with an error (the next fetch starts over)."""
        error = EtcdUnavailable("watch stopped")
        try:
            error = await self._attempts()
        except Exception as exc:  # a bug must not leave fetches blocked forever
            log.exception("etcd: watch of %s crashed", self._label)
            error = describe(exc, "etcd")
        finally:
            self.watch_established, self._error = False, error
            self._state_changed()

    async def _attempts(self) -> EtcdUnavailable:
        """After a connection failure try each other endpoint once, then give up."""
        failures = 0
        while True:
            error = await self._attempt()
            log.debug("etcd: watch of %s failed: %s", self._label, error)
            failures = 1 if self.watch_established else failures + 1
            self.watch_established = False
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
                         self._label, self.current_through)
                need_read = True

    async def _read(self, session: Session) -> None:
        """Read the whole range; publish the groups that differ from what is held."""
        request = rpc.RangeRequest(key=self._start, range_end=self._end)
        reply = await session.kv.Range(
            request, timeout=self._conn.timeout, metadata=session.metadata
        )
        fresh: dict[bytes, dict[bytes, bytes]] = {}
        for kv in reply.kvs:
            fresh.setdefault(group_of(self._base, kv.key), {})[kv.key] = kv.value
        updates: dict[bytes, Values] = {
            name: values for name, values in fresh.items() if values != self._groups.get(name)
        }
        updates.update((name, _EMPTY) for name in self._groups if name not in fresh)
        if self.index == 0 or updates:
            self._publish(updates, reply.header.revision, full=True)
        self.current_through = reply.header.revision

    async def _watch(self, session: Session) -> None:
        # From the last revision seen, not the next one: etcd before 3.4.34/3.5.15 drops a
        # delete at exactly the compacted revision from a watch that starts there
        # (https://github.com/etcd-io/etcd/issues/18089). Starting one earlier turns that
        # case into a compaction error, hence a full read; the replayed revision changes
        # nothing, since events are applied as the state they leave.
        create = rpc.WatchCreateRequest(
            key=self._start,
            range_end=self._end,
            start_revision=self.current_through,
            progress_notify=True,
        )
        call = session.watch.Watch(_requests(create), metadata=session.metadata)
        try:
            replies = aiter(call)
            async with asyncio.timeout(self._conn.timeout):
                first = await anext(replies)
            self._check(first)
            if first.header.revision < self.current_through:
                # The cluster's history went backwards (restored or recreated): start over.
                raise _Compacted()
            self.watch_established = True
            self._apply(first)
            self._state_changed()
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

    def _apply(self, reply: rpc.WatchResponse) -> None:
        """Apply one watch reply: copy each touched group once, publish those that differ."""
        touched: dict[bytes, dict[bytes, bytes]] = {}
        for event in reply.events:
            key = event.kv.key
            name = group_of(self._base, key)
            values = touched.get(name)
            if values is None:
                values = touched[name] = dict(self._groups.get(name, _EMPTY))
            if event.type == rpc.Event.DELETE:
                values.pop(key, None)
            else:
                values[key] = event.kv.value
            self.current_through = max(self.current_through, event.kv.mod_revision)
        if not reply.created:
            # A created reply's header is the store's revision, not the watch's progress:
            # the history from start_revision is still to come.
            self.current_through = max(self.current_through, reply.header.revision)
        updates = {n: v for n, v in touched.items() if v != self._groups.get(n, _EMPTY)}
        if updates:
            self._publish(updates, self.current_through, full=False)


async def _requests(create: rpc.WatchCreateRequest) -> AsyncIterator[rpc.WatchRequest]:
    """The request side of a watch stream: one create, then stay open until cancelled."""
    yield rpc.WatchRequest(create_request=create)
    await asyncio.Event().wait()
