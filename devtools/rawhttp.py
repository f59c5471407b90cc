"""Raw HTTP: exact bytes on the wire (names with CR/LF, chunked bodies, lies)."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass


@dataclass
class RawResponse:
    """What came back on a raw connection; ``status`` 0 when nothing did."""

    status: int
    headers: dict[str, str]
    body: bytes
    send_error: str | None = None

    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def error_code(self) -> str | None:
        try:
            return self.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return None


def raw_request(
    port: int,
    head: bytes,
    body: bytes | list[bytes] = b"",
    *,
    timeout_s: float = 60,
) -> RawResponse:
    """Send ``head`` (request line and headers, ending in a blank line) and the
    body pieces; read the answer even if the server stopped reading early."""
    pieces = [body] if isinstance(body, bytes) else body
    send_error = None
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        try:
            sock.sendall(head)
            for piece in pieces:
                sock.sendall(piece)
            sock.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the server answered and closed before the end
            send_error = type(exc).__name__
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except OSError as exc:
            send_error = (send_error or "") + f" recv:{type(exc).__name__}"
    header_block, _, payload = data.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/"):
        return RawResponse(0, {}, data, send_error)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(lines[0].split()[1]), headers, payload, send_error)


def request_head(
    path: str,
    content_type: bytes | None,
    *,
    token: str | None = None,
    content_length: int | None = None,
    chunked: bool = False,
    extra: bytes = b"",
) -> bytes:
    """A POST request head; Content-Length only when given."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    out = head.encode()
    if token:
        out += f"Authorization: Bearer {token}\r\n".encode()
    if content_type is not None:
        out += b"Content-Type: " + content_type + b"\r\n"
    if content_length is not None:
        out += f"Content-Length: {content_length}\r\n".encode()
    if chunked:
        out += b"Transfer-Encoding: chunked\r\n"
    return out + extra + b"\r\n"


BOUNDARY = b"snapclass-hostile-boundary"


def multipart(files: list[tuple[bytes, bytes]], *, closed: bool = True) -> bytes:
    """A multipart body with each ``(disposition filename, data)`` in the field
    ``image``; the filename bytes are written as given (CR, LF and NUL too).
    A name starting with ``*`` is sent as RFC 5987 ``filename*=`` instead."""
    out = b""
    for filename, data in files:
        if filename.startswith(b"*"):
            param = b"filename*=" + filename[1:]
        else:
            param = b'filename="' + filename + b'"'
        out += (
            b"--" + BOUNDARY + b"\r\n"
            b'Content-Disposition: form-data; name="image"; ' + param + b"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
        )
    return out + (b"--" + BOUNDARY + b"--\r\n" if closed else b"")


MULTIPART_TYPE = b"multipart/form-data; boundary=" + BOUNDARY


def chunked(body: bytes, size: int = 65536) -> list[bytes]:
    """``body`` in HTTP/1.1 chunked transfer coding."""
    pieces = [
        f"{len(body[i : i + size]):x}\r\n".encode() + body[i : i + size] + b"\r\n"
        for i in range(0, len(body), size)
    ]
    return [*pieces, b"0\r\n\r\n"]
