"""Importing, in the background, the heavy libraries the configured catalog will need.

aiohttp (the Consul client's HTTP library) is the largest import of a Consul daemon. Started
in a thread as soon as the configuration is known, its import overlaps with the main
thread's own imports and template compiling; the main thread's ``import aiohttp`` then
finds the module loaded, or waits for the import in progress as for any other.

At import, aiohttp also builds two default TLS contexts, loading the system's whole CA
bundle into each: about half of its import time. The daemon never uses them: a Consul
address over https always gets ctmpl's own context, built from the ``ssl`` settings
(``ctmpl.sources.consul_http.ssl_context``), and plain http needs none. So while this thread
imports, a context it creates does not load the system's CA certificates: aiohttp's
defaults then trust no certificate at all (a request that used one would fail its
verification, never pass it). Other threads are not affected.
"""

from __future__ import annotations

import contextlib
import importlib
import ssl
import threading
from collections.abc import Iterator

from ctmpl.config.model import CatalogConfig

MODULES: dict[str, tuple[str, ...]] = {"consul": ("aiohttp",)}
_put_off: dict[str, threading.Event] = {}  # module name -> set once imported


def preload(catalog: CatalogConfig) -> threading.Thread | None:
    """Start importing what ``catalog``'s backend needs; the thread, None when nothing."""
    names = MODULES.get(catalog.kind, ())
    if not names:
        return None

    def load() -> None:
        with without_default_certificates():
            for name in names:
                # A failure here is the main thread's own import's to report.
                with contextlib.suppress(Exception):
                    importlib.import_module(name)

    thread = threading.Thread(target=load, name="ctmpl-preload", daemon=True)
    thread.start()
    return thread


def put_off(name: str) -> bool:
    """True while the import of ``name`` waits for the first complete render: use what
    needs no ``name`` meanwhile."""
    done = _put_off.get(name)
    return done is not None and not done.is_set()


@contextlib.contextmanager
def without_default_certificates() -> Iterator[None]:
    """Inside, a TLS context this thread asks for the system's default CA certificates
    (``ssl.create_default_context()``, ``set_default_verify_paths()``) gets none."""
    me = threading.get_ident()
    own = vars(ssl.SSLContext).get("set_default_verify_paths")  # None: inherited from C
    system = ssl.SSLContext.set_default_verify_paths

    def set_default_verify_paths(self: ssl.SSLContext) -> None:
        if threading.get_ident() != me:
            system(self)

    ssl.SSLContext.set_default_verify_paths = set_default_verify_paths  # type: ignore[method-assign]
    try:
        yield
    finally:
        if own is None:
            del ssl.SSLContext.set_default_verify_paths
        else:
            ssl.SSLContext.set_default_verify_paths = own  # type: ignore[method-assign]
