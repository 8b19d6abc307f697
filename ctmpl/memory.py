"""Large buffers go back to the system when freed (glibc's malloc only).

A catalog-wide Consul answer at 10,000 services is a 17 MB buffer, and the rendered file is
7 MB; each answer and render allocates and frees a few such buffers. glibc serves a large
block with its own ``mmap`` and unmaps it when freed, but after the first such free it
raises that threshold (up to 32 MB) and serves the next ones from its heap, where freed
blocks stay part of the process: measured at 10,000 services, RSS then grows by about
50 MiB over the first few dozen changes and stays there. ``large_blocks_to_system()`` fixes
the threshold at glibc's default (128 KiB), which also stops the adjustment. On other C
libraries (musl) it does nothing.
"""

from __future__ import annotations

import ctypes

_M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
_THRESHOLD = 128 * 1024


def large_blocks_to_system() -> bool:
    """Fix glibc's mmap threshold; False when the C library has no ``mallopt``."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD))
