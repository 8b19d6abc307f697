"""When the daemon imports the heavy libraries its catalog needs: aiohttp for Consul.

aiohttp (the Consul client's HTTP library) is the largest import of a Consul daemon: about
0.1 s of CPU, a fifth of its start at 1,000 services. Python runs one thread at a time, so
importing it in a background thread during the start only moves that cost around. So:

- over plain http, the import is *put off* (``put_off``) until every template has rendered
  once (``after_first_render``, then in a background thread); meanwhile the Consul client
  sends its requests without it (``ctmpl.sources.consul_plain``);
- over https (TLS needs aiohttp's client), it starts in a background thread as soon as the
  configuration is known (``preload``), overlapping with the main thread's own imports and
  template compiling; the main thread's ``import aiohttp`` then finds the module loaded, or
  waits for the import in progress as for any other.

At import, aiohttp also builds two default TLS contexts, loading the system's whole CA
bundle into each: about half of its import time. The daemon never uses them: a Consul
address over https always gets ctmpl's own context, built from the ``ssl`` settings
(``ctmpl.sources.consul_http.ssl_context``), and plain http needs none. So while the
background thread imports, a context it creates does not load the system's CA certificates:
aiohttp's defaults then trust no certificate at all (a request that used one would fail its
verification, never pass it). Other threads are not affected.
"""

from __future__ import annotations

import contextlib
import importlib
import ssl
import sys
import threading
from collections.abc import Iterator

from ctmpl.config.model import CatalogConfig

MODULES: dict[str, tuple[str, ...]] = {"consul": ("aiohttp",)}
_put_off: dict[str, threading.Event] = {}  # module name -> set once imported
_started: set[str] = set()  # put off, and its import started


def preload(catalog: CatalogConfig) -> threading.Thread | None:
    """Start importing what ``catalog``'s backend needs, or put it off (plain http); the
    import thread, None when nothing started."""
    names = MODULES.get(catalog.kind, ())
    if not names:
        return None
    consul = catalog.consul
    if not consul.ssl.enabled and not consul.address.strip().lower().startswith("https://"):
        for name in names:
            if name not in sys.modules:  # something imported it already: nothing to save
                _put_off.setdefault(name, threading.Event())
        return None
    return _import_in_background(names)


def put_off(name: str) -> bool:
    """True while the import of ``name`` waits for the first complete render: use what
    needs no ``name`` meanwhile."""
    done = _put_off.get(name)
    return done is not None and not done.is_set()


def after_first_render() -> threading.Thread | None:
    """Every template rendered once (or the start takes long): import what was put off, in
    the background; None when nothing is left to import."""
    names = tuple(name for name in _put_off if name not in _started)
    _started.update(names)
    return _import_in_background(names) if names else None


def _import_in_background(names: tuple[str, ...]) -> threading.Thread:
    def load() -> None:
        with without_default_certificates():
            for name in names:
                # A failure here is the main thread's own import's to report.
                with contextlib.suppress(Exception):
                    importlib.import_module(name)
                if name in _put_off:
                    _put_off[name].set()

    thread = threading.Thread(target=load, name="ctmpl-preload", daemon=True)
    thread.start()
    return thread


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
