"""Bound the time a request body may take to arrive, and refuse a body the
server cannot parse with a 400 instead of a 500.

Gunicorn's threaded worker reads a body on the request's own thread, with no
time limit: a client that announces a body and sends it a few bytes at a time
holds that thread for as long as it likes, and enough such clients hold them
all. So each request with a body gets a deadline, ``BODY_TIMEOUT_S`` after it
reached the application. Under Gunicorn one thread per process watches the
deadlines; at a deadline it shuts the read side of the client's socket, which
ends a read blocked on a client that keeps sending a byte now and then (a
socket timeout would not: each byte restarts it). The read then raises
:class:`BodyTimeout` (408) and the connection is closed after the answer.
Under other servers (tests, ``flask run``) the deadline is checked after each
read.

A response that leaves the body unread (408 here; 401, 413, 429, 503
elsewhere) closes the connection: ``app/http/connections.py`` sees to that for
every request.

Behind the shipped nginx (``deploy/nginx/snapclass.conf``) bodies arrive
whole and at once; this is what protects a Gunicorn that clients reach
directly.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time

from werkzeug.exceptions import BadRequest
from werkzeug.exceptions import RequestTimeout

from app.http.inputs import WrappedInput

try:  # the errors of Gunicorn's body reader (chunked coding, early EOF)
    from gunicorn.http.errors import ParseException as ServerParseError
except ImportError:  # pragma: no cover - Gunicorn is a runtime dependency
    ServerParseError = ValueError


class BodyTimeout(RequestTimeout):
    description = "The request body did not arrive in time."
    code_name = "body_timeout"


class MalformedBody(BadRequest):
    description = "The request body is malformed or incomplete."
    code_name = "malformed_body"


def has_body(environ: dict) -> bool:
    declared = environ.get("CONTENT_LENGTH") or ""
    if declared.strip() not in ("", "0"):
        return True
    return "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


class BodyDeadline:
    """WSGI middleware: every request body must arrive within
    ``config["BODY_TIMEOUT_S"]`` seconds (see the module docstring)."""

    def __init__(self, wsgi_app, config) -> None:
        self.wsgi_app = wsgi_app
        self.config = config

    def __call__(self, environ, start_response):
        timeout = self.config.get("BODY_TIMEOUT_S")
        if not timeout or not has_body(environ):
            return self.wsgi_app(environ, start_response)
        declared = environ.get("CONTENT_LENGTH") or ""
        body = DeadlineInput(
            environ["wsgi.input"],
            environ.get("gunicorn.socket"),
            timeout,
            int(declared) if declared.isascii() and declared.isdigit() else None,
        )
        environ["wsgi.input"] = body
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            body.finish()


class DeadlineInput(WrappedInput):
    """A ``wsgi.input`` whose reads end at a deadline."""

    def __init__(
        self,
        stream,
        sock: socket.socket | None,
        timeout: float,
        length: int | None = None,
    ) -> None:
        super().__init__(stream)
        self._sock = sock
        self._left = length  # None: chunked, complete at the first empty read
        self.deadline = time.monotonic() + timeout
        self.expired = False
        self.complete = False
        self._finished = False
        if sock is not None:
            watcher().watch(self)

    def cut(self) -> None:
        """Called by the watcher, under its lock, at the deadline."""
        if self._finished or self.complete:
            return
        self.expired = True
        try:
            self._sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass  # the client is gone already

    def finish(self) -> None:
        """The request is answered: the watcher must leave the socket alone
        (the connection may carry the next request)."""
        if self._sock is not None:
            with watcher().lock:
                self._finished = True

    def _check_deadline(self) -> None:
        if self.expired or time.monotonic() > self.deadline:
            self.expired = True
            raise BodyTimeout()

    def _read(self, method, size: int) -> bytes:
        self._check_deadline()
        try:
            data = method(size)
        except (ServerParseError, OSError) as exc:
            self._check_deadline()
            raise MalformedBody() from exc
        self._check_deadline()
        if self._left is not None:
            self._left -= len(data)
        if (not data and size != 0) or self._left == 0:
            self.complete = True
        return data


class DeadlineWatcher:
    """One thread per process that cuts the bodies whose deadline passed."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self._heap: list[tuple[float, int, DeadlineInput]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, body: DeadlineInput) -> None:
        with self.lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="body-deadlines", daemon=True
                )
                self._thread.start()
            heapq.heappush(self._heap, (body.deadline, next(self._order), body))
            self.lock.notify()

    def _run(self) -> None:
        with self.lock:
            while True:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    heapq.heappop(self._heap)[2].cut()
                wait = self._heap[0][0] - now if self._heap else None
                self.lock.wait(wait)


_watchers: dict[int, DeadlineWatcher] = {}


def watcher() -> DeadlineWatcher:
    """This process's watcher (a forked worker starts its own thread)."""
    pid = os.getpid()
    found = _watchers.get(pid)
    return found if found is not None else _watchers.setdefault(pid, DeadlineWatcher())
