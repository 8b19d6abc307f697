"""Catalog backends, one module each, all behind ``ctmpl.sources.base.Catalog``."""

from __future__ import annotations

from ctmpl.config.model import CatalogConfig
from ctmpl.sources.base import Catalog


def open_catalog(config: CatalogConfig) -> Catalog:
    """The backend named by ``config.kind`` (imported only when used)."""
    if config.kind == "file":
        from ctmpl.sources.file import FileCatalog

        return FileCatalog(config)
    if config.kind == "etcd":
        from ctmpl.sources.etcd import EtcdCatalog

        return EtcdCatalog(config)
    if config.kind == "zk":
        from ctmpl.sources.zk import ZkCatalog

        return ZkCatalog(config)
    if config.kind == "dns":
        from ctmpl.sources.dns import DnsCatalog

        return DnsCatalog(config)
    from ctmpl.sources.consul import ConsulCatalog

    return ConsulCatalog(config)
