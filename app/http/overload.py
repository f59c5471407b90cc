"""Shed load fast instead of queueing forever (as TF Serving and Triton do).

Each worker admits a bounded number of inference requests (/predict and the
upload form) at once; the next one gets 503 + Retry-After straight away instead
of waiting in a queue until a client or proxy times out. The bound counts
requests being decoded, waiting for the model or in it; Gunicorn needs more
threads than the bound so that refusals are answered while the admitted
requests work. The check runs right after authentication, so a refusal costs
one token or session lookup and never the model; requests nobody signed take
no slot (their views refuse them without reading the body), so slow anonymous
clients cannot hold the slots.

A second, small bound (``MAX_ANONYMOUS_BODIES_PER_WORKER``) limits how many
bodies from signed-out clients (the sign-in and sign-up forms) a worker reads
at once, so that slow ones cannot take every thread.
"""

from __future__ import annotations

import threading

from flask import Flask
from flask import current_app
from flask import g
from flask import request
from flask_login import current_user

EXTENSION_KEY = "snapclass.admission"
ANONYMOUS_KEY = "snapclass.anonymous_bodies"
GUARDED_ENDPOINTS = frozenset({"api.predict", "web.upload"})


class Overloaded(Exception):
    """Every slot is taken: 503 with a short Retry-After (``app/errors.py``)."""

    code = "overloaded"


class AdmissionControl:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    def try_enter(self) -> bool:
        return self._slots.acquire(blocking=False)

    def leave(self) -> None:
        self._slots.release()


def init_app(app: Flask) -> None:
    """Register after authentication and before the rate limits:
    before_request hooks run in registration order, after_request hooks in
    reverse (so the Retry-After fix runs after Flask-Limiter stamped its own)."""
    app.extensions[EXTENSION_KEY] = AdmissionControl(
        app.config["MAX_INFLIGHT_PER_WORKER"]
    )
    app.extensions[ANONYMOUS_KEY] = AdmissionControl(
        app.config["MAX_ANONYMOUS_BODIES_PER_WORKER"]
    )
    app.before_request(admit)
    app.teardown_request(release)
    app.after_request(retry_soon_when_overloaded)


def admit() -> None:
    if request.endpoint not in GUARDED_ENDPOINTS or request.method != "POST":
        return
    if not current_user.is_authenticated:
        return  # refused by the view, unread
    control: AdmissionControl = current_app.extensions[EXTENSION_KEY]
    if not control.try_enter():
        g.overloaded = True
        raise Overloaded("The server is at capacity right now. Retry in a moment.")
    g.admitted = True


def read_anonymous_body() -> None:
    """Read a signed-out client's whole body (a sign-in or sign-up form) in
    one of the worker's few slots for that; 503 at once when all are taken."""
    control: AdmissionControl = current_app.extensions[ANONYMOUS_KEY]
    if not control.try_enter():
        g.overloaded = True
        raise Overloaded("The server is busy right now. Retry in a moment.")
    try:
        request.get_data(parse_form_data=True)
    finally:
        control.leave()


def release(_exc: BaseException | None) -> None:
    if g.pop("admitted", False):
        current_app.extensions[EXTENSION_KEY].leave()


def retry_soon_when_overloaded(response):
    if g.get("overloaded"):
        response.headers["Retry-After"] = "1"
    return response
