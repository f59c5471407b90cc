"""Give back the pages of a memory-mapped file that a process no longer reads.

OpenVINO maps the model's ``.bin`` (weights) file and reads all of it while it
compiles and on the first inference, when the CPU plugin packs the weights
into the layout (and precision) its kernels use; after that it never reads
the file again, but the mapping stays and its pages count in the worker's
resident set: ~100 MB for ResNet50's f32 weights.

``madvise(MADV_DONTNEED)`` on a file mapping only drops this process's page
table entries: the pages stay in the page cache (shared with the other
workers, reclaimable by the kernel), and a later read faults them back in
from the file, unchanged. OpenVINO maps the file read-only, so nothing is
lost.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

MADV_DONTNEED = getattr(mmap, "MADV_DONTNEED", 4)  # 4 on x86 and ARM Linux
# Two releases in one process (two runtimes in the tests) take turns.
_lock = threading.Lock()


def _mappings(path: Path, maps: Path = Path("/proc/self/maps")):
    """The ``/proc/self/maps`` lines of ``path``, split; none off Linux."""
    target = os.path.realpath(path)
    try:
        lines = maps.read_text().splitlines()
    except OSError:
        return []
    # The path is the sixth field and may contain spaces: split five times.
    found = (line.split(maxsplit=5) for line in lines)
    return [fields for fields in found if len(fields) == 6 and fields[5] == target]


def mapped_ranges(path: Path) -> list[tuple[int, int]]:
    """(start, end) of this process's mappings of ``path``."""
    return [
        tuple(int(value, 16) for value in fields[0].split("-"))
        for fields in _mappings(path)
    ]


def resident_bytes(path: Path, smaps: Path = Path("/proc/self/smaps")) -> int:
    """This process's resident bytes of its mappings of ``path`` (0 off Linux)."""
    target = os.path.realpath(path)
    try:
        lines = smaps.read_text().splitlines()
    except OSError:
        return 0
    total, inside = 0, False
    for line in lines:
        fields = line.split(maxsplit=5)
        if fields and "-" in fields[0] and len(fields) >= 5:  # a mapping's header
            inside = len(fields) == 6 and fields[5] == target
        elif inside and fields[0] == "Rss:":
            total += int(fields[1]) * 1024
    return total


def release_mapped_file(path: Path) -> int:
    """Drop this process's resident pages of every mapping of ``path``.

    Call it while nothing else in the process can unmap that file (a worker's
    runtime holds it from load to exit): an address unmapped and reused
    between reading the map and the madvise would lose its contents. Returns
    the bytes of address space advised (0 where the file is not mapped, or off
    Linux). Never raises: memory is an optimisation here.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    released = 0
    with _lock:
        for start, end in mapped_ranges(path):
            if madvise(start, end - start, MADV_DONTNEED) == 0:
                released += end - start
            else:
                error = os.strerror(ctypes.get_errno())
                log.warning("madvise on %s failed: %s", path, error)
    return released
