"""How the daemon uses Python's cyclic garbage collector with thousands of services.

A catalog-wide Consul answer at 1,000 services is hundreds of thousands of objects (ten
times that at 10,000), decoded, compared and freed for every change. Left alone, the
collector scans them several times per answer, and its full passes also scan everything the
daemon holds for good (modules, compiled templates, the catalog): profiled at 1,000
services, that cost more than the decoding itself. Two rules:

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
    """Collect once, then keep everything alive now out of later collections."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
