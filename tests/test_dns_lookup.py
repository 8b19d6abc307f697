"""How DNS replies become instances (replies scripted at ``DnsLookup.ask``; dnsmasq is in e2e)."""

from __future__ import annotations

import asyncio

import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest

from ctmpl.config.model import DnsConfig
from ctmpl.sources.dns_lookup import MAX_IN_FLIGHT, DnsLookup, Reply, Target, negative_ttl

IN = dns.rdataclass.IN
WEB = Target("web", 8080, ("calico",))
EMPTY_REPLY = dns.message.make_response(dns.message.make_query("tasks.web", "A"))


def rdata(kind: str, text: str) -> object:
    return dns.rdata.from_text(IN, dns.rdatatype.from_text(kind), text)


def lookup(replies: dict[tuple[str, str], Reply]) -> tuple[DnsLookup, list[str]]:
    resolver = DnsLookup(DnsConfig(resolver="127.0.0.1"))
    asked: list[str] = []

    async def ask(qname: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> Reply:
        key = (qname.to_text(omit_final_dot=True), rdtype.name)
        asked.append(" ".join(key))
        return replies.get(key, Reply((), 0.0, nxdomain=True))

    resolver.ask = ask  # type: ignore[method-assign]
    return resolver, asked


async def test_a_and_aaaa_records_are_instances_on_the_configured_port() -> None:
    dns_lookup, _ = lookup({
        ("tasks.web", "A"): Reply((rdata("A", "10.0.0.2"), rdata("A", "10.0.0.1")), 7.0),
        ("tasks.web", "AAAA"): Reply((rdata("AAAA", "fd00::1"),), 9.0),
    })
    answer = await dns_lookup.instances("tasks.web", WEB, srv=False)
    assert [i.ID for i in answer.instances] == ["10.0.0.1:8080", "10.0.0.2:8080",
                                                "[fd00::1]:8080"]
    assert {i.Tags for i in answer.instances} == {("calico",)}
    assert answer.ttl == 7.0 and answer.empty == ""


async def test_nxdomain_for_one_family_does_not_hide_the_other() -> None:
    dns_lookup, _ = lookup({("tasks.web", "A"): Reply((rdata("A", "10.0.0.1"),), 600.0)})
    answer = await dns_lookup.instances("tasks.web", WEB, srv=False)
    assert [i.Address for i in answer.instances] == ["10.0.0.1"] and answer.ttl == 600.0
    nothing = await lookup({})[0].instances("tasks.web", WEB, srv=False)
    assert nothing.instances == () and nothing.empty == "NXDOMAIN"


async def test_srv_ports_and_targets_from_the_additional_section_or_asked() -> None:
    additional = dns.rrset.from_text("n1.node.consul.", 5, "IN", "A", "10.0.1.1")
    dns_lookup, asked = lookup({
        ("web.service.consul", "SRV"): Reply(
            (rdata("SRV", "1 1 8081 n1.node.consul."), rdata("SRV", "1 1 8082 n2.node.consul."),
             rdata("SRV", "1 1 8083 gone.node.consul.")), 10.0, additional=(additional,)),
        ("n2.node.consul", "AAAA"): Reply((rdata("AAAA", "fd00::2"),), 3.0),
    })
    answer = await dns_lookup.instances("web.service.consul", WEB, srv=True)
    assert [(i.Node, i.ID) for i in answer.instances] == [
        ("n1.node.consul", "10.0.1.1:8081"), ("n2.node.consul", "[fd00::2]:8082")]
    assert answer.ttl == 3.0
    assert "n1.node.consul A" not in asked and "web.service.consul A" not in asked


async def test_a_name_without_srv_records_falls_back_to_addresses() -> None:
    dns_lookup, _ = lookup({("api.service.consul", "SRV"): Reply((), 0.0),
                            ("api.service.consul", "A"): Reply((rdata("A", "10.0.2.1"),), 5.0)})
    answer = await dns_lookup.instances("api.service.consul", WEB, srv=True)
    assert [i.ID for i in answer.instances] == ["10.0.2.1:8080"]


@pytest.mark.parametrize("soa, ttl", [
    (None, 0.0),  # no SOA: ask again after ttl_min
    ((300, 60), 60.0),  # the SOA's minimum, below its TTL
    ((20, 60), 20.0),  # the SOA's TTL, below its minimum
])
def test_negative_ttl_comes_from_the_soa(soa: tuple[int, int] | None, ttl: float) -> None:
    response = dns.message.make_response(dns.message.make_query("tasks.web", "A"))
    if soa is not None:
        response.authority = [dns.rrset.from_text(
            "example.", soa[0], "IN", "SOA", f"ns. host. 1 2 3 4 {soa[1]}")]
    assert negative_ttl(response) == ttl


async def test_at_most_32_questions_are_in_flight() -> None:
    """A start with 1,000 services must not open 2,000 sockets nor flood Docker's DNS."""
    dns_lookup = DnsLookup(DnsConfig(resolver="127.0.0.1"))
    flying, most = 0, 0

    class Resolver:
        async def resolve(self, *args: object, **kwargs: object) -> object:
            nonlocal flying, most
            flying += 1
            most = max(most, flying)
            await asyncio.sleep(0.001)
            flying -= 1
            raise dns.resolver.NXDOMAIN(qnames=[args[0]], responses={args[0]: EMPTY_REPLY})

    dns_lookup._resolver = Resolver()  # type: ignore[assignment]
    names = [dns.name.from_text(f"tasks.svc-{n}") for n in range(200)]
    await asyncio.gather(*(dns_lookup.ask(name, dns.rdatatype.A) for name in names))
    assert most == MAX_IN_FLIGHT == 32
