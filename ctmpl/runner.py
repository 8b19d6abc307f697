"""Orchestration: watches feed the brain, groups quiesce, the pipeline renders and reloads.

One task group (``ctmpl.tasks``) owns every background task: the watches
(``ctmpl.watch``), the catalog's own, the exec child's; this loop only decides *when* a
reload group runs: at once for its first complete render, then after its ``wait``
quiescence. Templates that share a command form one group: one timer, one check, one
reload per burst.

Errors: ``-once`` exits with the first error's code. The daemon does the same for an error
met before its first complete render (a broken template must not look like a running
service); after that, a failing template keeps its last good file and the daemon runs on.
A reload (SIGHUP) re-applies the whole configuration: templates and, when its settings
changed (address, token file, retry, …), the catalog; the entry point's ``on_reload``
re-applies log settings and signals. An invalid new configuration is logged in one line
and the running one kept. Signal handlers and the pid file belong to the entry point
(``ctmpl.cli``, ``ctmpl.lifecycle``): the runner only offers ``request_stop``,
``request_reload`` and ``forward_signal``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ctmpl import logs, preload, tasks, telemetry
from ctmpl.brain import Brain
from ctmpl.config.model import Config
from ctmpl.daemon_services import DaemonServices
from ctmpl.errors import (
    EXIT_OK,
    CommandFailed,
    CtmplError,
    ProxyError,
    SourceError,
)
from ctmpl.groups import Group, build_groups
from ctmpl.pipeline import PassResult, Pipeline
from ctmpl.proxy.base import ProxyController
from ctmpl.retry import ProxyRetry
from ctmpl.shrink import ShrinkGuard
from ctmpl.sources import open_catalog
from ctmpl.sources.base import Catalog, Query
from ctmpl.stale import remove_stale_temp_files
from ctmpl.startup import announce
from ctmpl.watch import Watcher, WatchPolicy

if TYPE_CHECKING:
    from ctmpl.sources.file import FileCatalog

log = logging.getLogger(__name__)


@dataclass
class Runner:
    """The daemon (or ``-once``) loop for one configuration."""

    config: Config
    reload_config: Callable[[], Config] | None = None
    on_reload: Callable[[Config, Config], None] | None = None  # told (old, new) after a reload
    clock: Callable[[], float] = time.monotonic
    brain: Brain = field(default_factory=Brain)

    def __post_init__(self) -> None:
        self._wake = asyncio.Event()
        self._stop: int | None = None
        self._reload = False
        self._failure: CtmplError | None = None
        self._starting = True  # until every template has rendered completely once
        self.shrink = ShrinkGuard(self.config.shrink_guard, self.clock())
        # Whether the proxy runs what is installed: checked once at start, retried with
        # backoff after a failed reload or start until it does.
        self._proxy_retry = ProxyRetry(self.config.proxy)
        self.exit_code = EXIT_OK
        self.ops = DaemonServices(self.config, self._wake.set)
        self._task_group = tasks.TaskGroup(self._on_task_crash)  # owns every background task
        self._synced: list[dict[str, Query]] = []  # each state's queries at the last sync

    # -- event sources -------------------------------------------------------------------

    def _on_data(self, key: str, data: object) -> None:
        if not self.brain.set(key, data):
            return
        now = self.clock()
        self.shrink.note_change(now)
        for group in self.groups:
            group.note_change(key, now)
        self._wake.set()

    def _on_reset(self, key: str) -> None:
        self.shrink.note_reset(key, self.clock())
        self._wake.set()

    def _on_fail(self, key: str, exc: BaseException) -> None:
        self._failure = SourceError(f"{key}: giving up after retries: {exc}")
        self._wake.set()

    def _on_task_crash(self, name: str, exc: BaseException) -> None:
        self._failure = CtmplError(f"internal task {name!r} died ({exc!r}); exiting")
        self._wake.set()

    def request_stop(self) -> None:
        """Stop after the current step (signal handlers call this)."""
        log.info("stopping (signal received)")
        self._stop = EXIT_OK
        self._wake.set()

    def forward_signal(self, sig: signal.Signals) -> None:
        """Pass a received signal on to the exec child (exec mode)."""
        self.ops.forward(sig)

    def request_reload(self) -> None:
        """Re-read config and templates at the next turn (SIGHUP)."""
        self._reload = True
        self._wake.set()

    # -- main loop -----------------------------------------------------------------------

    async def run(self) -> int:
        """Run until stopped (daemon) or until every template rendered once (``-once``)."""
        self.groups = build_groups(self.config)
        if not self.config.dry:
            remove_stale_temp_files(Path(t.destination) for t in self.config.templates)
        self.catalog: Catalog = open_catalog(self.config.catalog)
        self.watcher = Watcher(self._policy(), self._on_data, self._on_fail, self._on_reset)
        self.pipeline = self._pipeline()
        if (files := self._file_catalog()) is not None and not self.config.once:
            files.start()
        async with tasks.running(self._task_group):
            try:
                if not self.config.once:
                    await self.ops.start()
                return await self._loop()
            finally:
                await self.ops.stop()
                await self.watcher.aclose()
                await self.catalog.aclose()

    def _file_catalog(self) -> FileCatalog | None:
        """The catalog when it is a file catalog (its module, with YAML, is loaded only then)."""
        if self.config.catalog.kind != "file":
            return None
        from ctmpl.sources.file import FileCatalog

        return self.catalog if isinstance(self.catalog, FileCatalog) else None

    def _policy(self) -> WatchPolicy:
        catalog = self.config.catalog
        retry = {"etcd": catalog.etcd.retry, "dns": catalog.dns.retry}.get(
            catalog.kind, catalog.consul.retry
        )
        if self.config.once and retry.attempts == 0:
            # -once must end: give up after a bounded number of attempts.
            retry = type(retry)(retry.enabled, 5, retry.backoff, min(retry.max_backoff, 5.0))
        return WatchPolicy(retry=retry)

    def _pipeline(self, previous: ProxyController | None = None) -> Pipeline:
        proxy: ProxyController | None = None
        # Keep the controller across a reload when its settings are unchanged: it tracks
        # an nginx it started in the foreground, and what the HAProxy workers run.
        # Each controller is imported by the daemon that uses it.
        if self.config.proxy == "nginx":
            from ctmpl.proxy.nginx import NginxController

            same = isinstance(previous, NginxController) and previous.cfg == self.config.nginx
            proxy = previous if same else self.ops.nginx(self.config.nginx)
        elif self.config.proxy == "haproxy":
            from ctmpl.proxy.haproxy import HaproxyController

            same = isinstance(previous, HaproxyController) and previous.cfg == self.config.haproxy
            proxy = previous if same else HaproxyController(self.config.haproxy)
        self.ops.proxy = proxy
        shrink = None if self.config.once else self.shrink  # -once has no later to wait for
        return Pipeline(self.catalog, self.brain, dry=self.config.dry, proxy=proxy,
                        shrink=shrink)

    async def _loop(self) -> int:
        while True:
            if self._stop is not None:
                return self._stop
            if self._failure is not None:
                log.error("%s", self._failure)
                return self._failure.exit_code
            if self.ops.exit_code is not None:
                return self.ops.exit_code
            if self._reload:
                await self.ops.reloading()
                await self._apply_reload()
                await self.ops.reloaded(self.config)
            code = await self._turn()
            if code is not None:
                return code
            await self._sleep_until(self._next_deadline())

    async def _turn(self) -> int | None:
        now = self.clock()
        self._recheck_held(now)
        for group in self.groups:
            if group.is_due(now):
                with self._task_group.busy():  # a long-poll asks again after it (``tasks``)
                    result = await self.pipeline.run_pass(group.states, now)
                code = self._fatal(result)
                if code is not None:
                    return code
                self._note_errors(result)
                self._note_proxy(result, now)
                self.ops.after_pass(len(result.installed))
                group.pass_done()
        self._sync_watches()
        self._warn_missing(now)
        if all(s.complete_once for g in self.groups for s in g.states):
            if self.config.once:
                return EXIT_OK
            preload.after_first_render()  # what the start put off (once)
            self._starting = False
            await self._ensure_proxy()
        elif self.config.once and self._file_catalog() is not None:
            return self._static_catalog_lacks_data()
        return None

    def _static_catalog_lacks_data(self) -> int | None:
        """In ``-once`` the file catalog never changes: a render still lacking data fails."""
        for state in (s for g in self.groups for s in g.states):
            if not state.complete_once and not state.dirty and not state.awaiting(self.brain):
                error = SourceError(
                    f"template {state.template.name}: the catalog has no data for "
                    f"{', '.join(sorted(state.missing))} (-once cannot wait for it)"
                )
                log.error("%s", error)
                return error.exit_code
        return None

    def _fatal(self, result: PassResult) -> int | None:
        """The exit code when this pass must end ctmpl: ``-once``, or before the first render."""
        if self.config.once and result.errors:
            return result.errors[0].exit_code
        if self._starting:
            for error in result.errors:
                # Commands and proxy reloads come after the files are installed: they are
                # retried on later passes (a proxy may come up later) rather than fatal.
                if not isinstance(error, CommandFailed | ProxyError):
                    log.error("exiting (code %d): this error came before the first complete "
                              "render", error.exit_code)
                    return error.exit_code
        return None

    def _note_errors(self, result: PassResult) -> None:
        if self.config.command_error_fatal:
            for error in result.errors:
                if isinstance(error, CommandFailed):
                    self._failure = error
                    self._wake.set()

    def _note_proxy(self, result: PassResult, now: float) -> None:
        if result.proxy_applied:
            self._proxy_retry.applied()
        elif result.proxy_failed:
            # A failed reload leaves the proxy's config unknown: retry with backoff.
            error = next((e for e in reversed(result.errors) if isinstance(e, ProxyError)), None)
            self._proxy_retry.failed(now, error or ProxyError("reload failed"))

    async def _ensure_proxy(self) -> None:
        """After every template rendered: reconcile the proxy, then start the exec child."""
        if self.config.dry:
            return
        await self._reconcile()
        if not self.ops.ready:
            try:
                await self.ops.first_render()  # exec child, READY=1
            except CtmplError as exc:
                self._failure = exc

    async def _reconcile(self) -> None:
        """At startup, and with backoff after a failed reload: run what is installed."""
        proxy = self.pipeline.proxy
        if proxy is None:
            return
        files = [s.destination for g in self.groups for s in g.states]
        outcome = await self._proxy_retry.attempt(
            self.clock(), lambda: asyncio.to_thread(proxy.reconcile, files)
        )
        if outcome is not None and outcome != "current":
            telemetry.reloaded(outcome)
        if outcome == "started":
            log.info("%s started (it was not running)", proxy.name)
        elif outcome == "reloaded":
            log.info("%s reloaded: it may not have run the installed config", proxy.name)

    def _sync_watches(self) -> None:
        # A state keeps its queries (the same dict) while a render reads the same ones:
        # with thousands of queries, most turns have nothing to start or stop.
        current = [s.queries for g in self.groups for s in g.states]
        if len(current) == len(self._synced) and all(map(operator.is_, current, self._synced)):
            return
        self._synced = current
        wanted = {k: q for g in self.groups for s in g.states for k, q in s.queries.items()}
        unused = self.watcher.keys() - set(wanted)
        self.watcher.remove(unused)
        self.brain.forget(unused)
        for query in wanted.values():
            self.watcher.add(query)

    def _warn_missing(self, now: float) -> None:
        for state in (s for g in self.groups for s in g.states):
            state.warn_if_still_missing(now, self.config.missing_dependency_warn)

    def _recheck_held(self, now: float) -> None:
        """Render held states again once their grace ended or the catalog settled."""
        due = self.shrink.due(now)
        for group in self.groups:
            group.rerender(due)

    def _next_deadline(self) -> float | None:
        times = [t for g in self.groups if (t := g.debounce.fire_at()) is not None]
        if (held := self.shrink.next_deadline()) is not None:
            times.append(held)
        if (retry := self._proxy_retry.deadline()) is not None and self.pipeline.proxy:
            times.append(retry)
        limit = self.config.missing_dependency_warn
        times += [t for g in self.groups for s in g.states if (t := s.warn_at(limit)) is not None]
        return min(times) if times else None

    async def _sleep_until(self, deadline: float | None) -> None:
        timeout = None if deadline is None else max(0.0, deadline - self.clock())
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        self._wake.clear()

    async def _apply_reload(self) -> None:
        self._reload = False
        if self.reload_config is None:
            return
        reload_config = self.reload_config

        def load() -> tuple[Config, list[Group]]:
            config = reload_config()
            return config, build_groups(config)

        try:
            # Reading config files and compiling templates is file work: off the loop.
            config, groups = await asyncio.to_thread(load)
            changed = config.catalog != self.config.catalog
            catalog = open_catalog(config.catalog) if changed else None
        except CtmplError as exc:
            log.error("reload: %s; keeping the running configuration", logs.shorten(str(exc)))
            return
        old, self.config, self.groups = self.config, config, groups
        self.shrink.config = config.shrink_guard
        self._starting = False  # the daemon runs already: a broken template keeps its file
        if self.on_reload is not None:
            self.on_reload(old, config)  # log settings and signal handlers
        if catalog is not None:
            await self._swap_catalog(catalog)
        elif (files := self._file_catalog()) is not None:
            await files.reload()  # re-read it: a swapped symlink (..data) is followed
        self.pipeline = self._pipeline(self.pipeline.proxy)
        announce(config, reload=True)

    async def _swap_catalog(self, catalog: Catalog) -> None:
        """Replace the catalog and every watch (new address, token, TLS or retry settings)."""
        await self.watcher.aclose()
        await self.catalog.aclose()
        self.catalog, self.brain = catalog, Brain()
        self.watcher = Watcher(self._policy(), self._on_data, self._on_fail, self._on_reset)
        if (files := self._file_catalog()) is not None and not self.config.once:
            files.start()
