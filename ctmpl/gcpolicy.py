"""How the daemon uses Python's cyclic garbage collector with thousands of services.

A catalog-wide Consul answer at 1,000 services is hundreds of thousands of objects (ten
times that at 10,000), decoded, compared and freed for every change. Left alone, the
collector scans them several times per answer, and its full passes also scan everything the
daemon holds for good (modules, compiled templates, the catalog): profiled at 1,000
services, that cost more than the decoding itself. Three rules:

- ``pause_for_start()`` when the daemon starts: its imports, compiled templates and first
  catalog answer are objects kept for good (or freed by reference counting), and the few
  hundred collections they would set off until the first complete render find nothing to
  free (measured at 1,000 Consul services: about a tenth of the start's CPU). Collections
  resume at ``settle()``, or at ``resume()`` when the first render takes longer than
  ``START_LIMIT`` seconds (a catalog that does not answer yet);
- ``paused()`` around work that allocates a large transient structure without cycles and
  frees it before the end (decoding and diffing one answer): the objects are freed by
  reference counting, as they would be anyway, and never scanned;
- ``settle()`` once the daemon has rendered everything (and again after a reload): one
  collection, then everything alive is frozen out of later full passes, which then scan
  only what changes brought.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

START_LIMIT = 10.0  # seconds: collections resume then if the first render has not come


def pause_for_start() -> None:
    """No automatic collection until ``settle()`` or ``resume()``."""
    gc.disable()


def resume() -> None:
    """Automatic collections again (after ``pause_for_start()``)."""
    gc.enable()


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No collection inside (which must not await)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def settle() -> None:
    """Collect once, then keep everything alive now out of later collections (which resume
    if the start paused them)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.enable()
