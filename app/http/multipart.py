"""A multipart/form-data parser for a body that is already in memory."""

from __future__ import annotations

import io

from werkzeug.datastructures import FileStorage
from werkzeug.datastructures import Headers
from werkzeug.http import parse_options_header


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
