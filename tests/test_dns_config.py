"""The DNS catalog's settings (URL and ``dns { }`` block) and its answers to non-DNS questions."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ctmpl.config.model import CatalogConfig, DnsConfig, Retry
from ctmpl.errors import CtmplError, QueryError
from ctmpl.model import ServiceSummary
from ctmpl.sources import open_catalog
from ctmpl.sources.base import parse_service
from ctmpl.sources.dns import DnsCatalog
from tests.foundation_util import load


def dns_config(url: str, *files: Path) -> DnsConfig:
    args = [a for f in files for a in ("-config", str(f))]
    config = load([*args, "-catalog", url])
    assert config.catalog.kind == "dns"
    return config.catalog.dns


def test_defaults_ask_the_system_resolver_for_swarm_tasks() -> None:
    config = dns_config("dns://")
    assert (config.resolver, config.mode, config.name, config.srv) == ("", "swarm",
                                                                       "tasks.{service}", False)
    assert (config.port, config.ttl_min, config.ttl_max, config.timeout) == (80, 1.0, 30.0, 5.0)
    assert config.retry == Retry(max_backoff=30.0)


@pytest.mark.parametrize("url, resolver, port", [
    ("dns://127.0.0.11", "127.0.0.11", 53),
    ("dns://127.0.0.1:5353/", "127.0.0.1", 5353),
    ("dns://[::1]:5353", "::1", 5353),
    ("dns://[::1]", "::1", 53),
])
def test_resolver_address_and_port(url: str, resolver: str, port: int) -> None:
    config = dns_config(url)
    assert (config.resolver, config.resolver_port) == (resolver, port)


def test_query_parameters() -> None:
    config = dns_config("dns://10.0.0.2?mode=consul&services=web,api&tags=calico,edge"
                        "&port=8080&ports=api:9000,db:5432&ttl_min=2s&ttl_max=1m&timeout=500ms")
    assert config.name == "{service}.service.consul" and config.srv
    assert config.services == ("web", "api") and config.tags == ("calico", "edge")
    assert config.port == 8080 and dict(config.ports) == {"api": 9000, "db": 5432}
    assert (config.ttl_min, config.ttl_max, config.timeout) == (2.0, 60.0, 0.5)


def test_block_and_url_parameters_winning(tmp_path: Path) -> None:
    hcl = tmp_path / "dns.hcl"
    hcl.write_text('dns {\n  resolver = "127.0.0.11"\n  services = ["web"]\n  port = 8080\n'
                   '  name = "{service}.tasks.example"\n  retry { max_backoff = "5s" }\n}\n')
    config = dns_config("dns://?port=9090", hcl)
    assert config.resolver == "127.0.0.11" and config.services == ("web",)
    assert config.port == 9090 and config.name == "{service}.tasks.example"
    assert config.retry.max_backoff == 5.0


@pytest.mark.parametrize("url, message", [
    ("dns://dns.example", "dns.resolver: 'dns.example' is not IP[:PORT]"),
    ("dns://127.0.0.1:0", "dns.resolver: port '0' of '127.0.0.1:0' is not 1-65535"),
    ("dns://127.0.0.1/prefix", "expected dns://[RESOLVER[:PORT]][?key=value&…]"),
    ("dns://?mode=k8s", "dns.mode: 'k8s' is not one of swarm, consul"),
    ("dns://?color=blue", "dns.color: unknown key"),
    ("dns://?port=1&port=2", "port given twice"),
    ("dns://?port=0", "dns.port: port 0 is out of range 1-65535"),
    ("dns://?ports=web", "dns.ports.web: port '' is not a number"),
    ("dns://?name=tasks", "dns.name: 'tasks' must be a DNS name containing {service}"),
    ("dns://?name={service}.{x}", "must be a DNS name containing {service}"),
    ("dns://?ttl_min=0s", "dns.ttl_min: must be at least 100ms"),
    ("dns://?ttl_min=10s&ttl_max=5s", "dns.ttl_max: must not be less than ttl_min"),
    ("dns://?timeout=0s", "dns.timeout: must be more than 0"),
    ("dns://?services=web;x", "dns.services: 'web;x' is not a service name"),
    ("dns://?tags=a%22b", "dns.tags: 'a\"b' is not a safe tag"),
])
def test_bad_settings_are_one_line_errors(url: str, message: str) -> None:
    """Each names the key; the flag's value is a usage error (exit 2), as for etcd URLs."""
    with pytest.raises(CtmplError) as error:
        load(["-catalog", url])
    assert message in str(error.value) and "\n" not in str(error.value)


def catalog(**dns: object) -> DnsCatalog:
    config = CatalogConfig(kind="dns", dns=DnsConfig(resolver="127.0.0.1", **dns))  # type: ignore[arg-type]
    opened = open_catalog(config)
    assert isinstance(opened, DnsCatalog)
    return opened


async def test_services_are_the_configured_ones_with_the_configured_tags() -> None:
    query = catalog(services=("web", "api"), tags=("calico",)).services()
    assert await query.fetch(0) == ((ServiceSummary("api", ("calico",)),
                                     ServiceSummary("web", ("calico",))), 1)


async def test_services_without_configured_names_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    for _ in range(2):
        assert await catalog().services().fetch(0) == ((), 1)
    warnings = [r for r in caplog.records if "cannot list services" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_queries_share_a_name_and_keys_name_the_spec() -> None:
    dns = catalog()
    web, any_web = dns.service(parse_service("web")), dns.service(parse_service("web|any"))
    assert (web.key, any_web.key) == ("dns.service(web|passing)", "dns.service(web|any)")
    assert dns.service(parse_service("web"))._poller is web._poller  # type: ignore[attr-defined]


def test_no_datacenters_and_no_key_value_store() -> None:
    dns = catalog()
    with pytest.raises(QueryError, match="the dns catalog has no datacenters"):
        dns.service(parse_service("web@dc2"))
    with pytest.raises(QueryError, match=r"key\('app/x'\): not available with the dns catalog"):
        dns.key("app/x")
    with pytest.raises(QueryError, match=r"ls/tree\('app'\): not available with the dns"):
        dns.tree("app")
