"""Decode bounds (issue 23): JPEG scans, CPU time and memory of one decode.

Every file is made here (``devtools.decode_bombs``); the memory figures are
peak RSS growth of a fresh interpreter, since Pillow's and libjpeg's buffers
are invisible to tracemalloc.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image
from PIL import ImageOps

from app import create_app
from app.config import TestingConfig
from app.inference import DecodeBusy
from app.inference import ImageTooComplex
from app.inference import ImageTooLarge
from app.inference.decode_limits import MAX_JPEG_SCANS
from app.inference.decode_limits import MemoryBudget
from app.inference.decode_limits import count_jpeg_scans
from app.inference.images import decode_image
from app.inference.images import exif_orientation
from app.model_service import EXTENSION_KEY
from devtools import decode_bombs
from devtools.decode_bombs import jpeg_segment
from devtools.decode_bombs import palette_png
from devtools.decode_bombs import progressive_jpeg_bomb
from devtools.photos import photo_jpeg

MAX_PIXELS = 40_000_000


def decode(data: bytes, **bounds):
    return decode_image(data, max_pixels=MAX_PIXELS, **bounds)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def peak_of(case: str) -> dict:
    """Decode ``case`` of ``devtools.decode_bombs.CASES`` in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-m", "devtools.decode_bombs", "--one", case],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(result.stdout)


# --------------------------------------------------------------------------
# 1. Scans and CPU time


def test_jpeg_of_a_thousand_empty_scans_is_refused_before_decoding():
    bomb = progressive_jpeg_bomb(6000, 1000)  # 10 KB; 2.4 s of CPU to decode
    started = time.thread_time()
    with pytest.raises(ImageTooComplex, match="more than 100 scans"):
        decode(bomb)
    assert time.thread_time() - started < 0.2


def test_the_scan_bound_is_a_setting():
    bomb = progressive_jpeg_bomb(64, 30)
    assert decode(bomb, max_jpeg_scans=30).width == 64
    with pytest.raises(ImageTooComplex):
        decode(bomb, max_jpeg_scans=29)


@pytest.mark.parametrize(("mode", "scans"), [("RGB", 10), ("L", 6)])
def test_libjpeg_progressive_scripts_are_far_below_the_bound(mode, scans):
    photo = Image.open(io.BytesIO(photo_jpeg((640, 480)))).convert(mode)
    data = encode(photo, "JPEG", progressive=True)
    assert count_jpeg_scans(data, MAX_JPEG_SCANS) == scans  # the bound
    assert count_jpeg_scans(data, scans - 1) == scans  # the walk
    assert count_jpeg_scans(encode(photo, "JPEG"), MAX_JPEG_SCANS) == 1
    assert decode(data).format == "JPEG"


def test_scan_markers_inside_other_segments_do_not_count():
    """An APP1 full of ``FF DA`` bytes (as an EXIF thumbnail holds one) is
    skipped by its length; a naive byte count would refuse the photo."""
    data = photo_jpeg((320, 240))
    app1 = jpeg_segment(0xE1, b"Exif\x00\x00" + b"\xff\xda" * 500)
    data = data[:2] + app1 + data[2:]
    assert data.count(b"\xff\xda") > MAX_JPEG_SCANS
    assert count_jpeg_scans(data, MAX_JPEG_SCANS) == 1
    assert decode(data).width == 320


def test_the_walk_skips_fill_bytes_stuffed_zeros_and_restart_markers():
    bomb = progressive_jpeg_bomb(64, 3)
    head, *scans = bomb.split(b"\xff\xda")
    # Entropy-coded data with a stuffed zero and RST0 after the first scan's
    # header (8 bytes after FF DA), fill bytes before the second.
    first = scans[0][:8] + b"\x12\xff\x00\x34\xff\xd0\x56\xff\xff"
    data = b"\xff\xda".join([head, first, *scans[1:]])
    assert count_jpeg_scans(data, 2) == 3


def test_a_jpeg_of_endless_empty_segments_is_refused():
    comment = jpeg_segment(0xFE, b"")
    data = b"\xff\xd8" + comment * 5000 + b"\xff\xda" * 200 + b"\xff\xd9"
    with pytest.raises(ImageTooComplex):
        count_jpeg_scans(data, MAX_JPEG_SCANS)


def test_cpu_budget_stops_a_decode_that_passes_the_scan_check():
    """A 4000x3000 progressive JPEG has libjpeg's 10 scans, but its decode is
    data-heavy (~0.4 s): past the budget, the next chunk read refuses it."""
    photo = Image.open(io.BytesIO(photo_jpeg((4000, 3000), 95)))
    data = encode(photo, "JPEG", progressive=True, quality=95)
    assert count_jpeg_scans(data, MAX_JPEG_SCANS) == 10
    started = time.thread_time()
    with pytest.raises(ImageTooComplex, match="CPU"):
        decode(data, cpu_budget_s=0.02)
    assert time.thread_time() - started < 0.15
    assert decode(data).width == 4000  # the default budget lets it through


# --------------------------------------------------------------------------
# 2. Memory


def test_tiny_palette_png_with_transparency_decodes_in_little_memory():
    """A 17 KB 6324x6324 palette PNG took +723 MiB (P -> RGBA, a full-size
    white background, alpha_composite, RGB, all before the resize)."""
    peak = peak_of("palette PNG 6324x6324, transparency")
    assert peak["outcome"] == "decoded"
    assert peak["growth_mib"] < 100, peak


@pytest.mark.slow
@pytest.mark.parametrize("case", list(decode_bombs.CASES))
def test_memory_estimate_bounds_the_measured_peak(case):
    """The budget holds only if each decode's estimate is an upper bound."""
    peak = peak_of(case)
    assert peak["growth_mib"] <= peak["estimate_mib"], peak


def test_transparency_still_composites_onto_white_after_reducing():
    decoded = decode(palette_png(6000))
    assert decoded.pixels[10, 10].tolist() == [255, 255, 255]  # transparent
    assert decoded.pixels[10, 200].tolist() == [255, 0, 0]
    assert decoded.pixels[200, 200].tolist() == [0, 255, 0]
    thumb = Image.open(io.BytesIO(decoded.thumbnail)).convert("RGB")
    assert thumb.size == (256, 256)
    assert all(c > 245 for c in thumb.getpixel((20, 20)))


def old_pipeline(data: bytes) -> np.ndarray:
    """What decode_image did before issue 23: convert at full size, then resize."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    if image.mode == "I;16":
        array = np.asarray(image).astype(np.uint16) >> 8
        image = Image.fromarray(array.astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    image = image.convert("RGB")
    return np.asarray(image.resize((224, 224), Image.Resampling.BILINEAR, None, 3.0))


def soft_rgba(size=(3000, 2000)) -> Image.Image:
    """Colour and alpha that both vary, so reduce-then-composite shows."""
    red = Image.linear_gradient("L").resize(size)
    alpha = Image.radial_gradient("L").resize(size)
    return Image.merge(
        "RGBA", (red, alpha, red.transpose(Image.Transpose.ROTATE_180), alpha)
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: encode(soft_rgba(), "PNG"),
        lambda: encode(soft_rgba().convert("LA"), "PNG"),
        lambda: encode(soft_rgba().quantize(64), "PNG", transparency=0),
        lambda: encode(
            Image.fromarray(
                (np.arange(3000 * 2000, dtype=np.uint32) % 65536)
                .astype(np.uint16)
                .reshape(2000, 3000)
            ),
            "PNG",
        ),
        lambda: encode(soft_rgba(), "WEBP", lossless=True),
    ],
    ids=["RGBA", "LA", "P+transparency", "I;16", "WebP RGBA"],
)
def test_reducing_first_keeps_the_network_input(make):
    data = make()
    new = decode(data).pixels.astype(int)
    old = old_pipeline(data).astype(int)
    assert np.abs(new - old).mean() < 1.5
    assert np.percentile(np.abs(new - old), 99) <= 8


def test_sixteen_bit_grey_keeps_the_top_eight_bits_when_reduced():
    data = encode(Image.new("I;16", (3000, 3000), 40000), "PNG")
    assert decode(data).pixels[100, 100].tolist() == [40000 >> 8] * 3


def test_exif_orientation_survives_the_reduction():
    """Stored 3000x1500 with orientation 6 (rotate 90 clockwise to view):
    the stored top-left red corner shows at the top right."""
    image = Image.new("RGBA", (3000, 1500), (0, 0, 255, 255))
    image.paste((255, 0, 0, 255), (0, 0, 1000, 500))
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode(encode(image, "PNG", exif=exif))
    assert (decoded.width, decoded.height) == (1500, 3000)
    assert decoded.pixels[10, 214].tolist() == [255, 0, 0]
    assert decoded.pixels[10, 10].tolist() == [0, 0, 255]
    thumb = Image.open(io.BytesIO(decoded.thumbnail))
    assert thumb.size == (128, 256)


def test_a_long_thin_image_keeps_its_thumbnail_shape():
    image = Image.new("LA", (8000, 500), (90, 255))
    decoded = decode(encode(image, "PNG"))
    assert Image.open(io.BytesIO(decoded.thumbnail)).size == (256, 16)
    assert decoded.pixels[100, 100].tolist() == [90, 90, 90]


def test_a_decode_over_the_whole_memory_budget_is_refused_at_once():
    budget = MemoryBudget(64 * 2**20)
    with pytest.raises(ImageTooLarge, match="MB to decode"):
        decode(palette_png(6000), memory_budget=budget)
    assert budget.in_use == 0


def test_decodes_wait_for_the_memory_budget_then_get_a_503():
    budget = MemoryBudget(100, wait_s=0.2)
    held, release = threading.Event(), threading.Event()

    def hold():
        with budget.reserve(80):
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    started = time.monotonic()
    with pytest.raises(DecodeBusy):
        with budget.reserve(30):
            pass
    assert 0.15 < time.monotonic() - started < 2
    waiter_done = threading.Event()

    def wait_then_run():
        with budget.reserve(30):
            waiter_done.set()

    waiter = threading.Thread(target=wait_then_run)
    budget.wait_s = 5
    waiter.start()
    time.sleep(0.05)
    assert not waiter_done.is_set()
    release.set()
    assert waiter_done.wait(5)
    holder.join()
    waiter.join()
    assert budget.in_use == 0


def test_budget_settings_reach_the_classifier(monkeypatch):
    monkeypatch.setenv("MAX_JPEG_SCANS", "7")
    monkeypatch.setenv("DECODE_CPU_BUDGET_S", "0.5")
    monkeypatch.setenv("DECODE_MEMORY_BUDGET_MB", "64")
    app = create_app(TestingConfig)
    classifier = app.extensions[EXTENSION_KEY].classifier  # built, not loaded
    assert classifier.max_jpeg_scans == 7
    assert classifier.decode_cpu_budget_s == 0.5
    assert classifier.decode_memory.limit_bytes == 64 * 2**20
    with pytest.raises(ImageTooComplex):
        classifier.decode(progressive_jpeg_bomb(64, 8))


def png_with_orientation(orientation: int | None) -> Image.Image:
    """A PNG, with an eXIf chunk (before the image data) when ``orientation``."""
    buffer = io.BytesIO()
    options = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif
    Image.new("RGBA", (300, 200), (1, 2, 3, 4)).save(buffer, "PNG", **options)
    return Image.open(buffer)


@pytest.mark.parametrize(("orientation", "expected"), [(None, 1), (6, 6), (3, 3)])
def test_a_pngs_orientation_is_read_without_decoding_its_pixels(orientation, expected):
    """Pillow's PNG getexif() loads every pixel when the header has no eXIf:
    outside the memory budget, at full size (4 hostile PNGs took a worker past
    twice its budget)."""
    image = png_with_orientation(orientation)
    assert exif_orientation(image) == expected
    assert image.tile, "the pixels were decoded to read the orientation"


def test_a_png_rotated_by_its_exif_arrives_upright():
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (300, 200), (10, 200, 30)).save(buffer, "PNG", exif=exif)
    decoded = decode_image(buffer.getvalue(), max_pixels=40_000_000)
    assert (decoded.width, decoded.height) == (200, 300)
