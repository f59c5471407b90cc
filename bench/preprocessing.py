"""(b) Decode + preprocess in this process: what tutorials do against ours."""

from __future__ import annotations

import io
import statistics
from collections.abc import Callable
from functools import partial

import numpy as np
from PIL import Image
from PIL import ImageOps

from bench import program


def naive_preprocess(data: bytes) -> np.ndarray:
    """What most tutorials do: full decode, orient, resize, float64 math."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    array = np.asarray(image.resize((224, 224), Image.Resampling.BILINEAR), "float64")
    return (array[..., ::-1] - [103.939, 116.779, 123.68])[None]


def our_preprocess(data: bytes) -> np.ndarray:
    """What the app does (``app.inference.images``)."""
    from app.inference.images import decode_image
    from app.inference.images import preprocess

    return preprocess(decode_image(data, max_pixels=40_000_000).pixels[None])


def median_ms(function: Callable[[bytes], object], data: bytes, runs: int) -> float:
    """Median ms of ``function(data)`` over ``runs`` calls after one untimed."""
    return statistics.median(program.timed(partial(function, data), runs)) * 1000
