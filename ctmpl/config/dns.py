"""The DNS catalog's settings: ``dns://RESOLVER[:PORT]?key=value&…`` and the ``dns { }`` block.

The URL's query parameters are the keys of the block (``mode``, ``name``, ``srv``, ``port``,
``ports``, ``tags``, ``services``, ``ttl_min``, ``ttl_max``, ``timeout``), lists comma
separated (``services=web,api``, ``ports=web:8080,api:9000``); they win over the block.
Both are checked by the same schema, so an error names the key either way.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ctmpl.config.model import DnsConfig, Retry
from ctmpl.config.schema import DNS_SCHEMA, parse_layer
from ctmpl.errors import ConfigError
from ctmpl.model import is_safe_name, is_safe_tag, is_valid_address

# What each mode asks by default: Swarm's embedded DNS answers tasks.<service> with one A
# record per running task; Consul's DNS interface answers <service>.service.consul with SRV
# records carrying the ports (and A records for the addresses).
MODE_DEFAULTS: Mapping[str, tuple[str, bool]] = {
    "swarm": ("tasks.{service}", False),
    "consul": ("{service}.service.consul", True),
}
_LISTS = ("tags", "services")


def parse_dns_url(url: str) -> dict[str, Any]:
    """``dns://127.0.0.11:53?services=web`` as a checked raw ``dns`` block."""
    parts = urlsplit(url)
    if parts.path not in ("", "/") or parts.fragment:
        raise ConfigError(f"catalog {url!r}: expected dns://[RESOLVER[:PORT]][?key=value&…]")
    raw: dict[str, Any] = {}
    if parts.netloc:
        raw["resolver"] = parts.netloc
    try:
        params = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ConfigError(f"catalog {url!r}: query must be key=value&…") from None
    for key, value in params:
        if key in raw:
            raise ConfigError(f"catalog {url!r}: {key} given twice")
        raw[key] = _url_value(key, value)
    try:
        if parts.netloc:
            split_resolver(parts.netloc)
        return parse_layer(raw, DNS_SCHEMA, "dns.")
    except ConfigError as exc:
        raise ConfigError(f"catalog {url!r}: {exc}") from None


def _url_value(key: str, value: str) -> Any:
    if key in _LISTS:
        return [v.strip() for v in value.split(",") if v.strip()]
    if key == "ports":
        pairs = (item.partition(":") for item in value.split(",") if item.strip())
        return {name.strip(): port.strip() for name, _, port in pairs}
    return value


def split_resolver(text: str) -> tuple[str, int]:
    """``127.0.0.11``, ``127.0.0.1:5353``, ``::1`` or ``[::1]:5353`` as (IP, port)."""
    host, port = text, "53"
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            host = ""
        port = rest[1:] if rest else port
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise ConfigError(f"dns.resolver: {text!r} is not IP[:PORT] ([IPv6]:PORT)") from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"dns.resolver: port {port!r} of {text!r} is not 1-65535")
    return address, int(port)


def finalize_dns(raw: Mapping[str, Any], retry: Retry) -> DnsConfig:
    """The merged ``dns`` block as a DnsConfig; mode defaults fill ``name`` and ``srv``."""
    fields = dict(raw)
    resolver, port = split_resolver(fields.pop("resolver")) if fields.get("resolver") else ("", 53)
    mode = fields.get("mode", "swarm")
    name, srv = MODE_DEFAULTS[mode]
    config = DnsConfig(**{
        "name": name, "srv": srv, **fields,
        "resolver": resolver, "resolver_port": port, "retry": retry,
        "tags": tuple(fields.get("tags", ())), "services": tuple(fields.get("services", ())),
    })
    _check(config)
    return config


def _check(config: DnsConfig) -> None:
    sample = config.name.replace("{service}", "web")
    if "{service}" not in config.name or "{" in sample or not is_valid_address(sample):
        raise ConfigError(f"dns.name: {config.name!r} must be a DNS name containing {{service}}")
    if config.ttl_min < 0.1:
        raise ConfigError("dns.ttl_min: must be at least 100ms")
    if config.ttl_max < config.ttl_min:
        raise ConfigError("dns.ttl_max: must not be less than ttl_min")
    if config.timeout <= 0:
        raise ConfigError("dns.timeout: must be more than 0")
    for where, names in (("services", config.services), ("ports", tuple(config.ports))):
        for service in names:
            if not is_safe_name(service) or "." in service:
                raise ConfigError(f"dns.{where}: {service!r} is not a service name")
    for tag in config.tags:
        if not is_safe_tag(tag):
            raise ConfigError(f"dns.tags: {tag!r} is not a safe tag")
