"""Large buffers go back to the system when freed; medium ones are reused (glibc's malloc only).

A catalog-wide Consul answer at 10,000 services is a 17 MB buffer, and the rendered file is
7 MB; each answer and render allocates and frees a few such buffers. glibc serves a large
block with its own ``mmap`` and unmaps it when freed, but after the first such free it
raises that threshold (up to 32 MB) and serves the next ones from its heap, where freed
blocks stay part of the process: measured at 10,000 services, RSS then grows by about
50 MiB over the first few dozen changes and stays there. ``large_blocks_to_system()`` fixes
the threshold at 4 MiB, which also stops the adjustment: blocks above it are mapped and
unmapped each time, as before.

Blocks below it — at 1,000 services the 1.6 MB answer, the 0.7–1.3 MB rendered file, and at
any size the socket's 256 KiB reads and the HTTP parser's pieces of the body — come from the
heap and are reused from one answer to the next. A block mapped afresh costs a page fault
and a zeroed page per 4 KiB when first written: with glibc's default threshold of 128 KiB,
reading one 1.6 MB answer cost about 3.5 ms of CPU instead of 1.3 ms. The heap keeps up to
8 MiB free at its top (``M_TRIM_THRESHOLD``) so that such a block, freed and asked for again,
is not given back and faulted in again in between. On other C libraries (musl) it does
nothing.
"""

from __future__ import annotations

import ctypes

_M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 << 20  # blocks above it are mapped when allocated, unmapped when freed
_TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # free bytes the heap keeps at its top


def large_blocks_to_system() -> bool:
    """Fix glibc's mmap and trim thresholds; False when the C library has no ``mallopt``."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
