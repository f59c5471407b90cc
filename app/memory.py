"""Keep a worker's memory from creeping up under concurrent uploads.

glibc serves large allocations (a 1 MB upload, a decoded image) with mmap and
returns them to the OS on free, but after the first such free it raises its
mmap threshold to that size, so later uploads come from the heap and the
per-thread arenas, which fragment and are not given back: measured on a worker
with 16 threads, RSS grew from 372 MB to 405-424 MB after 80 concurrent
uploads. A fixed threshold kept it at 382-387 MB, for one mmap per upload.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's default, kept fixed


def limit_heap_retention() -> bool:
    """Fix glibc's mmap threshold; False where the C library has no mallopt."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    if not ok:
        log.warning("mallopt(M_MMAP_THRESHOLD) failed; worker memory may creep up")
    return ok
