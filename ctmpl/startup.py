"""What ctmpl says about a configuration when it starts or reloads one.

One INFO line names the version, the catalog, every template (source → destination), the
proxy mode and the wait, so an operator reading the log knows what runs; then one WARNING
per consul-template key that the configuration sets and ctmpl ignores.
"""

from __future__ import annotations

import logging

from ctmpl import __version__
from ctmpl.config.model import CatalogConfig, Config, Wait

log = logging.getLogger("ctmpl")


def describe_catalog(catalog: CatalogConfig) -> str:
    """``consul 127.0.0.1:8500``, ``etcd h1:2379,h2:2379/prefix`` or ``file /path``."""
    if catalog.kind == "file":
        return f"file {catalog.file_path}"
    if catalog.kind == "etcd":
        return f"etcd {','.join(catalog.etcd.endpoints)}/{catalog.etcd.prefix}"
    if catalog.kind == "zk":
        return f"zk {','.join(catalog.zk.hosts)}{catalog.zk.prefix}"
    if catalog.kind == "dns":
        address, port = catalog.dns.resolver, catalog.dns.resolver_port
        resolver = address and (f"[{address}]:{port}" if ":" in address else f"{address}:{port}")
        return f"dns {resolver or 'system resolver'} ({catalog.dns.mode}: {catalog.dns.name})"
    return f"consul {catalog.consul.address}"


def describe_wait(wait: Wait) -> str:
    """``2s:10s``, or ``off``."""
    return f"{wait.min:g}s:{wait.max:g}s" if wait.enabled else "off"


def summary(config: Config) -> str:
    """The one-line description of a configuration."""
    templates = ", ".join(f"{t.name} → {t.destination}" for t in config.templates)
    mode = "once" if config.once else "daemon"
    if config.dry:
        mode += ", dry run"
    return (
        f"catalog {describe_catalog(config.catalog)}; proxy {config.proxy}; "
        f"wait {describe_wait(config.wait)}; {mode}; "
        f"{len(config.templates)} template(s): {templates}"
    )


def announce(config: Config, *, reload: bool = False) -> None:
    """Log the start (or reload) line and one warning per ignored consul-template key."""
    if reload:
        log.info("reloaded configuration: %s", summary(config))
    else:
        log.info("ctmpl %s starting: %s", __version__, summary(config))
    for line in config.ignored_keys:
        log.warning("%s", line)
