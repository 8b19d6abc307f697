"""Importing, in the background, the heavy libraries the configured catalog will need.

aiohttp (the Consul client's HTTP library) takes about a fifth of a second to import, half
of it loading the system's CA certificates into two default TLS contexts, which aiohttp
does at import time without holding Python's interpreter lock. Started in a thread as soon
as the configuration is known, that import overlaps with the main thread's own imports and
template compiling; the main thread's ``import aiohttp`` then finds the module loaded, or
waits for the import in progress as for any other.
"""

from __future__ import annotations

import contextlib
import importlib
import threading

from ctmpl.config.model import CatalogConfig

MODULES: dict[str, tuple[str, ...]] = {"consul": ("aiohttp",)}


def preload(catalog: CatalogConfig) -> threading.Thread | None:
    """Start importing what ``catalog``'s backend needs; the thread, None when nothing."""
    names = MODULES.get(catalog.kind, ())
    if not names:
        return None

    def load() -> None:
        for name in names:
            # A failure here is the main thread's own import's to report.
            with contextlib.suppress(Exception):
                importlib.import_module(name)

    thread = threading.Thread(target=load, name="ctmpl-preload", daemon=True)
    thread.start()
    return thread
