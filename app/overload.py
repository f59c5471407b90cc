"""Shed load fast instead of queueing forever (as TF Serving and Triton do).

Each worker admits a bounded number of inference requests (/predict and the
upload form) at once; the next one gets 503 + Retry-After straight away instead
of waiting in a queue until a client or proxy times out. The check runs before
anything else in the request (no database, no session), so a refusal costs
next to nothing. The bound counts requests being decoded, waiting for the model
or in it; Gunicorn needs more threads than the bound so that refusals are
answered while the admitted requests work.
"""

from __future__ import annotations

import threading

from flask import Flask
from flask import current_app
from flask import g
from flask import request

from .inference import InferenceError

EXTENSION_KEY = "snapclass.admission"
GUARDED_ENDPOINTS = frozenset({"api.predict", "web.upload"})


class Overloaded(InferenceError):
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
    """Register first: before_request hooks run in registration order (so this
    runs before authentication), after_request hooks in reverse (so the
    Retry-After fix runs after Flask-Limiter stamped its own)."""
    app.extensions[EXTENSION_KEY] = AdmissionControl(
        app.config["MAX_INFLIGHT_PER_WORKER"]
    )
    app.before_request(admit)
    app.teardown_request(release)
    app.after_request(retry_soon_when_overloaded)


def admit() -> None:
    if request.endpoint not in GUARDED_ENDPOINTS or request.method != "POST":
        return
    control: AdmissionControl = current_app.extensions[EXTENSION_KEY]
    if not control.try_enter():
        g.overloaded = True
        raise Overloaded("The server is at capacity right now. Retry in a moment.")
    g.admitted = True


def release(_exc: BaseException | None) -> None:
    if g.pop("admitted", False):
        current_app.extensions[EXTENSION_KEY].leave()


def retry_soon_when_overloaded(response):
    if g.get("overloaded"):
        response.headers["Retry-After"] = "1"
    return response
