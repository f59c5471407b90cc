"""Give back the pages of a memory-mapped file that a process no longer reads.

OpenVINO maps the model's ``.bin`` (weights) file and reads all of it while it
compiles; the compiled model keeps its own copy of the weights in the layout
(and precision) its kernels use, and never reads the file again, but the
mapping stays and its pages count in the worker's resident set: ~100 MB for
ResNet50's f32 weights, a quarter of a worker's RSS.

``madvise(MADV_DONTNEED)`` on a file mapping only drops this process's page
table entries: the pages stay in the page cache (shared with the other
workers, reclaimable by the kernel), and a later read would fault them back in
from the file, unchanged. So it is safe even if a reader does come back.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

MADV_DONTNEED = 4  # from <sys/mman.h>, the same on every Linux architecture


def mapped_ranges(path: Path, maps: Path = Path("/proc/self/maps")):
    """(start, end) of this process's mappings of ``path``; none off Linux."""
    target = os.path.realpath(path)
    try:
        lines = maps.read_text().splitlines()
    except OSError:
        return []
    ranges = []
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == target:
            start, end = (int(value, 16) for value in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


def release_mapped_file(path: Path) -> int:
    """Drop this process's resident pages of every mapping of ``path``.

    Returns the bytes of address space advised (0 where the file is not
    mapped, or off Linux). Never raises: memory is an optimisation here.
    """
    ranges = mapped_ranges(path)
    if not ranges:
        return 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    except (OSError, AttributeError):
        return 0
    released = 0
    for start, end in ranges:
        if madvise(start, end - start, MADV_DONTNEED) == 0:
            released += end - start
        else:
            log.warning(
                "madvise on %s failed: %s", path, os.strerror(ctypes.get_errno())
            )
    return released
