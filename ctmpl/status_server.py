"""The status server (``-status-addr``): ``/health`` as JSON and ``/metrics`` for Prometheus.

Off by default. ``/health`` answers 200 while the proxy runs (or there is none) and the
last check passed, else 503, so it serves as a container health check or a readiness
probe: before the first complete render the proxy is ``starting`` and the answer is 503.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ctmpl import telemetry
from ctmpl.errors import ConfigError

log = logging.getLogger(__name__)

# "none": no proxy and no exec child; "up"; "down"; "starting": before the first render.
ProxyState = Callable[[], Awaitable[dict[str, Any]]]
HEALTHY_PROXY = ("none", "up")


def health_document(proxy: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The ``/health`` body and its HTTP status."""
    h = telemetry.HEALTH
    healthy = proxy.get("state") in HEALTHY_PROXY and h.check != "failed"
    doc: dict[str, Any] = {
        "status": "ok" if healthy else "unhealthy",
        "source": h.source,
        "watches": {k: vars(w) for k, w in sorted(h.watches.items())},
        "templates": {k: vars(t) for k, t in sorted(h.templates.items())},
        "check": {"state": h.check, "error": h.check_error},
        "proxy": proxy,
        "last_reload": {"outcome": h.last_reload, "at": h.last_reload_at},
        "shrink_guard": {k: vars(v) for k, v in sorted(h.held.items())},
    }
    return (200 if healthy else 503), doc


class StatusServer:
    """An aiohttp server on ``host:port`` inside the daemon's event loop."""

    def __init__(self, address: str, proxy_state: ProxyState) -> None:
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self._proxy_state = proxy_state
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; ConfigError when the address cannot be bound."""
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError(
                f"status_addr {self.host}:{self.port}: cannot listen: {exc.strerror or exc}"
            ) from None
        log.info("status server on http://%s:%d (/health, /metrics)", self.host, self.port)

    async def aclose(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, request: web.Request) -> web.Response:
        status, doc = health_document(await self._proxy_state())
        return web.json_response(doc, status=status)

    async def _metrics(self, request: web.Request) -> web.Response:
        metrics = telemetry.METRICS
        assert metrics is not None, "the daemon records metrics while it serves them"
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
