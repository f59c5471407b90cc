"""Decoding untrusted image bytes into the network's input, and thumbnails.

Everything here works on bytes and Pillow images only, so it can be tested and
fuzzed without a model or a web server.
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image
from PIL import ImageOps

from .errors import ImageTooLarge
from .errors import InvalidImage
from .errors import UnsupportedFormat

# Pillow format name -> MIME type of the formats we accept. GIF: first frame only.
ACCEPTED_FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
}

# Magic numbers of formats people do send but we refuse with 415, so that the
# message can say what the file is instead of "not an image".
_KNOWN_UNSUPPORTED = (
    (b"%PDF-", "PDF"),
    (b"%!PS", "PostScript/EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"8BPS", "Photoshop PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
)
_ISO_MEDIA_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"avif": "AVIF"}

# Keras' ResNet50 "caffe" preprocessing: BGR channel order, ImageNet mean per
# channel (in BGR order), no scaling.
IMAGENET_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)

# Pillow only warns past ~89 megapixels; an upload that big is an attack or a
# mistake, never a photo to classify. (Our own MAX_IMAGE_PIXELS check is lower.)
warnings.simplefilter("error", Image.DecompressionBombWarning)

INPUT_SIZE = (224, 224)
THUMBNAIL_SIZE = 256


@dataclass(frozen=True)
class DecodedImage:
    """An upload decoded, oriented and resized to the network's input size.

    ``pixels`` is RGB uint8 of shape (224, 224, 3); ``width``/``height`` are the
    upright size of the original; ``thumbnail`` is a small JPEG for history.
    """

    pixels: np.ndarray
    format: str
    mime_type: str
    width: int
    height: int
    thumbnail: bytes
    decode_ms: float


def sniff_unsupported(data: bytes) -> str | None:
    """Name the format of bytes we recognise but do not accept, else None."""
    head = data[:64]
    for magic, name in _KNOWN_UNSUPPORTED:
        if head.startswith(magic):
            return name
    if head[4:8] == b"ftyp" and head[8:12] in _ISO_MEDIA_BRANDS:
        return _ISO_MEDIA_BRANDS[head[8:12]]
    text = data[:1024].lstrip().lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "SVG"
    if text.startswith((b"<!doctype html", b"<html")):
        return "HTML"
    return None


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Identify the format from the bytes and check the size, without decoding.

    :raises InvalidImage: empty or unreadable bytes.
    :raises UnsupportedFormat: a format outside ``ACCEPTED_FORMATS``.
    :raises ImageTooLarge: more than ``max_pixels`` pixels (decompression bombs).
    """
    if not data:
        raise InvalidImage("The file is empty.")
    unsupported = sniff_unsupported(data)
    if unsupported:
        raise UnsupportedFormat(
            f"{unsupported} files are not accepted. "
            "Send a JPEG, PNG, WebP, GIF or BMP image."
        )
    try:
        image = Image.open(io.BytesIO(data), formats=tuple(ACCEPTED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(_too_large_message(max_pixels)) from exc
    except Exception as exc:  # Pillow raises many types for hostile headers.
        raise InvalidImage(
            "The file is not an image we can read (JPEG, PNG, WebP, GIF or BMP)."
        ) from exc
    if image.width * image.height > max_pixels:
        raise ImageTooLarge(_too_large_message(max_pixels, image.width, image.height))
    if image.width < 1 or image.height < 1:
        raise InvalidImage("The image has no pixels.")
    return image


def _too_large_message(max_pixels: int, width: int = 0, height: int = 0) -> str:
    size = f" ({width}x{height})" if width else ""
    return (
        f"The image is too large{size}: at most {max_pixels / 1e6:.0f} megapixels "
        "are accepted."
    )


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any accepted mode to RGB; transparency is composited onto white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale (PNG loads it as I;16 or I): keep the top 8 bits
        # instead of clipping at 255, in integers (no float64 copy of a big image).
        array = np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
        image = Image.fromarray((array >> 8).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(
    data: bytes,
    *,
    max_pixels: int,
    input_size: tuple[int, int] = INPUT_SIZE,
    thumbnail_size: int = THUMBNAIL_SIZE,
) -> DecodedImage:
    """Decode untrusted bytes into a network input and a thumbnail.

    Large JPEGs are decoded at a reduced scale (draft mode: the DCT does the
    downscaling), but never below what the input and the thumbnail need.
    """
    started = time.perf_counter()
    image = open_image(data, max_pixels)
    image_format = image.format or "unknown"
    try:
        width, height = _upright_size(image)
        if image_format == "JPEG":
            needed = max(max(input_size), thumbnail_size)
            image.draft("RGB", (needed, needed))
        image.load()
        image = ImageOps.exif_transpose(image)
        image = to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(_too_large_message(max_pixels)) from exc
    except Exception as exc:  # truncated, corrupt or hostile data
        raise InvalidImage(
            "The image is corrupt or truncated and cannot be decoded."
        ) from exc
    pixels = np.asarray(
        image.resize(input_size, Image.Resampling.BILINEAR, reducing_gap=3.0),
        dtype=np.uint8,
    )
    return DecodedImage(
        pixels=pixels,
        format=image_format,
        mime_type=ACCEPTED_FORMATS[image_format],
        width=width,
        height=height,
        thumbnail=make_thumbnail(image, thumbnail_size),
        decode_ms=(time.perf_counter() - started) * 1000.0,
    )


def _upright_size(image: Image.Image) -> tuple[int, int]:
    """The size a person sees: EXIF orientations 5-8 swap width and height."""
    orientation = image.getexif().get(0x0112, 1)
    if orientation in (5, 6, 7, 8):
        return image.height, image.width
    return image.width, image.height


def make_thumbnail(image: Image.Image, size: int = THUMBNAIL_SIZE) -> bytes:
    """A JPEG no larger than ``size`` on its long side, for history pages."""
    thumb = image.copy()
    thumb.thumbnail((size, size), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    thumb.save(buffer, "JPEG", quality=82, optimize=False)
    return buffer.getvalue()


def preprocess(pixels: np.ndarray) -> np.ndarray:
    """RGB uint8 (..., H, W, 3) -> float32 BGR minus the ImageNet mean (caffe)."""
    return np.subtract(pixels[..., ::-1], IMAGENET_MEAN_BGR, dtype=np.float32)


def preprocess_batch(images: list[DecodedImage]) -> np.ndarray:
    """Stack decoded images into one float32 batch for the network."""
    return preprocess(np.stack([image.pixels for image in images]))
