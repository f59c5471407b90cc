"""One JSON line per request, and a request id echoed in ``X-Request-ID``.

The id comes from the incoming ``X-Request-ID`` header only when the TCP peer is
one of ``TRUSTED_PROXIES`` (nginx sets it to its own ``$request_id``, so the
proxy's log and ours share ids); from anyone else the header is ignored and a
fresh id is made. Every value goes through ``json.dumps``, which escapes quotes
and control characters, so no client can forge or split a log line. Raw paths
are never logged (share links carry secrets in them): the URL rule is. A
classified request's line also carries its timings, cache hits and batch size,
which the view hands in (:func:`note_classification`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC
from datetime import datetime

import sqlalchemy as sa
from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask import request

from app.http.proxies import address_in
from app.http.proxies import parse_networks
from app.http.proxies import peer_address
from app.observability.metrics import Classification
from app.observability.metrics import method_label
from app.observability.metrics import route_label

LOGGER_NAME = "snapclass.request"
HEADER = "X-Request-ID"
REQUEST_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")

log = logging.getLogger(LOGGER_NAME)


class StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is when a record is emitted."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logger() -> None:
    """Request records go to stdout as bare JSON lines, once per process."""
    if not any(isinstance(h, StdoutHandler) for h in log.handlers):
        handler = StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def request_id_from(environ: dict, header: str | None, trusted: tuple) -> str:
    """The proxy's id when a trusted proxy sent a well-formed one, else a new one."""
    if (
        header
        and REQUEST_ID.fullmatch(header)
        and address_in(peer_address(environ), trusted)
    ):
        return header
    return uuid.uuid4().hex


def before_request() -> None:
    g.request_id = request_id_from(
        request.environ,
        request.headers.get(HEADER),
        current_app.extensions["snapclass.trusted_proxies"],
    )
    g.setdefault("request_started", time.perf_counter())


def after_request(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id is None:
        return response
    response.headers[HEADER] = request_id
    if current_app.config["REQUEST_LOG"]:
        log.info(json.dumps(request_record(response), separators=(",", ":")))
    return response


def note_classification(outcome: Classification) -> None:
    """Add a classified request's figures to its log line (the view that
    classified calls this with the service's outcome)."""
    g.request_log_classification = {
        "timing_ms": {k: round(v, 2) for k, v in outcome.timing_ms.items()},
        "cache_hits": outcome.cache_hits,
        "batch_size": outcome.network_batch_size,
    }


def request_record(response: Response) -> dict:
    """What one log line says about the request (never bodies, paths or secrets)."""
    seconds = g.get("request_seconds")
    if seconds is None:
        seconds = time.perf_counter() - g.get("request_started", time.perf_counter())
    user_id = logged_user_id()
    record = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "event": "request",
        "request_id": g.get("request_id"),
        "method": method_label(),
        "route": route_label(),
        "endpoint": request.endpoint,
        "status": response.status_code,
        "duration_ms": round(seconds * 1000.0, 2),
        "user_id": user_id,
        "auth": g.get("auth_method") if user_id is not None else None,
    }
    record.update(g.get("request_log_classification", {}))  # note_classification
    return record


def logged_user_id() -> int | None:
    """Who the request authenticated as, without a database query.

    flask-login keeps the user in ``g._login_user`` once something asked for
    it; the id comes from the session's identity map, so an expired row (after
    a rollback, say with the database down) is never reloaded for the log.
    """
    user = g.get("_login_user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    try:
        identity = sa.inspect(user).identity
    except sa.exc.NoInspectionAvailable:
        return None
    return identity[0] if identity else None


def init_app(app: Flask) -> None:
    app.extensions["snapclass.trusted_proxies"] = parse_networks(
        app.config["TRUSTED_PROXIES"], "TRUSTED_PROXIES"
    )
    configure_logger()
    app.before_request(before_request)
    app.after_request(after_request)
