"""Test photos made with Pillow: nothing to download, nothing on disk."""

from __future__ import annotations

import io

from PIL import Image


def photo_jpeg(size: tuple[int, int] = (1365, 1365), quality: int = 90) -> bytes:
    """A photo-like JPEG (gradients and noise), like the load test's default."""
    width, height = size
    image = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize(size),
            Image.radial_gradient("L").resize(size),
            Image.effect_noise((width, height), 40),
        ),
    )
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
