"""Coverage-guided fuzzing of ``decode_image`` with atheris (libFuzzer).

The property: for any bytes, ``decode_image`` returns a valid ``DecodedImage``
(224x224x3 uint8 pixels, an accepted format, a sane size, a JPEG thumbnail) or
raises ``InvalidImage``, ``UnsupportedFormat`` or ``ImageTooLarge`` - nothing
else, no hang (over 10 s per input) and no runaway memory (over 2 GiB).

The pytest test runs this file as a fuzzer in a child process for
``FUZZ_SECONDS`` (default 30), seeded with small images of every accepted format
and mode. A failing input is saved under ``artifacts/fuzz/``; replay it with::

    .venv/bin/python -m tests.test_fuzz artifacts/fuzz/crash-<sha1>

or fuzz for longer by hand::

    .venv/bin/python -m tests.test_fuzz CORPUS_DIR -max_total_time=600
"""

from __future__ import annotations

import io
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
# Small, so that a mutated header cannot make one input slow; the property does
# not depend on the limit.
MAX_PIXELS = 2_000_000
FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "30"))
ARTIFACTS = ROOT / "artifacts" / "fuzz"


def _image(mode: str, size=(32, 24)) -> Image.Image:
    """A small image with structure in ``mode`` (so every decoder path has data)."""
    gradient = Image.linear_gradient("L").resize(size)
    rgb = Image.merge("RGB", (gradient, gradient.rotate(90), gradient.rotate(45)))
    if mode == "I;16":
        array = np.asarray(gradient, dtype=np.uint16) * 257
        return Image.fromarray(array)
    if mode == "P":
        return rgb.quantize(16)
    return rgb.convert(mode)


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def seeds() -> dict[str, bytes]:
    """Small valid images of every accepted format, in the modes people send."""
    exif = Image.Exif()
    exif[0x0112] = 6
    transparent_p = _image("P")
    transparent_p.info["transparency"] = 0
    frames = [_image("P"), _image("P").rotate(180)]
    return {
        "rgb.jpg": _save(_image("RGB"), "JPEG"),
        "grey.jpg": _save(_image("L"), "JPEG"),
        "cmyk.jpg": _save(_image("CMYK"), "JPEG"),
        "progressive.jpg": _save(_image("RGB"), "JPEG", progressive=True),
        "exif-rotated.jpg": _save(_image("RGB"), "JPEG", exif=exif),
        "rgb.png": _save(_image("RGB"), "PNG"),
        "rgba.png": _save(_image("RGBA"), "PNG"),
        "la.png": _save(_image("LA"), "PNG"),
        "palette-transparent.png": _save(transparent_p, "PNG"),
        "16bit.png": _save(_image("I;16"), "PNG"),
        "interlaced.png": _save(_image("RGB"), "PNG", interlace=1),
        "lossy.webp": _save(_image("RGB"), "WEBP", quality=50),
        "lossless-rgba.webp": _save(_image("RGBA"), "WEBP", lossless=True),
        "animated.webp": _save(frames[0].convert("RGB"), "WEBP", save_all=True,
                               append_images=[frames[1].convert("RGB")]),
        "palette.gif": _save(_image("P"), "GIF"),
        "animated.gif": _save(frames[0], "GIF", save_all=True,
                              append_images=frames[1:]),
        "rgb.bmp": _save(_image("RGB"), "BMP"),
        "palette.bmp": _save(_image("P"), "BMP"),
        "grey.bmp": _save(_image("L"), "BMP"),
    }  # fmt: skip


def check_one(data: bytes) -> None:
    """The property, for one input: a valid result or one of our three errors."""
    from app.inference import DecodedImage
    from app.inference import ImageTooLarge
    from app.inference import InvalidImage
    from app.inference import UnsupportedFormat
    from app.inference.images import ACCEPTED_FORMATS
    from app.inference.images import decode_image

    try:
        result = decode_image(data, max_pixels=MAX_PIXELS)
    except (InvalidImage, UnsupportedFormat, ImageTooLarge):
        return
    assert isinstance(result, DecodedImage)
    assert result.pixels.shape == (224, 224, 3) and result.pixels.dtype == np.uint8
    assert ACCEPTED_FORMATS.get(result.format) == result.mime_type
    assert 1 <= result.width and 1 <= result.height
    assert result.width * result.height <= MAX_PIXELS
    assert result.thumbnail.startswith(b"\xff\xd8")
    with Image.open(io.BytesIO(result.thumbnail)) as thumbnail:
        assert thumbnail.format == "JPEG" and max(thumbnail.size) <= 256


def fuzz(argv: list[str]) -> None:
    """Run libFuzzer on ``check_one`` with Pillow and our decoder instrumented."""
    import atheris

    with atheris.instrument_imports(include=["PIL", "app.inference"]):
        Image.init()  # import every format plugin inside the block
        from app.inference import images  # noqa: F401

    atheris.Setup(argv, check_one)
    atheris.Fuzz()


def test_seeds_cover_every_accepted_format_and_decode():
    from app.inference.images import ACCEPTED_FORMATS
    from app.inference.images import decode_image

    formats = set()
    for name, data in seeds().items():
        check_one(data)
        formats.add(decode_image(data, max_pixels=MAX_PIXELS).format)
        assert len(data) < 8192, name  # small seeds keep each run fast
    assert formats == set(ACCEPTED_FORMATS)


def rss_limit_mb(budget_mb: int) -> int:
    """libFuzzer's -rss_limit_mb for a child of this process.

    The limit is checked against the peak RSS (getrusage), and Linux carries
    the peak of the process that forks over into the child's exec: a pytest
    process that has reached 3 GB makes a fresh fuzzer report out-of-memory on
    its first input. The budget is counted from this process's peak.
    """
    own_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return own_peak_mb + budget_mb


@pytest.mark.slow
def test_decode_image_survives_fuzzing(tmp_path):
    """FUZZ_SECONDS of atheris: only valid results or our three errors."""
    pytest.importorskip("atheris", reason="atheris is pinned in requirements-dev")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, data in seeds().items():
        (corpus / name).write_bytes(data)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.test_fuzz",
            str(corpus),
            f"-max_total_time={FUZZ_SECONDS}",
            "-timeout=10",
            f"-rss_limit_mb={rss_limit_mb(3072)}",
            "-max_len=16384",
            f"-artifact_prefix={ARTIFACTS}/",
            "-print_final_stats=1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 120,
    )
    output = result.stdout + result.stderr
    crash = re.search(r"Test unit written to (\S+)", output)
    assert result.returncode == 0, (
        f"fuzzer failed (input: {crash.group(1) if crash else 'none'}):\n"
        + output[-4000:]
    )
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", output)
    assert runs and int(runs.group(1)) > 100, output[-2000:]
    seed = re.search(r"Seed: (\d+)", output)
    print(f"\nfuzzed decode_image: {runs.group(1)} inputs in {FUZZ_SECONDS} s, "
          f"seed {seed.group(1) if seed else '?'}")  # fmt: skip


if __name__ == "__main__":
    fuzz(sys.argv)
