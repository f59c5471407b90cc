"""Decoding untrusted image bytes into the network's input, and thumbnails.

Everything here works on bytes and Pillow images only, so it can be tested and
fuzzed without a model or a web server.
"""

from __future__ import annotations

import io
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
from PIL import Image
from PIL import ImageChops

from .decode_limits import BAND_PIXELS
from .decode_limits import DECODE_CPU_BUDGET_S
from .decode_limits import MAX_JPEG_SCANS
from .decode_limits import MemoryBudget
from .decode_limits import TimedBytes
from .decode_limits import count_jpeg_scans
from .decode_limits import decode_memory_estimate
from .errors import ImageTooComplex
from .errors import ImageTooLarge
from .errors import InferenceError
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

# The box filter reduces to at least this many times the size the network
# input and the thumbnail need; the bilinear resize does the rest (what
# Pillow's own reducing_gap=3.0 does).
REDUCING_GAP = 3

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")
# EXIF orientation -> the transpose that makes the image upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


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


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8) read from the header, without decoding.

    Pillow's PNG plugin loads every pixel to look for an ``eXIf`` chunk after
    the image data: outside the memory budget and at full size, so four
    transparent 40 MP PNGs at once took a worker past twice its budget. Only
    an ``eXIf`` chunk before the image data counts here (where the PNG
    extensions say it belongs).
    """
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return image.getexif().get(0x0112, 1)


def open_image(
    data: bytes, max_pixels: int, stream: io.BytesIO | None = None
) -> Image.Image:
    """Identify the format from the bytes and check the size, without decoding.

    ``stream`` holds ``data`` when the caller wants to watch the reads.

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
        image = Image.open(stream or io.BytesIO(data), formats=tuple(ACCEPTED_FORMATS))
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


def to_rgb(image: Image.Image, factor: tuple[int, int] = (1, 1)) -> Image.Image:
    """Reduce by ``factor`` (box filter), then convert any accepted mode to RGB;
    transparency is composited onto white, 16-bit greyscale keeps its top 8 bits.

    Modes other than RGB and L are converted band by band and each band
    reduced at once, so a large palette or RGBA image never exists in full
    size in RGBA: the memory is the loaded image, a band and the result.
    Colours are reduced premultiplied by their alpha, as if composited first.
    """
    if image.mode in ("RGB", "L"):
        if factor != (1, 1):
            image = image.reduce(factor)
        return image if image.mode == "RGB" else image.convert("RGB")
    width, height = image.size
    fx, fy = factor
    alpha = image.mode in _ALPHA_MODES or (
        image.mode == "P" and "transparency" in image.info
    )
    size = (-(-width // fx), -(-height // fy))
    result = Image.new("RGBa" if alpha else "RGB", size)
    rows = max(1, BAND_PIXELS // (width * fy)) * fy
    for top in range(0, height, rows):
        band = _band_to_rgb(image.crop((0, top, width, min(height, top + rows))), alpha)
        result.paste(band.reduce(factor) if factor != (1, 1) else band, (0, top // fy))
    if not alpha:
        return result
    # Premultiplied colour plus white where the pixel is transparent.
    red, green, blue, opacity = result.split()
    clear = ImageChops.invert(opacity)
    return Image.merge("RGB", [ImageChops.add(c, clear) for c in (red, green, blue)])


def _band_to_rgb(band: Image.Image, alpha: bool) -> Image.Image:
    """One band in RGBa (premultiplied alpha) if ``alpha``, else in RGB."""
    if alpha:
        return band.convert("RGBA").convert("RGBa")
    if band.mode in _SIXTEEN_BIT_MODES:
        # 16-bit greyscale (PNG loads it as I;16 or I): keep the top 8 bits
        # instead of clipping at 255, in integers (no float64 copy).
        array = np.clip(np.asarray(band), 0, 65535).astype(np.uint16)
        band = Image.fromarray((array >> 8).astype(np.uint8), "L")
    return band.convert("RGB")


def reduction_factor(
    size: tuple[int, int], needed: tuple[int, int], gap: int = REDUCING_GAP
) -> tuple[int, int]:
    """Integer box-filter factors per axis that keep ``size`` at least
    ``gap`` times ``needed`` on each axis."""
    return (
        max(1, size[0] // (needed[0] * gap)),
        max(1, size[1] // (needed[1] * gap)),
    )


def fit_within(width: int, height: int, size: int) -> tuple[int, int]:
    """The size ``Image.thumbnail((size, size))`` gives a width x height image."""
    if width <= size and height <= size:
        return width, height
    aspect = width / height
    if aspect >= 1:
        return size, max(1, round(size / aspect))
    return max(1, round(size * aspect)), size


def decode_image(
    data: bytes,
    *,
    max_pixels: int,
    input_size: tuple[int, int] = INPUT_SIZE,
    thumbnail_size: int = THUMBNAIL_SIZE,
    max_jpeg_scans: int = MAX_JPEG_SCANS,
    cpu_budget_s: float = DECODE_CPU_BUDGET_S,
    memory_budget: MemoryBudget | None = None,
) -> DecodedImage:
    """Decode untrusted bytes into a network input and a thumbnail.

    Large JPEGs are decoded at a reduced scale (draft mode: the DCT does the
    downscaling), but never below what the input and the thumbnail need;
    other large images are reduced before they are converted (:func:`to_rgb`).
    Bounds: a JPEG of more than ``max_jpeg_scans`` scans is refused before
    decoding; a decode stops after ``cpu_budget_s`` of CPU (0: no limit,
    checked between the chunks Pillow reads); ``memory_budget`` holds the
    decode's estimated peak while it runs.

    :raises ImageTooComplex: too many scans, or past the CPU budget.
    :raises DecodeBusy: the memory budget stayed taken.
    """
    started = time.perf_counter()
    stream = TimedBytes(data)
    image = open_image(data, max_pixels, stream)
    image_format = image.format or "unknown"
    try:
        scans = 1
        if image_format == "JPEG":
            scans = count_jpeg_scans(data, max_jpeg_scans)
            if scans > max_jpeg_scans:
                raise ImageTooComplex(
                    f"The JPEG has more than {max_jpeg_scans} scans; at most "
                    f"{max_jpeg_scans} are accepted."
                )
        orientation = exif_orientation(image)
        width, height = image.width, image.height
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        thumb_size = fit_within(width, height, thumbnail_size)
        needed = (max(input_size[0], thumb_size[0]), max(input_size[1], thumb_size[1]))
        if orientation in (5, 6, 7, 8):
            needed = needed[::-1]
        full_size = image.size
        if image_format == "JPEG":
            image.draft("RGB", needed)
        reserved = decode_memory_estimate(image, full_size, scans)
        with memory_budget.reserve(reserved) if memory_budget else nullcontext():
            if cpu_budget_s > 0:
                stream.budget_s = cpu_budget_s
                stream.deadline = time.thread_time() + cpu_budget_s
            image.load()
            stream.deadline = None
            loaded = image
            image = to_rgb(loaded, reduction_factor(loaded.size, needed))
            if image is not loaded:
                # Free the full-size pixels inside the reservation: left to
                # the plugin's reference cycles, the GC frees them later.
                loaded.close()
            if orientation in _UPRIGHT:
                image = image.transpose(_UPRIGHT[orientation])
            pixels = np.asarray(
                image.resize(input_size, Image.Resampling.BILINEAR, reducing_gap=3.0),
                dtype=np.uint8,
            )
            thumbnail = make_thumbnail(image, thumb_size)
    except InferenceError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(_too_large_message(max_pixels)) from exc
    except Exception as exc:  # truncated, corrupt or hostile data
        raise InvalidImage(
            "The image is corrupt or truncated and cannot be decoded."
        ) from exc
    return DecodedImage(
        pixels=pixels,
        format=image_format,
        mime_type=ACCEPTED_FORMATS[image_format],
        width=width,
        height=height,
        thumbnail=thumbnail,
        decode_ms=(time.perf_counter() - started) * 1000.0,
    )


def make_thumbnail(image: Image.Image, size: tuple[int, int]) -> bytes:
    """``image`` resized to ``size`` as a JPEG, for history pages."""
    thumb = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    thumb.save(buffer, "JPEG", quality=82, optimize=False)
    return buffer.getvalue()


def preprocess(pixels: np.ndarray) -> np.ndarray:
    """RGB uint8 (..., H, W, 3) -> float32 BGR minus the ImageNet mean (caffe)."""
    return np.subtract(pixels[..., ::-1], IMAGENET_MEAN_BGR, dtype=np.float32)


def preprocess_batch(images: list[DecodedImage]) -> np.ndarray:
    """Stack decoded images into one float32 batch for the network."""
    return preprocess(np.stack([image.pixels for image in images]))
