"""Small files that are expensive to decode (issue 23), made byte by byte.

``progressive_jpeg_bomb`` is a greyscale progressive JPEG whose scans carry no
entropy-coded data: each scan still walks every block of the image, so the
decode time grows with the number of scans while the file stays ~10 bytes a
scan. ``palette_png`` is a palette PNG with transparency: a few KB on disk,
4 bytes a pixel once converted to RGBA.

``python -m devtools.decode_bombs`` times and sizes their decode in this
process (the figures in docs/reliability.md).
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time

from PIL import Image

from app.inference.images import decode_image


def jpeg_segment(marker: int, body: bytes) -> bytes:
    """``FF marker``, a 16-bit length that counts itself, then ``body``."""
    return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body


def progressive_jpeg_bomb(
    side: int = 6000, scans: int = 1000, components: int = 1
) -> bytes:
    """A ``side`` x ``side`` progressive JPEG (greyscale, or 3 components at
    full resolution) of ``scans`` empty DC scans, each over every component:
    SOI, DQT, SOF2, DHT, ``scans`` x SOS, EOI."""
    dqt = jpeg_segment(0xDB, b"\x00" + b"\x01" * 64)
    frame = b"".join(bytes([i, 0x11, 0]) for i in range(1, components + 1))
    sof2 = jpeg_segment(0xC2, struct.pack(">BHHB", 8, side, side, components) + frame)
    # DC table 0: one code of one bit, category 0 (difference 0).
    dht = jpeg_segment(0xC4, b"\x00" + b"\x01" + b"\x00" * 15 + b"\x00")
    # Every component with DC table 0; spectral selection 0..0, Ah = Al = 0.
    selectors = b"".join(bytes([i, 0x00]) for i in range(1, components + 1))
    sos = jpeg_segment(0xDA, bytes([components]) + selectors + b"\x00\x00\x00")
    return b"\xff\xd8" + dqt + sof2 + dht + sos * scans + b"\xff\xd9"


def palette_png(side: int = 6000, transparent: bool = True) -> bytes:
    """A ``side`` x ``side`` palette PNG in four colours, a quarter of it
    transparent (index 0), a few KB on disk."""
    image = Image.new("P", (side, side), 1)
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    image.paste(0, (0, 0, side // 2, side // 2))
    image.paste(2, (side // 2, side // 2, side, side))
    buffer = io.BytesIO()
    options = {"transparency": 0} if transparent else {}
    image.save(buffer, "PNG", optimize=False, compress_level=9, **options)
    return buffer.getvalue()


def rgba_png(side: int = 6324) -> bytes:
    """A ``side`` x ``side`` RGBA PNG, half transparent, ~170 KB."""
    image = Image.new("RGBA", (side, side), (200, 30, 30, 255))
    image.paste((0, 0, 0, 0), (0, 0, side, side // 2))
    return encode(image, "PNG")


def grey16_png(side: int = 6324) -> bytes:
    """A ``side`` x ``side`` 16-bit greyscale PNG (mode I;16), ~90 KB."""
    return encode(Image.new("I;16", (side, side), 40000), "PNG")


def lossless_webp(side: int = 6324) -> bytes:
    """A ``side`` x ``side`` lossless RGBA WebP of one colour, ~2 KB."""
    image = Image.new("RGBA", (side, side), (10, 200, 10, 128))
    return encode(image, "WEBP", lossless=True)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


CASES = {
    "palette PNG 6324x6324, transparency": lambda: palette_png(6324),
    "RGBA PNG 6324x6324": rgba_png,
    "16-bit PNG 6324x6324": grey16_png,
    "lossless WebP 6324x6324": lossless_webp,
    "progressive JPEG 6000x6000, 100 empty scans": lambda: progressive_jpeg_bomb(
        6000, 100
    ),
    "progressive JPEG 6000x6000, 1000 empty scans": lambda: progressive_jpeg_bomb(
        6000, 1000
    ),
    "progressive JPEG 6324x6324 colour 4:4:4, 100 empty scans": lambda: (
        progressive_jpeg_bomb(6324, 100, components=3)
    ),
}


def measure(name: str) -> dict:
    """Decode one case in this process: peak RSS growth (VmHWM, reset first),
    the decode's own estimate, CPU seconds and the outcome."""
    from app.inference.decode_limits import count_jpeg_scans
    from app.inference.decode_limits import decode_memory_estimate
    from app.inference.images import open_image
    from devtools.server import proc_status
    from devtools.server import reset_peak_rss

    data = CASES[name]()
    image = open_image(data, 40_000_000)
    full_size = image.size
    scans = count_jpeg_scans(data, 10**6) if image.format == "JPEG" else 1
    if image.format == "JPEG":
        image.draft("RGB", (256, 256))
    estimate = decode_memory_estimate(image, full_size, scans)
    pid = os.getpid()
    before = proc_status(pid)["VmRSS"]
    reset_peak_rss(pid)
    started = time.thread_time()
    try:
        decode_image(data, max_pixels=40_000_000)
        outcome = "decoded"
    except Exception as exc:
        outcome = getattr(exc, "code", type(exc).__name__)
    return {
        "bytes": len(data),
        "outcome": outcome,
        "cpu_s": time.thread_time() - started,
        "growth_mib": (proc_status(pid)["VmHWM"] - before) / 1024,
        "estimate_mib": estimate / 2**20,
    }


def main() -> None:
    """Each case in a fresh interpreter, so that no freed heap hides a peak."""
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(measure(sys.argv[2])))
        return
    print("| file | bytes | outcome | CPU s | peak RSS growth MiB | estimate MiB |")
    print("|---|---|---|---|---|---|")
    for name in CASES:
        result = subprocess.run(
            [sys.executable, "-m", "devtools.decode_bombs", "--one", name],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(result.stdout)
        print(
            f"| {name} | {row['bytes']} | {row['outcome']} | {row['cpu_s']:.2f} | "
            f"{row['growth_mib']:.0f} | {row['estimate_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
