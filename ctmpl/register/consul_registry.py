"""Registration through the local Consul agent: a service with one TTL check.

The sidekick registers the service (``PUT /v1/agent/service/register``) with a TTL check
``service:<id>``, then passes the check every healthy tick and fails it every unhealthy one
(``PUT /v1/agent/check/pass|fail/<check>``), so the agent marks the service critical by
itself when the sidekick dies and stops refreshing. An agent that restarted has forgotten
the service: a lost connection or an ``Unknown check ID`` answer registers it again. A stop
deregisters the service. HTTP, TLS, token and errors are ``ctmpl.sources.consul_http``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ctmpl.config.model import ConsulConfig
from ctmpl.errors import SourceError
from ctmpl.register.base import RegistryDown
from ctmpl.sources.consul_http import AgentHTTP

_CONNECTIONS = 2


def _unknown(exc: SourceError) -> bool:
    """True for the agent's answer about a check or service it does not know."""
    text = str(exc).lower()
    return "unknown check" in text or "unknown service" in text or "http 404" in text


class ConsulRegistry:
    """The ``Registry`` over the Consul agent API (see the module docstring)."""

    def __init__(
        self,
        config: ConsulConfig,
        *,
        service: str,
        id: str,
        host: str,
        port: int,
        tags: tuple[str, ...],
        meta: Mapping[str, str],
        ttl: float,
        check_name: str,
        timeout: float,
    ) -> None:
        self._http = AgentHTTP(config, _CONNECTIONS)
        self.what = f"consul service {id} ({self._http.hostport})"
        self._id = id
        self._check_id = f"service:{id}"
        self._definition: dict[str, Any] = {
            "ID": id, "Name": service, "Address": host, "Port": port,
            "Tags": list(tags), "Meta": dict(meta),
        }
        self._check: dict[str, Any] = {
            "CheckID": self._check_id, "Name": check_name, "TTL": f"{ttl:g}s",
        }
        self._timeout = timeout
        self._registered = False
        self._registered_in = -1  # the connection generation of the last registration

    async def healthy(self, detail: str) -> str | None:
        """Pass the TTL check; register first when the agent does not know the service."""
        return await self._update("pass", "passing", detail)

    async def unhealthy(self, detail: str) -> str | None:
        """Fail the TTL check: the service stays registered, but critical."""
        return await self._update("fail", "critical", detail)

    async def stop(self) -> str | None:
        """Deregister the service."""
        try:
            await self._put(f"/v1/agent/service/deregister/{self._id}", [])
        except RegistryDown as exc:
            if not _unknown(exc):
                raise
            return None
        self._registered = False
        return f"{self.what}: deregistered"

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def _update(self, verb: str, status: str, detail: str) -> str | None:
        if self._registered and self._registered_in == self._http.connection_generation:
            try:
                await self._put(f"/v1/agent/check/{verb}/{self._check_id}", [("note", detail)])
                return None
            except RegistryDown as exc:
                if not _unknown(exc):
                    raise
            again = "registration lost (the agent no longer knows it); registered again"
        else:
            again = "registered again after a lost connection," if self._registered \
                else "registered"
        generation = self._http.connection_generation
        check = {**self._check, "Status": status}
        await self._put("/v1/agent/service/register", [], {**self._definition, "Check": check})
        await self._put(f"/v1/agent/check/{verb}/{self._check_id}", [("note", detail)])
        self._registered, self._registered_in = True, generation
        return f"{self.what}: {again} as {status}"

    async def _put(self, path: str, query: list[tuple[str, str]], body: Any = None) -> None:
        try:
            await self._http.request("PUT", "consul", path, query, self._timeout, body=body)
        except SourceError as exc:
            raise RegistryDown(str(exc)) from None
