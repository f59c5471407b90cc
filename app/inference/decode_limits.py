"""Bounds on what one decode may cost: JPEG scans, CPU time and memory.

A few kilobytes can declare an image that costs minutes of CPU (a progressive
JPEG of thousands of empty scans) or gigabytes of memory (a 40 MP palette
PNG). The scans are counted before decoding, the CPU is checked while Pillow
reads, and the memory is reserved, per process, before any pixel is loaded.
Figures: docs/reliability.md, "Decode bounds".
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

from .errors import DecodeBusy
from .errors import ImageTooComplex
from .errors import ImageTooLarge

# Defaults of the decode bounds (settings MAX_JPEG_SCANS, DECODE_CPU_BUDGET_S;
# docs/reliability.md has the figures). Every scan of a progressive JPEG walks
# every block of the image, even an empty scan: libjpeg's progressive script
# has 10 scans (6 in greyscale), mozjpeg's optimised ones a few more.
MAX_JPEG_SCANS = 100
DECODE_CPU_BUDGET_S = 3.0
# Marker segments walked while counting scans: real files have tens; a file of
# a million empty comments would make the walk itself the expensive part.
MAX_JPEG_SEGMENTS = 4096
# How long a decode waits for its share of the memory budget before a 503.
DECODE_MEMORY_WAIT_S = 10.0
# Pixels converted at once when an image is reduced band by band (to_rgb).
BAND_PIXELS = 1 << 20
# Pillow stores these modes in 1 or 2 bytes a pixel, every other one in 4.
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}
# A marker: 0xFF then anything but a stuffed zero or a fill byte; inside a
# scan's entropy-coded data, restart markers (RST0-7) belong to the scan.
_MARKER = re.compile(rb"\xff[^\x00\xff]")
_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


class MemoryBudget:
    """Bytes that the decodes of one process may hold at once.

    A decode reserves its estimate (:func:`decode_memory_estimate`) before it
    loads any pixel and gives it back when done; one that does not fit waits
    up to ``wait_s``, then :class:`DecodeBusy`. An estimate over the whole
    budget can never fit: :class:`ImageTooLarge` at once.
    """

    def __init__(self, limit_bytes: int, wait_s: float = DECODE_MEMORY_WAIT_S):
        self.limit_bytes = limit_bytes
        self.wait_s = wait_s
        self.in_use = 0
        self._changed = threading.Condition()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        if nbytes > self.limit_bytes:
            raise ImageTooLarge(
                f"The image would need about {nbytes / 2**20:.0f} MB to decode; at "
                f"most {self.limit_bytes / 2**20:.0f} MB are allowed."
            )
        with self._changed:
            if not self._changed.wait_for(
                lambda: self.in_use + nbytes <= self.limit_bytes, self.wait_s
            ):
                raise DecodeBusy(
                    "The server is decoding too many large images. Try again shortly."
                )
            self.in_use += nbytes
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= nbytes
                self._changed.notify_all()


class TimedBytes(io.BytesIO):
    """The upload's bytes. Pillow reads them chunk by chunk while it decodes;
    once the thread's CPU time passes ``deadline``, the next read raises."""

    deadline: float | None = None
    budget_s: float = 0.0

    def read(self, size: int | None = -1) -> bytes:
        if self.deadline is not None and time.thread_time() > self.deadline:
            raise ImageTooComplex(
                "The image takes too long to decode (more than "
                f"{self.budget_s:g} s of CPU)."
            )
        return super().read(size)


def count_jpeg_scans(data: bytes, stop_after: int) -> int:
    """The scans (SOS segments) libjpeg would decode, counting stops past
    ``stop_after``.

    Marker segments are walked by their lengths and each scan's entropy-coded
    data is skipped to the next marker, as libjpeg does, so an SOS inside an
    APPn segment (an EXIF thumbnail) does not count. The count of every
    ``FF DA`` in the file is an upper bound, found in C: the walk only runs
    when that bound is over ``stop_after``.

    :raises ImageTooComplex: more than ``MAX_JPEG_SEGMENTS`` segments.
    """
    if data.count(b"\xff\xda") <= stop_after:
        return data.count(b"\xff\xda")
    scans = segments = 0
    pos, end = 2, len(data)
    while pos + 1 < end and scans <= stop_after:
        if data[pos] != 0xFF or data[pos + 1] in (0x00, 0xFF):
            found = _MARKER.search(data, pos)  # fill bytes or garbage
            if found is None:
                break
            pos = found.start()
        marker = data[pos + 1]
        if marker == 0xD9:  # EOI: libjpeg reads no further
            break
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise ImageTooComplex(
                f"The JPEG has more than {MAX_JPEG_SEGMENTS} marker segments."
            )
        if 0xD0 <= marker <= 0xD8 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        if pos + 4 > end:
            break
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 2:  # libjpeg stops there
            break
        pos += 2 + length
        if marker == 0xDA:
            scans += 1
            found = _MARKER_AFTER_SCAN.search(data, pos)
            if found is None:
                break
            pos = found.start()
    return scans


def decode_memory_estimate(
    image: Image.Image, full_size: tuple[int, int], scans: int = 1
) -> int:
    """Bytes a decode of ``image`` (opened, drafted, not loaded) holds at its
    peak: the loaded pixels, a multi-scan JPEG's coefficients (2 bytes a
    sample at full size), a WebP's decoder buffers, and the bands of
    :func:`to_rgb` with their result."""
    width, height = image.size
    pixels = width * height
    total = pixels * _BYTES_PER_PIXEL.get(image.mode, 4)
    if image.format == "JPEG" and scans > 1:
        # libjpeg keeps every coefficient, in blocks padded to whole MCUs.
        padded = (full_size[0] + 16) * (full_size[1] + 16)
        total += padded * max(1, image.layers) * 2 + 4 * 2**20
    if image.format == "WEBP":
        # Pillow's WebP decoder: two libwebp canvases and the bytes handed over.
        total += pixels * 4 * 3
    if image.mode not in ("RGB", "L"):
        total += BAND_PIXELS * 4 * 3  # a band, in RGBA and in RGBa
    # The reduced image (under 2 x REDUCING_GAP x 256 a side), in RGB and
    # resized: under 1536 x 1536 x 4 bytes, a few times.
    return total + min(pixels, 1536 * 1536) * 4 * 3
