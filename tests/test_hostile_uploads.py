"""Hostile uploads against the real Gunicorn server (random weights).

Every file is generated here: decompression bombs, truncated and corrupted
images, polyglots, other formats renamed to .jpg, an animated GIF with
thousands of frames, empty files, hostile file names and oversized bodies (with
Content-Length and chunked). Each must get a 4xx with a JSON error (never a
500 and never a dropped connection), except real images, which may get a 200
with a cleaned file name and a re-encoded thumbnail. Afterwards the same
workers still serve a valid image and their peak RSS grew by a bounded amount.

The outcome table is printed (``pytest -s``) and written to
``artifacts/hostile_uploads.md``.
"""

from __future__ import annotations

import html
import io
import random
import struct
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import requests
from PIL import Image

from app.config import Config
from app.inference import InvalidImage
from app.inference.images import decode_image
from devtools.rawhttp import BOUNDARY
from devtools.rawhttp import MULTIPART_TYPE
from devtools.rawhttp import RawResponse
from devtools.rawhttp import chunked
from devtools.rawhttp import multipart
from devtools.rawhttp import raw_request
from devtools.rawhttp import request_head
from devtools.server import ROOT
from devtools.server import LiveServer
from devtools.server import proc_status
from devtools.server import reset_peak_rss
from tests.helpers import gradient_image

pytestmark = pytest.mark.server

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # the server's default MAX_UPLOAD_BYTES
XSS_MARK = b"snapclass-xss-probe"
HTML_PAYLOAD = b"<html><body><script>alert('" + XSS_MARK + b"')</script></body></html>"
# Peak RSS a worker may gain over the whole corpus. The largest bodies are about
# 10 MiB (held a few times: socket buffer, form part, bytes) and the largest
# image really decoded is small, so normal growth is a few tens of MiB; a single
# decoded bomb would cost 430 MiB (12000x12000 RGB) to 12 GiB (65535x65535).
PEAK_RSS_GROWTH_LIMIT_MIB = 128
# Nothing here needs real work: a slow answer means a bomb was (partly) decoded.
ANSWER_WITHIN_S = 10
BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}

TABLE: list[tuple[str, int, str, str]] = []


# --------------------------------------------------------------------------
# The corpus


def png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_claiming(width: int, height: int) -> bytes:
    """A ~100-byte PNG whose header claims ``width`` x ``height`` pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


@cache
def png_real_bomb(side: int = 12000) -> bytes:
    """A complete, valid greyscale PNG of side x side zeros (~0.15 MB on disk)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + one byte per pixel
    rows = b"".join(row for _ in range(256))
    idat = b"".join(compressor.compress(rows) for _ in range(side // 256))
    idat += compressor.compress(row * (side % 256)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def png_ztxt_bomb() -> bytes:
    """A valid 8x8 PNG with a zTXt chunk that inflates to 200 MB."""
    png = encode(Image.new("RGB", (8, 8), (1, 2, 3)), "PNG")
    text = b"Comment\x00\x00" + zlib.compress(b"A" * (200 * 1024 * 1024), 9)
    return png[:33] + png_chunk(b"zTXt", text) + png[33:]


def gif_claiming(width: int, height: int) -> bytes:
    """A GIF whose logical screen is ``width`` x ``height`` with one 1x1 frame."""
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", width, height, 0x80, 0, 0)  # 2-colour table
        + b"\x00\x00\x00\xff\xff\xff"
        + b","
        + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
        + b"\x02\x02\x44\x01\x00"
        + b";"
    )


def riff_webp(*chunks: bytes) -> bytes:
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) % 2)


def webp_vp8x_claiming(width: int, height: int) -> bytes:
    """An extended WebP header with a width x height canvas and no image."""
    size = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return riff_webp(webp_chunk(b"VP8X", b"\x00" * 4 + size))


def webp_vp8_claiming(width: int, height: int) -> bytes:
    """A lossy WebP key frame header claiming width x height (max 16383)."""
    frame = b"\x10\x02\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height)
    return riff_webp(webp_chunk(b"VP8 ", frame + b"\x00" * 32))


def jpeg_claiming(width: int, height: int) -> bytes:
    """SOI, a baseline SOF0 claiming width x height (3 components), EOI."""
    components = b"".join(bytes([i, 0x11, 0]) for i in (1, 2, 3))
    sof = struct.pack(">BBHBHHB", 0xFF, 0xC0, 17, 8, height, width, 3) + components
    return b"\xff\xd8" + sof + b"\xff\xd9"


def bmp_claiming(width: int, height: int) -> bytes:
    """A BITMAPINFOHEADER claiming width x height at 24 bits, with no pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + 40) + info


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@cache
def photo(fmt: str) -> bytes:
    """A small structured image (so corruption lands in real entropy data)."""
    return encode(gradient_image((320, 240)), fmt)


def truncated(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


def flipped(data: bytes, offset: int, count: int = 4) -> bytes:
    """``count`` bytes at ``offset`` replaced by seeded random bytes."""
    rng = random.Random(offset)
    out = bytearray(data)
    for i in range(offset, min(offset + count, len(out))):
        out[i] ^= rng.randrange(1, 256)
    return bytes(out)


def gif_js_polyglot() -> bytes:
    """A GIF that is also JavaScript: width bytes '/*' open a comment that the
    trailer closes, then ``=alert(...)`` assigns to ``GIF89a``."""
    gif = bytearray(gif_claiming(1, 1))
    gif[6:8] = b"/*"  # logical screen width 0x2a2f = 10799 px, height 1
    return bytes(gif) + b"*/=alert('" + XSS_MARK + b"');"


def png_with_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.html", HTML_PAYLOAD)
    return photo("PNG") + buffer.getvalue()


@cache
def animated_gif(frames: int = 5000) -> bytes:
    """An animated GIF with ``frames`` distinct 16x16 frames (~250 KB)."""
    images = [Image.new("P", (16, 16), i % 256) for i in range(frames)]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:])


SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
    b"<script>alert('snapclass-xss-probe')</script></svg>"
)
SVG_WITH_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n' + SVG
PDF = b"%PDF-1.7\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF"
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
EPS_BINARY = b"\xc5\xd0\xd3\xc6" + b"\x00" * 28
HTML = b"<!DOCTYPE html>\n" + HTML_PAYLOAD
TIFF = b"II*\x00" + b"\x08\x00\x00\x00" + b"\x00" * 16


# --------------------------------------------------------------------------
# How each is sent


Sender = Callable[[LiveServer], RawResponse]


def port_of(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def upload(*files: tuple[bytes, bytes]) -> Sender:
    """A multipart /predict with Content-Length (names written byte for byte)."""

    def send(server: LiveServer) -> RawResponse:
        body = multipart(list(files))
        head = request_head(
            "/predict", MULTIPART_TYPE, token=server.token, content_length=len(body)
        )
        return raw_request(port_of(server), head, body)

    return send


def lazy_upload(name: bytes, make: Callable[[], bytes]) -> Sender:
    return lambda server: upload((name, make()))(server)


def raw_body(
    make: Callable[[], bytes], content_type: bytes, path: str = "/predict"
) -> Sender:
    """A raw image body with Content-Length."""

    def send(server: LiveServer) -> RawResponse:
        body = make()
        head = request_head(
            path, content_type, token=server.token, content_length=len(body)
        )
        return raw_request(port_of(server), head, body)

    return send


def oversized_multipart(*, use_chunked: bool) -> Sender:
    def send(server: LiveServer) -> RawResponse:
        body = multipart([(b"big.jpg", photo("JPEG") + b"\0" * MAX_UPLOAD_BYTES)])
        if use_chunked:
            head = request_head(
                "/predict", MULTIPART_TYPE, token=server.token, chunked=True
            )
            return raw_request(port_of(server), head, chunked(body))
        head = request_head(
            "/predict", MULTIPART_TYPE, token=server.token, content_length=len(body)
        )
        pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
        return raw_request(port_of(server), head, pieces)

    return send


def lying_content_length(server: LiveServer) -> RawResponse:
    """Content-Length says 10 GB; three bytes follow."""
    head = request_head(
        "/predict", MULTIPART_TYPE, token=server.token, content_length=10**10
    )
    return raw_request(port_of(server), head, b"abc")


def unterminated_multipart(server: LiveServer) -> RawResponse:
    body = multipart([(b"cut.jpg", photo("JPEG"))], closed=False)[:-200]
    head = request_head(
        "/predict", MULTIPART_TYPE, token=server.token, content_length=len(body)
    )
    return raw_request(port_of(server), head, body)


def multipart_without_boundary(server: LiveServer) -> RawResponse:
    body = multipart([(b"a.jpg", photo("JPEG"))])
    head = request_head(
        "/predict",
        b"multipart/form-data",
        token=server.token,
        content_length=len(body),
    )
    return raw_request(port_of(server), head, body)


def many_parts(count: int) -> Sender:
    """``count`` one-byte fields before the image: a form-parsing DoS attempt."""

    def send(server: LiveServer) -> RawResponse:
        fields = b"".join(
            b"--" + BOUNDARY + b"\r\n"
            b'Content-Disposition: form-data; name="f' + str(i).encode() + b'"\r\n'
            b"\r\nx\r\n"
            for i in range(count)
        )
        body = fields + multipart([(b"a.jpg", photo("JPEG"))])
        head = request_head(
            "/predict", MULTIPART_TYPE, token=server.token, content_length=len(body)
        )
        return raw_request(port_of(server), head, body)

    return send


# --------------------------------------------------------------------------
# Expected outcomes


@dataclass(frozen=True)
class Case:
    """One hostile request: what is sent and which answers are acceptable."""

    name: str
    send: Sender
    statuses: frozenset[int]
    codes: frozenset[str] = frozenset()
    stored_name: str | None = None  # the cleaned name a 200 must store

    @property
    def param(self):
        return pytest.param(self, id=self.name)


def refused(name: str, send: Sender, status: int, *codes: str) -> Case:
    return Case(name, send, frozenset({status}), frozenset(codes))


def file_case(name: str, data: Callable[[], bytes], status: int, *codes) -> Case:
    return refused(name, lazy_upload(name.encode(), data), status, *codes)


def decodes_or_refused(name: str, data: Callable[[], bytes]) -> Case:
    """Corrupted images: a 200 where the decoder recovers, a 400 where it
    refuses. The server runs the same decoder, so which one is known here."""
    try:
        decode_image(data(), max_pixels=Config.MAX_IMAGE_PIXELS)
        status = 200
    except InvalidImage:
        status = 400
    return Case(
        name,
        lazy_upload(name.encode(), data),
        frozenset({status}),
        frozenset({"invalid_image"}),
        stored_name=name,
    )


def accepted(name: str, send: Sender, stored_name: str) -> Case:
    return Case(name, send, frozenset({200}), stored_name=stored_name)


TOO_LARGE = (413, "image_too_large")
INVALID = (400, "invalid_image")
UNSUPPORTED = (415, "unsupported_format")
PWNED = f"snapclass-pwned-{uuid.uuid4().hex[:8]}.jpg"


def named(name: bytes, stored: str, label: str | None = None) -> Case:
    """A real JPEG under a hostile multipart file name: 200, name cleaned."""
    label = label or "name " + ascii(name.decode("latin-1"))[1:-1]
    return accepted(label, upload((name, photo("JPEG"))), stored)


XSS_NAME = "<img src=x onerror=alert(1)>.jpg"


def corpus() -> list[Case]:
    """Every hostile request, in the order of the outcome table."""
    jpeg, png = (lambda: photo("JPEG")), (lambda: photo("PNG"))
    jpeg_size, png_size = len(photo("JPEG")), len(photo("PNG"))
    bombs = [
        ("bomb-100000x100000.png", lambda: png_claiming(10**5, 10**5)),
        ("bomb-real-12000x12000.png", png_real_bomb),
        ("bomb-65535x65535.gif", lambda: gif_claiming(65535, 65535)),
        ("bomb-vp8x-16384x16384.webp", lambda: webp_vp8x_claiming(16384, 16384)),
        ("bomb-vp8-16383x16383.webp", lambda: webp_vp8_claiming(16383, 16383)),
        ("bomb-sof-65500x65500.jpg", lambda: jpeg_claiming(65500, 65500)),
        ("bomb-50000x50000.bmp", lambda: bmp_claiming(50000, 50000)),
    ]
    broken = [
        ("bomb-ztxt-200MB.png", png_ztxt_bomb),
        ("truncated-50pct.jpg", lambda: truncated(jpeg(), 0.5)),
        ("truncated-header.jpg", lambda: jpeg()[:20]),
        ("truncated-50pct.png", lambda: truncated(png(), 0.5)),
        ("truncated-header.png", lambda: png()[:30]),
        ("html-bom-renamed.jpg", lambda: b"\xef\xbb\xbf" + HTML),
        ("zero-bytes.jpg", lambda: b""),
    ]
    other_formats = [
        ("svg-renamed.jpg", SVG),
        ("svg-xml-declaration.jpg", SVG_WITH_DECLARATION),
        ("pdf-renamed.jpg", PDF),
        ("eps-renamed.jpg", EPS),
        ("eps-binary-renamed.jpg", EPS_BINARY),
        ("html-renamed.jpg", HTML),
        ("tiff-renamed.jpg", TIFF),
    ]
    jpeg_offsets = (2, 20, 160, jpeg_size // 4, jpeg_size // 2, jpeg_size * 9 // 10)
    png_offsets = (1, 16, 40, png_size // 2, png_size - 14)
    polyglots = [
        ("polyglot-jpeg+html.jpg", lambda: jpeg() + HTML_PAYLOAD),
        ("polyglot-gif+js.gif", gif_js_polyglot),
        ("polyglot-png+zip.png", png_with_zip),
        ("animated-5000-frames.gif", animated_gif),
    ]
    pwned = b"../../../../../../tmp/" + PWNED.encode()
    raw_name = "/predict?filename=../../x%0d%0a.jpg"
    crlf_name = b"a\r\nContent-Type: text/html\r\n\r\nb.jpg"
    seventeen = upload(*[(b"%d.jpg" % i, photo("JPEG")) for i in range(17)])
    return [
        # Decompression bombs: refused from the header, before any decoding.
        *(file_case(name, make, *TOO_LARGE) for name, make in bombs),
        # Truncated, corrupted, empty and disguised files.
        *(file_case(name, make, *INVALID) for name, make in broken),
        *(
            decodes_or_refused(f"flipped-at-{at}.jpg", lambda o=at: flipped(jpeg(), o))
            for at in jpeg_offsets
        ),
        *(
            decodes_or_refused(f"flipped-at-{at}.png", lambda o=at: flipped(png(), o))
            for at in png_offsets
        ),
        *(
            file_case(name, lambda d=data: d, *UNSUPPORTED)
            for name, data in other_formats
        ),
        refused(
            "raw body, image/svg+xml",
            raw_body(lambda: SVG, b"image/svg+xml"),
            *UNSUPPORTED,
        ),
        refused(
            "raw body, text/html",
            raw_body(lambda: HTML, b"text/html"),
            415,
            "unsupported_media_type",
        ),
        refused("raw body, empty", raw_body(lambda: b"", b"image/jpeg"), *INVALID),
        # Real images with something attached, and thousands of frames: 200.
        *(
            accepted(name, lazy_upload(name.encode(), make), name)
            for name, make in polyglots
        ),
        # File names: cleaned, never used as a path.
        named(b"../../etc/passwd.jpg", "passwd.jpg"),
        named(
            b"*UTF-8''..%5C..%5Cwindows%5Cwin.ini.jpg",
            "win.ini.jpg",
            "name ..\\..\\windows\\win.ini.jpg",
        ),
        named(pwned, PWNED),
        named(b"a\x00b.jpg", "ab.jpg"),
        named(b"n" * 1000 + b".jpg", "n" * 255, "name 'n' * 1000 + '.jpg'"),
        named(b"n" * 100_000 + b".jpg", "n" * 255, "name 'n' * 100000 + '.jpg'"),
        named(b"*UTF-8''a%0D%0Ab.jpg", "ab.jpg"),
        named(XSS_NAME.encode(), XSS_NAME),
        named(b"../", "upload"),
        accepted(
            "raw body, ?filename=../../x%0d%0a.jpg",
            raw_body(jpeg, b"image/jpeg", raw_name),
            "x.jpg",
        ),
        refused(
            "name with raw CR LF + header",
            upload((crlf_name, photo("JPEG"))),
            400,
            "no_file",
        ),
        # Oversized bodies and broken multipart.
        refused(
            "over limit, Content-Length",
            oversized_multipart(use_chunked=False),
            413,
            "payload_too_large",
        ),
        refused(
            "over limit, chunked multipart",
            oversized_multipart(use_chunked=True),
            413,
            "payload_too_large",
        ),
        refused(
            "Content-Length 10 GB, 3 bytes sent",
            lying_content_length,
            413,
            "payload_too_large",
        ),
        refused("multipart cut before the end", unterminated_multipart, 400, "no_file"),
        refused(
            "multipart without boundary", multipart_without_boundary, 400, "no_file"
        ),
        refused("1500 form parts", many_parts(1500), 413, "payload_too_large"),
        refused("17 files (limit 16)", seventeen, 400, "too_many_files"),
    ]


CORPUS = corpus()


# --------------------------------------------------------------------------
# Tests


@pytest.fixture(scope="module")
def server(new_server):
    """One real server for the corpus; its workers' peak RSS is reset once warm."""
    live = new_server(
        "hostile",
    )
    try:
        for _ in range(4):  # warm both workers on real requests
            assert valid_upload(live).status_code == 200
        workers = live.workers()
        live.extra["workers"] = workers
        live.extra["baseline_kib"] = {pid: proc_status(pid)["VmRSS"] for pid in workers}
        live.extra["peak_reset"] = all(reset_peak_rss(pid) for pid in workers)
        yield live
    finally:
        live.stop()


def valid_upload(server: LiveServer, name: str = "ok.jpg") -> requests.Response:
    return requests.post(
        server.url + "/predict",
        headers=server.headers,
        files={"image": (name, photo("JPEG"), "image/jpeg")},
        timeout=60,
    )


@pytest.mark.parametrize("case", [case.param for case in CORPUS])
def test_hostile_upload_gets_a_clean_answer(server, case: Case):
    started = time.monotonic()
    response = case.send(server)
    elapsed = time.monotonic() - started
    code = response.error_code or "-"
    stored = ""
    if response.status == 200:
        stored = ", ".join(r["filename"] for r in response.json()["results"])
    TABLE.append((case.name, response.status, code, stored))

    assert response.status in case.statuses, (response.status, response.body[:300])
    assert elapsed < ANSWER_WITHIN_S, f"answered after {elapsed:.1f} s"
    if response.status >= 400:
        assert response.headers["content-type"] == "application/json"
        error = response.json()["error"]
        assert error["code"] in case.codes
        assert isinstance(error["message"], str) and len(error["message"]) > 10
        assert "Traceback" not in error["message"]
    else:
        check_stored_results(server, response, case)


def check_stored_results(server: LiveServer, response: RawResponse, case: Case):
    """A 200: clean name stored, thumbnail served as a fresh JPEG, page escaped."""
    for result in response.json()["results"]:
        name = result["filename"]
        assert name == case.stored_name
        assert not any(ch in name for ch in "/\\\x00\r\n") and len(name) <= 255
        assert len(result["predictions"]) == 5
        thumb = requests.get(
            f"{server.url}/api/predictions/{result['id']}/thumbnail.jpg",
            headers=server.headers,
            timeout=10,
        )
        assert thumb.status_code == 200
        assert thumb.headers["Content-Type"] == "image/jpeg"
        assert thumb.headers["X-Content-Type-Options"] == "nosniff"
        assert thumb.content.startswith(b"\xff\xd8") and XSS_MARK not in thumb.content
        assert Image.open(io.BytesIO(thumb.content)).format == "JPEG"
        page = server.browser().get(
            f"{server.url}/predictions/{result['id']}", timeout=10
        )
        assert page.status_code == 200
        assert XSS_MARK.decode() not in page.text
        if "<" in name:
            assert name not in page.text and html.escape(name) in page.text
    for place in (Path("/tmp"), ROOT, ROOT / "instance", Path.cwd()):
        assert not (place / PWNED).exists()


def test_chunked_raw_body_over_the_limit_is_413(server):
    body = photo("JPEG") + b"\0" * (MAX_UPLOAD_BYTES + 1024)
    head = request_head("/predict", b"image/jpeg", token=server.token, chunked=True)
    response = raw_request(port_of(server), head, chunked(body))
    TABLE.append(
        (
            "over-limit, chunked raw body (JPEG + padding)",
            response.status,
            response.error_code or "-",
            "-",
        )
    )
    assert response.status == 413, response.body[:200]
    assert response.error_code == "payload_too_large"


def test_bidi_override_is_removed_from_file_names(server):
    name = "photo\u202egpj.exe"
    response = upload((b"*UTF-8''photo%E2%80%AEgpj.exe", photo("JPEG")))(server)
    assert response.status == 200
    stored = response.json()["results"][0]["filename"]
    TABLE.append((f"name {name!a}", response.status, "-", f"{stored!a}"))
    assert not BIDI_CONTROLS & set(stored), f"stored {stored!a}"


def test_server_survives_the_corpus_with_bounded_memory(server):
    """Same workers, still serving, peak RSS growth bounded; the table is saved."""
    response = valid_upload(server, "after-the-corpus.jpg")
    assert response.status_code == 200
    assert requests.get(server.url + "/readyz", timeout=10).status_code == 200
    assert server.workers() == server.extra["workers"], "a worker died or restarted"
    log = server.log()
    assert "Traceback" not in log and "unhandled error" not in log

    rows = []
    for pid in server.extra["workers"]:
        status = proc_status(pid)
        baseline = server.extra["baseline_kib"][pid]
        growth_mib = (status["VmHWM"] - baseline) / 1024
        rows.append((pid, baseline / 1024, status["VmHWM"] / 1024, growth_mib))
    write_table(rows, server.extra["peak_reset"])
    for pid, _, _, growth_mib in rows:
        assert growth_mib < PEAK_RSS_GROWTH_LIMIT_MIB, (pid, growth_mib)


def write_table(rss_rows, peak_reset: bool) -> None:
    lines = [
        "| file / request | status | error code | stored name |",
        "|---|---|---|---|",
        *(
            f"| `{name}` | {status} | {code} | {stored[:60]} |"
            for name, status, code, stored in TABLE
        ),
        "",
        f"Worker peak RSS (VmHWM{' reset after warm-up' if peak_reset else ''}):",
        "",
        "| worker | RSS before MiB | peak after MiB | growth MiB |",
        "|---|---|---|---|",
        *(f"| {p} | {b:.0f} | {h:.0f} | {g:.1f} |" for p, b, h, g in rss_rows),
    ]
    text = "\n".join(lines) + "\n"
    out = ROOT / "artifacts" / "hostile_uploads.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print("\n" + text)
