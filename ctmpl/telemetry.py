"""What ctmpl is doing, for ``/health`` and ``/metrics``: one recorder the stages report to.

The stages call the small functions below (``watch_ok``, ``rendered``, ``check_failed``,
``reloaded`` …); they cost a dict update (and a counter increment), so they run whether or
not the status server is on. The health state is in :data:`HEALTH`; the Prometheus metrics
(:data:`METRICS`, a private registry without process-wide default collectors) exist only
when ``/metrics`` is served (``reset(metrics=True)``): ``prometheus_client`` is not even
imported otherwise, which shortens every start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

WatchStateName = Literal["waiting", "ok", "error"]
TemplateStateName = Literal["waiting", "rendered", "failed"]
CheckStateName = Literal["none", "ok", "failed"]
ReloadOutcome = Literal[
    "reloaded", "started", "checked", "failed", "rejected", "signalled", "restarted"
]


class Metrics:
    """Every metric ctmpl exports, registered in one private registry."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        reg = self.registry
        self.renders = Counter(
            "ctmpl_renders", "Template renders by template and outcome "
            "(complete, incomplete: data missing, error)", ["template", "outcome"], registry=reg)
        self.render_seconds = Histogram(
            "ctmpl_render_duration_seconds", "Time to render one template", registry=reg,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
        self.checks_failed = Counter(
            "ctmpl_checks_failed", "Checks (check commands, nginx -t) that rejected a render",
            registry=reg)
        self.reloads = Counter(
            "ctmpl_reloads", "Proxy or exec-child reloads by outcome (reloaded, started, "
            "failed, rejected, signalled, restarted)", ["outcome"], registry=reg)
        self.source_errors = Counter(
            "ctmpl_source_errors", "Failed catalog queries by source (consul, etcd, file)",
            ["source"], registry=reg)
        self.watched = Gauge(
            "ctmpl_watched_queries", "Catalog queries currently watched", registry=reg)
        self.consul_requests = Counter(
            "ctmpl_consul_requests", "HTTP requests sent to the Consul agent", registry=reg)
        self.shrink_held = Gauge(
            "ctmpl_shrink_guard_held", "Renders the shrink guard holds back right now",
            registry=reg)
        self.shrink_holds = Counter(
            "ctmpl_shrink_guard_holds", "Renders the shrink guard started holding back",
            registry=reg)
        self.last_render = Gauge(
            "ctmpl_last_successful_render_timestamp_seconds",
            "Unix time of the last complete render that was installed or already current",
            registry=reg)


@dataclass
class WatchState:
    """One watched query: answered, failing, or not answered yet."""

    state: WatchStateName = "waiting"
    error: str = ""
    since: float = field(default_factory=time.time)


@dataclass
class TemplateState:
    """One template's last outcome."""

    destination: str
    state: TemplateStateName = "waiting"
    error: str = ""
    last_render: float | None = None


@dataclass
class HeldState:
    """A render the shrink guard holds back (see ``ctmpl.shrink``)."""

    template: str
    before: int  # instances live; -1: unknown (first render since startup)
    after: int  # instances of the held render
    reason: str  # "drop" or "settling"
    since: float = field(default_factory=time.time)


@dataclass
class Health:
    """The state ``/health`` reports (the proxy's state is asked for at request time)."""

    source: str = "consul"
    watches: dict[str, WatchState] = field(default_factory=dict)
    templates: dict[str, TemplateState] = field(default_factory=dict)
    check: CheckStateName = "none"
    check_error: str = ""
    last_reload: str = ""
    last_reload_at: float | None = None
    held: dict[str, HeldState] = field(default_factory=dict)  # by destination


METRICS: Metrics | None = None  # only while /metrics is served
HEALTH = Health()


def reset(source: str = "consul", metrics: bool = False) -> None:
    """Start a fresh recording (a new daemon, or a test); ``metrics``: with Prometheus
    metrics (the status server serves them)."""
    global METRICS, HEALTH
    METRICS = Metrics() if metrics else None
    HEALTH = Health(source=source)


# -- watches -------------------------------------------------------------------------------


def watch_added(key: str) -> None:
    """A new query is watched."""
    HEALTH.watches.setdefault(key, WatchState())
    if METRICS is not None:
        METRICS.watched.set(len(HEALTH.watches))


def watch_removed(key: str) -> None:
    """A query is no longer watched."""
    HEALTH.watches.pop(key, None)
    if METRICS is not None:
        METRICS.watched.set(len(HEALTH.watches))


def watch_ok(key: str) -> None:
    """A query answered."""
    state = HEALTH.watches.get(key)
    if state is not None and state.state != "ok":
        state.state, state.error, state.since = "ok", "", time.time()


def watch_error(key: str, message: str) -> None:
    """A query failed (it is retried; the last good data stays)."""
    if METRICS is not None:
        METRICS.source_errors.labels(HEALTH.source).inc()
    state = HEALTH.watches.get(key)
    if state is not None:
        if state.state != "error":
            state.since = time.time()
        state.state, state.error = "error", message


def consul_request() -> None:
    """One HTTP request went to the Consul agent."""
    if METRICS is not None:
        METRICS.consul_requests.inc()


# -- templates, checks, reloads ------------------------------------------------------------


def _template(name: str, destination: str) -> TemplateState:
    return HEALTH.templates.setdefault(name, TemplateState(destination))


def rendered(name: str, destination: str, seconds: float, complete: bool) -> None:
    """A render finished: complete, or waiting for data."""
    if METRICS is not None:
        METRICS.render_seconds.observe(seconds)
    if METRICS is not None:
        METRICS.renders.labels(name, "complete" if complete else "incomplete").inc()
    if not complete:
        _template(name, destination)


def render_failed(name: str, destination: str, message: str) -> None:
    """A render, check or install failed; the last good file stays."""
    if METRICS is not None:
        METRICS.renders.labels(name, "error").inc()
    state = _template(name, destination)
    state.state, state.error = "failed", message


def installed(name: str, destination: str) -> None:
    """A complete render is live (written now, or already current)."""
    now = time.time()
    state = _template(name, destination)
    state.state, state.error, state.last_render = "rendered", "", now
    if METRICS is not None:
        METRICS.last_render.set(now)


def check_ok() -> None:
    """A check accepted the rendered config."""
    HEALTH.check, HEALTH.check_error = "ok", ""


def check_failed(message: str) -> None:
    """A check rejected the rendered config."""
    if METRICS is not None:
        METRICS.checks_failed.inc()
    HEALTH.check, HEALTH.check_error = "failed", message


def reloaded(outcome: ReloadOutcome | str) -> None:
    """The proxy or exec child was reloaded, started or failed to."""
    if METRICS is not None:
        METRICS.reloads.labels(outcome).inc()
    HEALTH.last_reload, HEALTH.last_reload_at = outcome, time.time()


# -- shrink guard --------------------------------------------------------------------------


def shrink_held(destination: str, state: HeldState) -> None:
    """The shrink guard holds a render for ``destination`` (a new hold, or new numbers)."""
    old = HEALTH.held.get(destination)
    if old is None:
        if METRICS is not None:
            METRICS.shrink_holds.inc()
    else:
        state.since = old.since
    HEALTH.held[destination] = state
    if METRICS is not None:
        METRICS.shrink_held.set(len(HEALTH.held))


def shrink_released(destination: str) -> None:
    """The render for ``destination`` went live (recovered, grace ended, or guard off)."""
    if HEALTH.held.pop(destination, None) is not None and METRICS is not None:
        METRICS.shrink_held.set(len(HEALTH.held))
