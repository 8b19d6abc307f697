"""Large buffers freed by the daemon go back to the system (``ctmpl.memory``)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from ctmpl import memory

# Allocates and frees 7 MB buffers among small objects, as renders and answers do, and
# prints how much RSS grew (KiB) once they are all freed.
_CHURN = """
import sys
from ctmpl import memory
if sys.argv[1] == "fixed":
    assert memory.large_blocks_to_system()
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4
base = rss()
keep = []
for n in range(30):
    block = bytes(7 << 20)
    keep.append(str(n) * 100)  # a small object allocated after the block
    del block
print(rss() - base)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_freed_large_blocks_leave_the_process() -> None:
    def grown(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", _CHURN, mode], capture_output=True,
                              text=True, check=True)
        return int(done.stdout)

    assert memory.large_blocks_to_system()
    assert grown("fixed") < 2048
    assert grown("default") > 6144  # what it fixes: glibc keeps the freed block


# Allocates, writes and frees a 1.6 MB buffer (an answer at 1,000 services) again and again,
# and prints the page faults that cost after the first time.
_REUSE = """
import resource, sys
from ctmpl import memory
assert memory.large_blocks_to_system()
block = bytes(1_600_000)
del block
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for n in range(20):
    block = bytes(1_600_000)
    del block
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_medium_blocks_are_reused_without_faulting_in_again() -> None:
    done = subprocess.run([sys.executable, "-c", _REUSE], capture_output=True, text=True,
                          check=True)
    # Mapped afresh each time it would be 20 × 391 faults (one per 4 KiB page).
    assert int(done.stdout) < 1000
    assert memory.MMAP_THRESHOLD > 1_600_000
