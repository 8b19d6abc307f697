"""DNS as a service catalog: Docker Swarm's ``tasks.<service>`` and Consul's DNS interface.

``service("web")`` asks the configured name (``dns.name``, ``{service}`` replaced): in
swarm mode ``tasks.web``, whose A/AAAA records are the running tasks, each on the
configured port (``dns.port``, or ``dns.ports["web"]``); in consul mode
``web.service.consul``, whose SRV records carry the ports (A/AAAA plus the configured
port when it has none), and a tag is asked of the server as Consul spells it
(``calico.web.service.consul``). Every instance found is ``passing`` (DNS lists only
healthy instances) and carries ``dns.tags``.

DNS cannot list services: ``services()`` is the configured ``dns.services``, and DNS has
neither nodes (``nodes()`` is empty) nor a key/value store (``key``/``ls``/``tree`` are
errors). Names are polled as ``ctmpl.sources.dns_poll`` describes.
"""

from __future__ import annotations

import functools

import dns.exception
import dns.name

from ctmpl.config.model import CatalogConfig
from ctmpl.errors import QueryError, SourceError
from ctmpl.model import Instance, ServiceSummary, warn_once
from ctmpl.sources.base import ConstantQuery, Query, ServiceSpec, filter_instances
from ctmpl.sources.dns_lookup import DnsLookup, Target
from ctmpl.sources.dns_poll import NamePoller, PollTiming


class DnsQuery:
    """``service()`` over the shared poller of its DNS name, filtered by the spec."""

    def __init__(self, spec: ServiceSpec, poller: NamePoller) -> None:
        self.key = f"dns.service({spec.key})"
        self._spec = spec
        self._poller = poller

    async def fetch(self, index: int) -> tuple[object, int]:
        """(instances, generation): at once for a new query, else when the name's answer changes."""
        try:
            instances, generation = await self._poller.wait_past(index)
        except SourceError as exc:
            raise SourceError(f"{self.key}: {exc}") from None
        return self.view(instances), generation

    def view(self, instances: tuple[Instance, ...]) -> tuple[Instance, ...]:
        """The instances that pass the spec's tag and status filters."""
        return filter_instances(self._spec, instances)


class DnsCatalog:
    """The ``Catalog`` protocol over DNS (see the module docstring)."""

    name = "dns"

    def __init__(self, config: CatalogConfig) -> None:
        self._config = config.dns
        self._wait = config.block_query_wait
        self._lookup = DnsLookup(config.dns)
        self._timing = PollTiming(ttl_min=config.dns.ttl_min, ttl_max=config.dns.ttl_max)
        self._pollers: dict[str, NamePoller] = {}

    def services(self) -> Query:
        """The configured ``dns.services``, each with ``dns.tags`` (DNS cannot list services)."""
        names, tags = self._config.services, tuple(sorted(set(self._config.tags)))
        if not names:
            warn_once("services(): the dns catalog cannot list services, and dns.services "
                      "names none; set dns { services = [...] } or dns://…?services=web,api")
        data = tuple(ServiceSummary(Name=n, Tags=tags) for n in sorted(set(names)))
        return ConstantQuery("dns.services", data, self._wait)

    def service(self, spec: ServiceSpec) -> Query:
        """Instances of one service, from its DNS name's shared poller."""
        if spec.dc:
            raise QueryError(f"service({spec.key!r}): the dns catalog has no datacenters "
                             "(name one in dns.name, e.g. {service}.service.dc2.consul)")
        name, tags = self._config.name.replace("{service}", spec.name), self._config.tags
        if spec.tag and self._config.mode == "consul":
            name, tags = f"{spec.tag}.{name}", (*tags, spec.tag)  # Consul's tag filter
        elif spec.tag and spec.tag not in tags:
            warn_once(f"service({spec.key!r}): dns instances carry only the tags in dns.tags "
                      f"({', '.join(tags) or 'none'}), so none has tag {spec.tag!r}")
        try:
            dns.name.from_text(name)
        except dns.exception.DNSException as exc:
            raise QueryError(f"service({spec.key!r}): {name!r} is not a DNS name: {exc}") \
                from None
        return DnsQuery(spec, self._poller(name, spec.name, tags))

    def nodes(self) -> Query:
        """Always an empty tuple: DNS answers carry no nodes."""
        return ConstantQuery("dns.nodes", (), self._wait)

    def key(self, path: str) -> Query:
        """An error: DNS has no key/value store."""
        raise QueryError(f"key({path!r}): {self._no_kv}")

    def tree(self, prefix: str) -> Query:
        """An error: DNS has no key/value store."""
        raise QueryError(f"ls/tree({prefix!r}): {self._no_kv}")

    _no_kv = "not available with the dns catalog (DNS has no key/value store)"

    async def aclose(self) -> None:
        """Nothing to release: every lookup opens and closes its own socket."""
        self._pollers.clear()

    def _poller(self, name: str, service: str, tags: tuple[str, ...]) -> NamePoller:
        poller = self._pollers.get(name)
        if poller is None:
            target = Target(service, self._config.ports.get(service, self._config.port), tags)
            lookup = functools.partial(self._lookup.instances, name, target, self._config.srv)
            poller = self._pollers[name] = NamePoller(name, lookup, self._timing)
        return poller
