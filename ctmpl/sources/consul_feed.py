"""Catalog-wide long-polls that tell each query when its data changed.

Terms used by the Consul source:

- a *feed* follows a whole datacenter's catalog (``CatalogFeed``) or KV store (``KeyFeed``)
  with one to three long-polls (``ctmpl.sources.consul_poll``);
- a *stamp* is a number per service name (and for the pseudo-names ``SERVICES`` and
  ``NODES``) that grows whenever a feed sees that name change; a query whose data was read
  at an older stamp reads again, the others do nothing.

``CatalogFeed`` first follows ``/v1/internal/ui/nodes``: one long-poll whose answers carry
every instance and check with its ``ModifyIndex``, so the feed knows exactly which names
changed and holds their data (``ctmpl.sources.consul_ui_catalog``) — no further request is
needed. That endpoint is undocumented; when it is missing or answers in an unknown shape the
feed falls back for good to three documented long-polls (*classic* mode):
``/v1/catalog/services`` (registrations, deregistrations, tags, addresses and ports — the
last two without saying which service: every watched name is then read again),
``/v1/health/state/any`` (checks, each with its ``ModifyIndex``: flaps, maintenance, node
failure) and ``/v1/catalog/nodes`` (node addresses). Which endpoint wakes on which change is
recorded in ``../shared/consul-api-samples/README.md``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any, Literal

from ctmpl import tasks
from ctmpl.change_signal import ANY, ChangeSignal
from ctmpl.config.model import Retry
from ctmpl.errors import SourceError
from ctmpl.sources.consul_http import Answer, HTTPStatusError
from ctmpl.sources.consul_poll import Params, Poll, Request
from ctmpl.sources.consul_ui_catalog import SnapshotError, UICatalog
from ctmpl.watch import went_back

log = logging.getLogger(__name__)

SERVICES = "\0services"  # the stamp of the service list (names and their tags)
NODES = "\0nodes"  # the stamp of the node list
FeedMode = Literal["auto", "ui", "classic"]
UI_NODES = "/v1/internal/ui/nodes"
_FALLBACK_STATUSES = (400, 403, 404, 405, 501)


class Feed:
    """Stamps, the change event, readiness and the poll tasks every feed shares."""

    def __init__(self, request: Request, retry: Retry, stale: Params) -> None:
        self._request = request
        self._retry = retry
        self._stale = stale
        # Service names are matched without regard to case, as Consul matches them.
        self._changes = ChangeSignal(fold=lambda name: str(name).lower())
        self._attempts = ChangeSignal()  # moved by every answer or failure
        self._error: SourceError | None = None
        self._ready = False
        self._suspect = False  # a request failed since the last answer
        self.restarts = 0  # agent restarts seen (an answer's index went backwards)
        self._tasks: list[asyncio.Task[None]] = []

    def stamp(self, name: str) -> int:
        """A number that grows whenever ``name`` changes (``ctmpl.change_signal``)."""
        return self._changes.stamp(name)

    def changed(self, name: str) -> asyncio.Event:
        """The event the next change of ``name`` sets; take it before reading, await it
        after (one event per name: a change wakes only the queries it concerns)."""
        return self._changes.changed(name)

    async def ready(self, key: str) -> None:
        """Return once the feed has data; before that, a failed attempt raises its error as
        a SourceError of query ``key`` (the query's watch retries it)."""
        while not self._ready:
            if self._error is not None:
                detail = str(self._error).partition(": ")[2] or str(self._error)
                raise SourceError(f"{key}: {detail}")
            await self._attempts.changed(ANY).wait()

    async def aclose(self) -> None:
        """Stop every poll."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, key: str, path: str, params: Params, on_answer: Callable[[Answer], None],
               *, hand_over: bool = False) -> Poll:
        poll = Poll(self._request, key, path, (*params, *self._stale), retry=self._retry,
                    on_answer=on_answer, on_error=self._failed, hand_over=hand_over)
        self._tasks.append(tasks.spawn(poll.run(), name=f"consul {key}"))
        return poll

    def _touch(self, names: Iterable[str], everything: bool = False) -> None:
        self._changes.touch(names)
        if everything:
            self._changes.touch_all()

    def _attempt(self, error: SourceError | None) -> None:
        self._error = error
        self._attempts.touch(())

    def _failed(self, error: SourceError) -> bool:
        # The agent may have restarted: its indexes start over and may repeat old values
        # for new data, so the next answer is not diffed by index (see ``suspect``).
        self._suspect = True
        self._attempt(error)
        return False


class KeyFeed(Feed):
    """Follows the whole KV store: ``GET /v1/kv/?keys&separator=/`` moves on any write."""

    def __init__(self, request: Request, retry: Retry, stale: Params) -> None:
        super().__init__(request, retry, stale)
        self._index = 0
        self._start("kv.keys(/)", "/v1/kv/", (("keys", ""), ("separator", "/")), self._answer)

    def _answer(self, answer: Answer) -> None:
        self.restarts += self._ready and went_back(self._index, answer.index)
        if self._ready and (answer.index != self._index or self._suspect):
            self._touch((), everything=True)
        self._suspect = False
        self._index = answer.index
        self._ready = True
        self._attempt(None)


class CatalogFeed(Feed):
    """Follows the catalog of the local datacenter (see the module docstring)."""

    def __init__(
        self, request: Request, retry: Retry, stale: Params, mode: FeedMode = "auto"
    ) -> None:
        super().__init__(request, retry, stale)
        self.mode: FeedMode = mode
        self.ui_catalog: UICatalog | None = None
        self._cache: dict[str, Any] = {}
        self._classic: dict[str, Any] = {}
        self._bodies: dict[str, tuple[int, Any]] = {}
        if mode == "classic":
            self._start_classic()
        else:
            # Its answers hold the data: the queries they wake send no request.
            self._start("catalog.feed(ui/nodes)", UI_NODES, (), self._ui_answer, hand_over=True)

    # -- what queries read in ui mode ---------------------------------------------------

    def cached(self, name: str, build: Callable[[UICatalog], Any]) -> Any:
        """``build(catalog)`` for ``name``, kept until the name changes (ui mode)."""
        assert self.ui_catalog is not None
        if name.lower() not in self._cache:
            self._cache[name.lower()] = build(self.ui_catalog)
        return self._cache[name.lower()]

    def classic_body(self, what: Literal["services", "nodes"]) -> tuple[int, Any]:
        """(index, body) of the last ``/v1/catalog/<what>`` answer (classic mode)."""
        return self._bodies[what]

    # -- ui mode ---------------------------------------------------------------------------

    def _ui_answer(self, answer: Answer) -> None:
        catalog = self.ui_catalog or UICatalog()
        first = catalog is not self.ui_catalog
        restarted = not first and went_back(catalog.index, answer.index)
        try:
            # After a failure the agent may have restarted: its indexes may repeat old
            # values for new data, so this answer is compared by content (no request: the
            # answer holds it all).
            trusted = not self._suspect
            diff = answer.decode_with(
                lambda raw: catalog.apply(raw, answer.index, trusted=trusted))
        except SnapshotError as exc:
            self._fall_back(f"unexpected answer ({exc})")
            return
        self.ui_catalog = catalog
        self.restarts += restarted
        touched = set(diff.names)
        if diff.services:
            touched.add(SERVICES)
        if diff.nodes:
            touched.add(NODES)
        for name in touched:
            self._cache.pop(name.lower(), None)
        if not first and (touched or restarted):
            # A restart wakes every query: each reports the reset (see ``restarts``).
            self._touch(touched, everything=restarted)
        self.mode = "ui"
        self._ready, self._suspect = True, False
        self._attempt(None)

    def _failed(self, error: SourceError) -> bool:
        if (self.mode == "auto" and isinstance(error, HTTPStatusError)
                and error.status in _FALLBACK_STATUSES):
            self._fall_back(str(error))
            return True
        return super()._failed(error)

    def _fall_back(self, why: str) -> None:
        if self.mode == "classic":
            return
        log.info("consul: %s is not usable (%s); following /v1/catalog/services, "
                 "/v1/health/state/any and /v1/catalog/nodes instead", UI_NODES, why)
        task = next(t for t in self._tasks if t.get_name().endswith("(ui/nodes)"))
        self._tasks.remove(task)
        task.cancel()
        self.ui_catalog = None
        self._start_classic()

    # -- classic mode ----------------------------------------------------------------------

    def _start_classic(self) -> None:
        self.mode = "classic"
        self._ready = False
        self._start("catalog.feed(services)", "/v1/catalog/services", (),
                    self._classic_answer("services", _service_marks))
        self._start("catalog.feed(checks)", "/v1/health/state/any", (),
                    self._classic_answer("checks", _check_marks))
        self._start("catalog.feed(nodes)", "/v1/catalog/nodes", (),
                    self._classic_answer("nodes", _node_marks))

    def _classic_answer(
        self, what: str, marks: Callable[[Any], dict[str, tuple[str, ...]]]
    ) -> Callable[[Answer], None]:
        def answer(ans: Answer) -> None:
            new = (ans.index, marks(ans.body))
            old = self._classic.get(what)
            self._classic[what] = new
            self._bodies[what] = (ans.index, ans.body)
            self.restarts += old is not None and went_back(old[0], new[0])
            if old is not None and self._suspect:
                self._touch((NODES, SERVICES), everything=True)
            elif old is not None and old[0] != new[0]:
                self._classic_changed(what, old[1], new[1])
            self._suspect = False
            self._ready = len(self._classic) == 3
            if self._ready:
                self._attempt(None)

        return answer

    def _classic_changed(
        self, what: str, old: dict[str, tuple[str, ...]], new: dict[str, tuple[str, ...]]
    ) -> None:
        differ = {k for k, _ in old.items() ^ new.items()}
        if what == "nodes":
            self._touch((NODES,), everything=True)
        elif what == "services":
            # Without a difference in names or tags, an address or port changed somewhere.
            self._touch({*differ, SERVICES}, everything=not differ)
        else:
            names = {m[0] for m in (old.get(k) or new[k] for k in differ)}
            self._touch(names - {""}, everything="" in names)


def _service_marks(body: Any) -> dict[str, tuple[str, ...]]:
    """``/v1/catalog/services``: name -> its tags."""
    return {str(n): tuple(sorted(map(str, t or ()))) for n, t in (body or {}).items()}


def _check_marks(body: Any) -> dict[str, tuple[str, ...]]:
    """``/v1/health/state/any``: node/check -> (service name, ModifyIndex, status)."""
    return {f"{c.get('Node')}/{c.get('CheckID')}": (
        str(c.get("ServiceName") or ""), str(c.get("ModifyIndex")), str(c.get("Status")))
        for c in body or ()}


def _node_marks(body: Any) -> dict[str, tuple[str, ...]]:
    """``/v1/catalog/nodes``: node -> its address and metadata."""
    return {str(n.get("Node")): (json.dumps(
        [n.get("Address"), n.get("TaggedAddresses"), n.get("Meta")], sort_keys=True),)
        for n in body or ()}

