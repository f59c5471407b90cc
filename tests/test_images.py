"""Decoding and preprocessing: formats, modes, orientation, hostile bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.inference import ImageTooLarge
from app.inference import InvalidImage
from app.inference import UnsupportedFormat
from app.inference.images import decode_image
from app.inference.images import preprocess
from tests.helpers import gradient_image
from tests.helpers import make_image_bytes
from tests.helpers import png_claiming

MAX_PIXELS = 40_000_000


def decode(data: bytes):
    return decode_image(data, max_pixels=MAX_PIXELS)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_accepted_formats_decode_to_network_input(fmt):
    image = decode(make_image_bytes(fmt, size=(300, 200)))
    assert image.pixels.shape == (224, 224, 3)
    assert image.pixels.dtype == np.uint8
    assert (image.width, image.height) == (300, 200)
    assert image.format == fmt
    thumb = Image.open(io.BytesIO(image.thumbnail))
    assert thumb.format == "JPEG" and max(thumb.size) <= 256


def test_format_is_identified_from_bytes_not_name():
    png = make_image_bytes("PNG")
    assert decode(png).mime_type == "image/png"


@pytest.mark.parametrize(
    ("mode", "color", "expected"),
    [
        ("L", 128, (128, 128, 128)),
        ("RGBA", (255, 0, 0, 0), (255, 255, 255)),  # transparent -> white
        ("RGBA", (0, 0, 255, 255), (0, 0, 255)),
        ("LA", (0, 255), (0, 0, 0)),
        ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
    ],
)
def test_modes_convert_to_rgb(mode, color, expected):
    fmt = "JPEG" if mode in ("L", "CMYK") else "PNG"
    image = decode(make_image_bytes(fmt, mode=mode, color=color, size=(64, 64)))
    centre = image.pixels[112, 112].astype(int)
    assert np.abs(centre - np.array(expected)).max() <= 3


def test_palette_with_transparency_becomes_white():
    image = Image.new("P", (32, 32), 0)
    image.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)
    decoded = decode(buffer.getvalue())
    assert decoded.pixels[0, 0].tolist() == [255, 255, 255]


def test_16_bit_greyscale_is_scaled_not_clipped():
    image = Image.new("I;16", (32, 32), 32768)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    value = decode(buffer.getvalue()).pixels[16, 16, 0]
    assert 126 <= value <= 129


def test_exif_orientation_is_applied_before_resizing():
    # Left half red, right half blue, stored with "rotate 90 CW" (orientation 6):
    # upright, red must be on top and blue at the bottom.
    stored = Image.new("RGB", (400, 200), (255, 0, 0))
    stored.paste((0, 0, 255), (200, 0, 400, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif, quality=95)
    image = decode(buffer.getvalue())
    assert (image.width, image.height) == (200, 400)
    top, bottom = image.pixels[20, 112], image.pixels[200, 112]
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.slow
def test_preprocessing_matches_keras_resnet50():
    from keras.applications.resnet50 import preprocess_input

    pixels = np.asarray(gradient_image((224, 224)), dtype=np.uint8)
    ours = preprocess(pixels[None])
    theirs = preprocess_input(pixels[None].astype("float32"))
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_draft_decoding_stays_close_to_full_decoding():
    """Tolerance: draft-mode input tensors differ from a full-resolution decode
    + the same resize by at most 2 grey levels on average and 4 at the 99th
    percentile (of 0..255)."""
    source = gradient_image((2400, 1800))
    buffer = io.BytesIO()
    source.save(buffer, "JPEG", quality=92)
    data = buffer.getvalue()
    fast = decode(data).pixels.astype(int)
    with Image.open(io.BytesIO(data)) as full:
        plain = np.asarray(
            full.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)
        ).astype(int)
    difference = np.abs(fast - plain)
    assert difference.mean() <= 2.0
    assert np.percentile(difference, 99) <= 4


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", InvalidImage),
        (b"hello, I am a text file pretending to be a jpeg\n", InvalidImage),
        (
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
            UnsupportedFormat,
        ),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", UnsupportedFormat),
        (b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", UnsupportedFormat),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n", UnsupportedFormat),
        (b"<!DOCTYPE html><html></html>", UnsupportedFormat),
    ],
)
def test_non_images_are_rejected(data, error):
    with pytest.raises(error):
        decode(data)


def test_tiff_is_refused_as_unsupported():
    with pytest.raises(UnsupportedFormat, match="TIFF"):
        decode(make_image_bytes("TIFF"))


def test_truncated_jpeg_is_invalid():
    data = make_image_bytes("JPEG", size=(640, 480))
    with pytest.raises(InvalidImage, match="corrupt or truncated"):
        decode(data[: len(data) // 2])


def test_truncated_png_is_invalid():
    data = make_image_bytes("PNG", size=(640, 480))
    with pytest.raises(InvalidImage):
        decode(data[:200])


def test_decompression_bomb_is_refused_before_decoding():
    bomb = png_claiming(10_000, 10_000)
    assert len(bomb) < 200
    with pytest.raises(ImageTooLarge, match="too large"):
        decode(bomb)


def test_pixel_limit_is_configurable():
    data = make_image_bytes("PNG", size=(100, 100))
    with pytest.raises(ImageTooLarge):
        decode_image(data, max_pixels=9_999)
    assert decode_image(data, max_pixels=10_000).width == 100


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (64, 64), c) for c in [(255, 0, 0), (0, 255, 0)]]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    pixel = decode(buffer.getvalue()).pixels[10, 10]
    assert pixel[0] > 200 and pixel[1] < 60
