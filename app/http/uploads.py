"""The upload rules: which parts of a request are images, how many, how big.

Reading the body is the WSGI layer's and the request class's work
(``whole_body``, ``request``); names are cleaned by ``filenames``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

from app.http.filenames import clean_filename
from app.inference import ACCEPTED_FORMATS


class UploadError(Exception):
    """A problem with the request itself, before any image is decoded."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


RAW_IMAGE_TYPES = frozenset(ACCEPTED_FORMATS.values()) | {
    "image/jpg",
    "image/pjpeg",
    "image/x-ms-bmp",
    "application/octet-stream",
}


def read_uploads(request: Request, max_files: int) -> list[Upload]:
    """Files from the ``image`` field, or the raw body for image content types."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        files = [
            f
            for f in request.files.getlist("image")
            if f is not None and not is_empty_file_input(f)
        ]
        if not files:
            raise UploadError(
                400, "no_file", "No image was sent: use the form field 'image'."
            )
        if len(files) > max_files:
            raise UploadError(
                400,
                "too_many_files",
                f"Too many files: at most {max_files} images per request.",
            )
        return [Upload(clean_filename(f.filename), file_bytes(f)) for f in files]
    if mimetype.startswith("image/") or mimetype in RAW_IMAGE_TYPES:
        name = request.args.get("filename") or request.headers.get("X-Filename")
        return [Upload(clean_filename(name), read_raw_body(request))]
    raise UploadError(
        415 if mimetype else 400,
        "unsupported_media_type" if mimetype else "no_file",
        "Send images as multipart/form-data in the field 'image', or as a raw "
        "body with an image Content-Type such as image/jpeg.",
    )


def is_empty_file_input(storage) -> bool:
    """Whether a part is what a browser sends for a file input left empty: no
    file name and no bytes (HTML's form submission). The upload page has three
    inputs named ``image`` (files, folder, camera); a plain post fills one."""
    if storage.filename:
        return False
    # Peek, and put the stream back as it was for whoever reads it next.
    empty = not storage.stream.read(1)
    storage.stream.seek(0)
    return empty


def file_bytes(storage) -> bytes:
    """An uploaded file's bytes; from our in-memory stream without a copy."""
    if isinstance(storage.stream, io.BytesIO):
        return storage.stream.getvalue()
    return storage.read()


def read_raw_body(request: Request) -> bytes:
    """The whole raw body, or 413.

    With Content-Length, Werkzeug refuses an oversized body upfront. A chunked
    body has none, and Werkzeug's limited stream stops silently at the limit,
    so read the server's stream ourselves: one byte past the limit means 413.
    """
    limit = request.max_content_length
    if limit is None or request.content_length is not None:
        return request.get_data(cache=False)
    stream = request.environ["wsgi.input"]
    chunks, size = [], 0
    while size <= limit:
        chunk = stream.read(min(1 << 16, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise RequestEntityTooLarge()
    return b"".join(chunks)
