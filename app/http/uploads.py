"""Reading uploads from a request: multipart files or a raw image body."""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass

from flask import Request
from werkzeug.datastructures import FileStorage
from werkzeug.datastructures import Headers
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header

from app.inference import ACCEPTED_FORMATS


class UploadError(Exception):
    """A problem with the request itself, before any image is decoded."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class ReadBodyAtOnce:
    """WSGI middleware: the first read of a body of declared length reads all
    of it from the server in one call.

    Gunicorn's body reader copies what it has read ahead on every read, so
    Werkzeug's 64 KB reads of a 1.1 MB upload cost ~5 ms of CPU and one read of
    the whole body ~2.5 ms (measured in a Gunicorn worker). Nothing is read
    before the application asks, so a 401, 429 or 503 still answers without
    waiting for the upload. Bodies without a length (chunked) or over
    MAX_CONTENT_LENGTH are left to Werkzeug, which limits or refuses them.
    """

    def __init__(self, wsgi_app, config) -> None:
        self.wsgi_app = wsgi_app
        self.config = config

    def __call__(self, environ, start_response):
        declared = environ.get("CONTENT_LENGTH") or ""
        limit = self.config.get("MAX_CONTENT_LENGTH")
        if declared.isdigit() and limit and 0 < int(declared) <= limit:
            environ["wsgi.input"] = WholeBody(environ["wsgi.input"], int(declared))
        return self.wsgi_app(environ, start_response)


class WholeBody(io.RawIOBase):
    """A ``wsgi.input`` that reads ``length`` bytes in one call when first read."""

    def __init__(self, stream, length: int) -> None:
        super().__init__()
        self._stream = stream
        self._length = length
        self._body: io.BytesIO | None = None

    def _buffer(self) -> io.BytesIO:
        if self._body is None:
            self._body = io.BytesIO(self._stream.read(self._length))
        return self._body

    def unread_body(self) -> bytes | None:
        """The whole body (without a copy), or None if some of it was read
        already or the client sent less than it declared. Reading it this way
        leaves the stream where it was."""
        body = self._buffer()
        if body.tell():
            return None
        value = body.getvalue()
        return value if len(value) == self._length else None

    def discard(self) -> None:
        """The body was parsed from ``unread_body``: drop it; reads get EOF."""
        self._body = io.BytesIO()

    def _release_when_consumed(self) -> None:
        # The parser has copied everything out: do not hold a second copy of
        # the upload for the rest of the request.
        if self._body is not None and self._body.tell() >= self._length:
            self._body = io.BytesIO()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._buffer().readinto(buffer)
        self._release_when_consumed()
        return count

    def read(self, size: int = -1) -> bytes:
        data = self._buffer().read(size)
        self._release_when_consumed()
        return data

    def readline(self, size: int = -1) -> bytes:
        line = self._buffer().readline(size)
        self._release_when_consumed()
        return line


class UploadRequest(Request):
    """Keeps uploaded files in memory instead of spooling them to disk.

    Werkzeug writes every file over 500 KB to a temporary file, and we read it
    straight back: each upload is hashed, decoded and stored as bytes. Bodies
    are capped at MAX_CONTENT_LENGTH either way, so memory stays bounded, and
    a 1 MB photo no longer costs a write and a read (~2 ms of CPU).
    """

    def _load_form_data(self) -> None:
        if "form" in self.__dict__:
            return
        parsed = self._parse_whole_multipart()
        if parsed is None:
            super()._load_form_data()
            return
        self.__dict__["stream"] = io.BytesIO()  # consumed, as after Werkzeug's
        self.__dict__["form"], self.__dict__["files"] = parsed

    def _parse_whole_multipart(self) -> tuple[MultiDict, MultiDict] | None:
        """Form and files from a body that is already in memory (WholeBody)."""
        body_stream = self.environ.get("wsgi.input")
        if self.mimetype != "multipart/form-data" or not isinstance(
            body_stream, WholeBody
        ):
            return None
        body = body_stream.unread_body()
        if body is None:
            return None  # Werkzeug reads what is left, or reports the short body
        parsed = parse_multipart_body(
            body,
            self.mimetype_params.get("boundary", ""),
            max_parts=self.max_form_parts,
            max_field_size=self.max_form_memory_size,
        )
        if parsed is None:
            return None
        body_stream.discard()
        fields, files = parsed
        storage = self.parameter_storage_class
        return storage(fields), storage(files)

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> io.BytesIO:
        return io.BytesIO()


def parse_multipart_body(
    body: bytes, boundary: str, *, max_parts: int | None, max_field_size: int | None
) -> tuple[list[tuple[str, str]], list[tuple[str, FileStorage]]] | None:
    """Form fields and files of a whole multipart/form-data body in memory, or
    None for anything but the plain layout browsers, curl and requests send.

    Werkzeug's parser is written for streams: on a 1.1 MB upload it spends
    ~3 ms of CPU in Python, copying the file 64 KB at a time. Here every part is
    found with a few ``bytes.find`` calls and copied once. A body with a
    preamble, an epilogue, a boundary line with trailing blanks or a boundary
    string inside a part, folded or non-UTF-8 part headers, or over the part and
    field limits gets None, and Werkzeug parses it (and raises its 400 or 413).
    """
    try:
        delimiter = b"\r\n--" + boundary.encode("ascii")
    except UnicodeEncodeError:
        return None
    separator, closing = delimiter + b"\r\n", delimiter + b"--"
    first = delimiter[2:] + b"\r\n"
    end = len(body) - len(closing) - 2
    # An empty preamble (one CRLF before the first boundary) is what
    # Werkzeug's own test client sends.
    start = 2 if body.startswith(b"\r\n" + first) else 0
    if (
        not boundary
        or not body.startswith(first, start)
        or not body.endswith(closing + b"\r\n")
    ):
        return None
    parts = body.count(separator, start, end) + 1
    delimiters = body.count(delimiter) - (1 if start else 0)
    if delimiters != parts or (max_parts is not None and parts > max_parts):
        return None
    fields, files = [], []
    start += len(first)
    while start <= end:
        stop = body.find(separator, start, end)
        stop = end if stop < 0 else stop
        header_end = body.find(b"\r\n\r\n", start, stop)
        if header_end < 0:
            return None
        headers = _part_headers(body[start:header_end])
        if headers is None:
            return None
        disposition, options = parse_options_header(headers.get("Content-Disposition"))
        if disposition != "form-data" or "name" not in options:
            return None
        data = body[header_end + 4 : stop]
        if "filename" in options:
            storage = FileStorage(
                io.BytesIO(data), options["filename"], options["name"], headers=headers
            )
            files.append((options["name"], storage))
        elif max_field_size is not None and len(data) > max_field_size:
            return None
        else:
            fields.append((options["name"], data.decode(_charset(headers), "replace")))
        start = stop + len(separator)
    return fields, files


def _part_headers(block: bytes) -> Headers | None:
    headers = Headers()
    for line in block.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon or line[:1] in (b" ", b"\t") or b"\r" in line or b"\n" in line:
            return None  # folded, bare line breaks, malformed: Werkzeug's rules
        try:
            headers.add(name.decode().strip(" \t"), value.decode().strip(" \t"))
        except UnicodeDecodeError:
            return None
    return headers


def _charset(headers: Headers) -> str:
    """A form field's charset, as Werkzeug chooses it (a safe list, else UTF-8)."""
    charset = parse_options_header(headers.get("Content-Type"))[1].get("charset", "")
    if charset.lower() in {"ascii", "us-ascii", "utf-8", "iso-8859-1"}:
        return charset.lower()
    return "utf-8"


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
# Controls (Cc), format characters (Cf: bidi overrides and marks such as the
# U+202E that makes "photo\u202egpj.exe" display as "photoexe.jpg", zero-width
# characters, U+FEFF) and line and paragraph separators (Zl, Zp).
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def clean_filename(name: str | None, fallback: str = "upload") -> str:
    """The last path component, without control, format or separator
    characters, at most 255 chars.

    The name is only ever displayed (escaped), never used as a path.
    """
    name = "".join(
        ch for ch in name or "" if unicodedata.category(ch) not in _INVISIBLE_CATEGORIES
    )
    name = re.split(r"[\\/]", name)[-1].strip()
    return name[:255] or fallback


def read_uploads(request: Request, max_files: int) -> list[Upload]:
    """Files from the ``image`` field, or the raw body for image content types."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        files = [f for f in request.files.getlist("image") if f is not None]
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
