"""Asking a resolver for the instances behind one name (dnspython's asyncio resolver).

SRV records (when asked for) give each instance's port and target host; the target's
addresses come from the answer's additional section, or are asked for. Without SRV
records, every A and AAAA record is one instance on the configured port. NXDOMAIN and
"no records" are empty answers; SERVFAIL, REFUSED and timeouts raise SourceError naming
the name and the resolver. Everything found passes the catalog-data validation.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver
import dns.rrset
from dns.rdtypes.IN.SRV import SRV

from ctmpl.config.model import DnsConfig
from ctmpl.errors import SourceError
from ctmpl.model import (
    Instance,
    InvalidEntry,
    is_safe_name,
    make_instance,
    sort_instances,
    warn_once,
)
from ctmpl.sources.dns_poll import Answer

A, AAAA, SRV_TYPE = dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.SRV
MAX_TARGETS = 256  # SRV targets whose addresses one lookup asks for separately
# Questions in flight at once: Docker's embedded DNS serves at most 100 concurrent queries
# and drops the rest, and a start with thousands of services must not open a socket each.
MAX_IN_FLIGHT = 32


@dataclass(frozen=True)
class Reply:
    """One answer: its records (none when empty), their TTL, and the additional section."""

    records: tuple[object, ...]
    ttl: float
    nxdomain: bool = False
    additional: tuple[dns.rrset.RRset, ...] = ()


@dataclass(frozen=True)
class Target:
    """What the instances of one service look like: its name, port and tags."""

    service: str
    port: int
    tags: tuple[str, ...]


def host_port(address: str, port: int) -> str:
    """``10.0.0.1:80`` or ``[fd00::1]:80``: an instance's ID."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class DnsLookup:
    """One resolver (``dns.resolver``, or the system's), asked without a cache."""

    def __init__(self, config: DnsConfig) -> None:
        try:
            resolver = dns.asyncresolver.Resolver(configure=not config.resolver)
        except dns.exception.DNSException as exc:
            raise SourceError(f"dns: cannot read the system resolver configuration: {exc}") \
                from None
        if config.resolver:
            resolver.nameservers = [config.resolver]
            resolver.port = config.resolver_port
        resolver.cache = None  # the TTL rule decides when to ask again
        resolver.lifetime = config.timeout
        resolver.timeout = min(2.0, config.timeout)
        self._resolver = resolver
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._timeout = config.timeout
        servers = ", ".join(str(s) for s in resolver.nameservers)
        self.description = (
            f"resolver {host_port(config.resolver, config.resolver_port)}" if config.resolver
            else f"system resolver ({servers})"
        )

    async def instances(self, name: str, target: Target, srv: bool) -> Answer:
        """The instances ``name`` resolves to; SRV first when ``srv``."""
        qname = dns.name.from_text(name)
        if srv:
            reply = await self.ask(qname, SRV_TYPE)
            if reply.nxdomain:
                return Answer((), reply.ttl, "NXDOMAIN")
            if reply.records:
                return await self._from_srv(name, reply, target)
        four, six = await asyncio.gather(self.ask(qname, A), self.ask(qname, AAAA))
        # Some resolvers answer NXDOMAIN for the family a name lacks: only records count.
        addresses = [r.address for r in (*four.records, *six.records)]  # type: ignore[attr-defined]
        found = _build(name, target, ((a, target.port, "") for a in addresses))
        empty = "" if found else "NXDOMAIN" if four.nxdomain or six.nxdomain else "no records"
        ttls = [reply.ttl for reply in (four, six) if reply.records] or [four.ttl, six.ttl]
        return Answer(found, min(ttls), empty)

    async def _from_srv(self, name: str, reply: Reply, target: Target) -> Answer:
        records = [r for r in reply.records if isinstance(r, SRV)]
        known: dict[dns.name.Name, list[str]] = {}
        for rrset in reply.additional:
            if rrset.rdtype in (A, AAAA):
                known.setdefault(rrset.name, []).extend(r.address for r in rrset)
        ttls = [reply.ttl]
        missing = list(dict.fromkeys(r.target for r in records if r.target not in known))
        if len(missing) > MAX_TARGETS:
            warn_once(f"dns {name}: {len(missing)} SRV targets without addresses in the answer; "
                      f"asking for the first {MAX_TARGETS} only")
        replies = await asyncio.gather(*(
            self.ask(host, kind) for host in missing[:MAX_TARGETS] for kind in (A, AAAA)
        ))
        for (host, _), got in zip(itertools.product(missing, (A, AAAA)), replies, strict=False):
            known.setdefault(host, []).extend(r.address for r in got.records)  # type: ignore[attr-defined]
            if got.records:
                ttls.append(got.ttl)
        entries = (
            (address, r.port, r.target.to_text(omit_final_dot=True))
            for r in records for address in known.get(r.target, ())
        )
        found = _build(name, target, entries)
        return Answer(found, min(ttls), "" if found else "no records")

    async def ask(self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> Reply:
        """One question; an empty Reply for NXDOMAIN or no records; SourceError otherwise."""
        what = f"{qname.to_text(omit_final_dot=True)} {rdtype.name}"
        try:
            async with self._slots:
                answer = await self._resolver.resolve(
                    qname, rdtype, raise_on_no_answer=False, search=False
                )
        except dns.resolver.NXDOMAIN as exc:
            response = exc.response(qname)  # type: ignore[no-untyped-call]
            return Reply((), negative_ttl(response), nxdomain=True)
        except dns.resolver.LifetimeTimeout:
            raise SourceError(
                f"dns {what}: no answer from the {self.description} within {self._timeout:g}s"
            ) from None
        except dns.resolver.NoNameservers as exc:
            raise SourceError(f"dns {what}: the {self.description} answered "
                              f"{_failures(exc)}") from None
        except dns.exception.DNSException as exc:
            raise SourceError(f"dns {what}: {self.description}: {exc}") from None
        if answer.rrset is None:
            return Reply((), negative_ttl(answer.response))
        return Reply(tuple(answer.rrset), answer.rrset.ttl,
                     additional=tuple(answer.response.additional))


def negative_ttl(response: dns.message.Message) -> float:
    """How long an empty answer holds: the SOA's negative TTL, 0 (ttl_min) without one."""
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            return float(min(rrset.ttl, *(r.minimum for r in rrset)))
    return 0.0


def _failures(exc: dns.resolver.NoNameservers) -> str:
    """``SERVFAIL``, ``REFUSED``, or the error of each server, once each."""
    errors = exc.kwargs.get("errors") or []
    texts = dict.fromkeys(str(e[3]) for e in errors if len(e) > 3)
    return ", ".join(texts) or "no usable answer"


def _build(
    name: str, target: Target, entries: Iterable[tuple[str, int, str]]
) -> tuple[Instance, ...]:
    """Validated instances from (address, port, SRV target) entries, in the model's order."""
    kept: list[Instance] = []
    for address, port, node in entries:
        try:
            kept.append(make_instance(
                f"dns {name}", name=target.service, id=host_port(address, port),
                address=address, port=port, tags=target.tags,
                node=node if is_safe_name(node) else "",
            ))
        except InvalidEntry as exc:
            warn_once(str(exc))
    return sort_instances(kept)
