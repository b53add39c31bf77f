"""core/memory.py: glibc's mmap threshold held fixed, so that a long embedding pass does not fragment the heap."""

from __future__ import annotations

import subprocess
import sys

import pytest

# In a fresh process: free one large mmapped block (glibc then raises its dynamic threshold past it, as happens after
# an embedding pass's first batches), then allocate a 4 MiB buffer and say whether it came from the heap ("arena")
# or from mmap ("hblkhd"): mallinfo2's fields (glibc >= 2.33).
CHILD = """
import ctypes, ctypes.util
from jigsaw_kit.core.memory import hold_mmap_threshold
if HOLD:
    assert hold_mmap_threshold()
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = Info
libc.free(libc.malloc(24 << 20))
before = libc.mallinfo2()
buf = libc.malloc(4 << 20)
after = libc.mallinfo2()
print("mmap" if after.hblkhd - before.hblkhd >= 4 << 20 else "heap")
"""


def _served_by(hold: bool) -> str:
    run = subprocess.run([sys.executable, "-c", f"HOLD = {hold}\n" + CHILD], capture_output=True, text=True, check=True)
    return run.stdout.split()[-1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and mallinfo2")
def test_a_large_buffer_is_mmapped_once_the_threshold_is_held():
    assert _served_by(False) == "heap"  # glibc's default: the threshold rose past 4 MiB, the buffer fragments the heap
    assert _served_by(True) == "mmap"  # held at 1 MiB: returned to the system when freed


def test_it_is_done_once_and_says_whether_it_took():
    from jigsaw_kit.core import memory

    first = memory.hold_mmap_threshold()
    assert memory.hold_mmap_threshold() == first


def test_release_freed_heap_runs_and_says_whether_it_could():
    from jigsaw_kit.core import memory

    assert memory.release_freed_heap() is sys.platform.startswith("linux")
