"""Read an upload from the server in one call instead of Werkzeug's 64 KB reads."""

from __future__ import annotations

import io

from app.http.inputs import WrappedInput


class ReadBodyAtOnce:
    """WSGI middleware: the first read of a body of declared length reads all
    of it from the server in one call.

    Gunicorn's body reader copies what it has read ahead on every read, so
    Werkzeug's 64 KB reads of an upload cost about twice the CPU of one read of
    the whole body (docs/performance.md, "Request bodies"). Nothing is read
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


class WholeBody(WrappedInput):
    """A ``wsgi.input`` that reads ``length`` bytes in one call when first read."""

    def __init__(self, stream, length: int) -> None:
        super().__init__(stream)
        self._length = length
        self._body: io.BytesIO | None = None

    def _buffer(self) -> io.BytesIO:
        if self._body is None:
            self._body = io.BytesIO(self._stream.read(self._length))
        return self._body

    def _release_when_consumed(self) -> None:
        # The parser has copied everything out: do not hold a second copy of
        # the upload for the rest of the request.
        if self._body is not None and self._body.tell() >= self._length:
            self._body = io.BytesIO()

    def _source(self) -> io.BytesIO:
        return self._buffer()

    def _read(self, method, size: int) -> bytes:
        data = method(size)
        self._release_when_consumed()
        return data

    def readinto(self, buffer) -> int:
        # Straight into the caller's buffer: Werkzeug reads an upload this way.
        count = self._buffer().readinto(buffer)
        self._release_when_consumed()
        return count
