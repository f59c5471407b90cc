"""How a worker's C heap treats upload-sized buffers: reused, and bounded.

Every request allocates a few buffers of about the upload's size (the body,
the parsed file, socket reads, Pillow's decoded image). glibc's defaults fit
this badly both ways: buffers over 128 KB are mmapped, page-faulted in and
unmapped again on every request; after the first such free it raises that
threshold, and buffers then come from one arena per thread, which fragment
and are not given back.

Fixed settings give reuse with a bound: buffers under 2 MiB come from at most
two arenas and are reused without faults; larger ones (big uploads) are still
mmapped and returned on free; free memory over 4 MiB at the top of a heap is
trimmed. The measurements: docs/performance.md, "glibc heap settings".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

HEAP_SETTINGS = {
    M_MMAP_THRESHOLD: 2 * 1024 * 1024,
    M_TRIM_THRESHOLD: 4 * 1024 * 1024,
    M_ARENA_MAX: 2,
}


def limit_heap_retention() -> bool:
    """Apply ``HEAP_SETTINGS`` to glibc's malloc; False where there is no
    mallopt (another C library) or a setting is refused.

    Call it before the process starts threads: arenas made earlier stay.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = all(mallopt(param, value) == 1 for param, value in HEAP_SETTINGS.items())
    if not ok:
        log.warning("mallopt refused a heap setting; worker memory may creep up")
    return ok
