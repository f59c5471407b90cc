"""Keep a client's connection usable after the application refused its upload.

A client such as ``requests`` sends the whole body, then reads the answer.
When Snapclass refuses before reading the body (401, 408, 413, 429, 503...),
Gunicorn drains at most 64 KiB of what is left before it reuses the
connection, and otherwise closes it after announcing ``Connection:
keep-alive``: the client's next request on that connection fails with
"Remote end closed connection without response", which it cannot tell from a
dead server. Even a small leftover costs a thread: Gunicorn waits up to 5 s
for a slow client to send it.

So when a response starts while any of the body is unread, the server is told
to close the connection, and the response says ``Connection: close``: the
client opens a new connection for its next request. Reading the rest instead
would hold a thread for as long as the client takes to send it, which is
what a refusal must not cost (docs/reliability.md has the measurement).
"""

from __future__ import annotations

from app.http.inputs import WrappedInput


class CountingInput(WrappedInput):
    """A ``wsgi.input`` that counts what the application read from it."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.consumed = 0
        self.at_end = False

    def _read(self, method, size: int) -> bytes:
        data = method(size)
        self.consumed += len(data)
        if not data and size != 0:
            self.at_end = True
        return data


def unread_bytes(environ: dict, body: CountingInput) -> int | None:
    """Bytes of the body the application left unread; None if unknown (a
    chunked body not read to its end)."""
    declared = environ.get("CONTENT_LENGTH") or ""
    if declared.isascii() and declared.isdigit():
        return max(int(declared) - body.consumed, 0)
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return 0 if body.at_end else None
    return 0


class CloseAfterUnreadBody:
    """WSGI middleware: close the connection when a response leaves any of
    the request body unread (see the module docstring)."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        body = CountingInput(environ["wsgi.input"])
        environ["wsgi.input"] = body

        def start(status, headers, exc_info=None):
            unread = unread_bytes(environ, body)
            if unread != 0:
                headers = [(k, v) for k, v in headers if k.lower() != "connection"]
                headers.append(("Connection", "close"))
                force_close(start_response)
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start)


def force_close(start_response) -> None:
    """Tell the server to close the connection after this response.

    Gunicorn drops an application's ``Connection`` header (it is hop-by-hop),
    so it is told through its response object, whose method ``start_response``
    is. Servers that read the header (Werkzeug's) need nothing more.
    """
    close = getattr(getattr(start_response, "__self__", None), "force_close", None)
    if callable(close):
        close()
