"""Rate limits (Flask-Limiter): sign-in throttling and per-user /predict limits.

Counters live in ``RATELIMIT_STORAGE_URI``. With the default ``memory://`` each
Gunicorn worker counts on its own, so a client effectively gets the limit once
per worker and per instance; point it at Redis (``redis://host:6379``) for one
global count. ``/api/system`` reports which one is in force.
"""

from __future__ import annotations

import logging

from flask import Flask
from flask import current_app
from flask import g
from flask import request
from flask_limiter import RequestLimit
from flask_login import current_user

from .extensions import limiter

log = logging.getLogger(__name__)


def client_ip() -> str:
    """The client address (already rewritten by a trusted proxy, if any)."""
    return request.remote_addr or "unknown"


def submitted_username() -> str:
    return (request.form.get("username") or "").strip().lower()[:64]


def login_key_account_ip() -> str:
    return f"login:{submitted_username()}|{client_ip()}"


def login_key_ip() -> str:
    return f"login-ip:{client_ip()}"


def login_key_account() -> str:
    return f"login-user:{submitted_username()}"


def login_failed(response) -> bool:
    """Only failed sign-ins count against the limits."""
    return response.status_code == 401


def predict_key() -> str:
    """One budget per API token, or per user for browser sessions."""
    token = getattr(g, "api_token", None)
    if token is not None:
        return f"predict-token:{token.id}"
    return f"predict-user:{current_user.get_id()}"


def predict_limit() -> str:
    return current_app.config["PREDICT_RATE_LIMIT"]


def not_signed_in() -> bool:
    return not current_user.is_authenticated


def log_breach(limit: RequestLimit) -> None:
    log.warning(
        "rate limit hit: %s on %s %s from %s",
        limit.limit,
        request.method,
        request.path,
        client_ip(),
    )


def storage_is_shared(app: Flask) -> bool:
    return not app.config["RATELIMIT_STORAGE_URI"].startswith("memory://")


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_ON_BREACH_CALLBACK", log_breach)
    limiter.init_app(app)


def warn_if_per_process(app: Flask, workers: int) -> None:
    """Say loudly when limits are not global (called by the Gunicorn config)."""
    if not storage_is_shared(app) and workers > 1:
        log.warning(
            "RATE LIMITS ARE PER WORKER: RATELIMIT_STORAGE_URI is memory://, so "
            "each of the %d workers keeps its own counters. Set it to a Redis URL "
            "for limits that hold across workers and instances.",
            workers,
        )
