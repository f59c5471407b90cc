"""Rate limits (Flask-Limiter): password guesses and per-user /predict limits.

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

from app.extensions import limiter
from app.http.proxies import client_ip

log = logging.getLogger(__name__)


def submitted_username() -> str:
    """The username a sign-in names, from any body the form accepts: form
    fields or JSON, as Flask-WTF reads them (a file part is no username)."""
    value = request.form.get("username")
    if value is None and request.is_json:
        body = request.get_json(silent=True)
        value = body.get("username") if isinstance(body, dict) else None
    return value.strip().lower()[:64] if isinstance(value, str) else ""


def guessed_account() -> str:
    """Whose password is being tried: the signed-in user's, else the named one."""
    if current_user.is_authenticated:
        return current_user.username
    return submitted_username()


def login_key_account_ip() -> str:
    return f"login:{guessed_account()}|{client_ip()}"


def login_key_ip() -> str:
    return f"login-ip:{client_ip()}"


def login_key_account() -> str:
    return f"login-user:{guessed_account()}"


def count_failed_password_check() -> None:
    """Call when a password was checked and was wrong: it counts against the
    limits of :func:`password_check_limits`."""
    g.password_check_failed = True


def password_check_failed(_response) -> bool:
    return bool(g.get("password_check_failed"))


# One budget per account and address, per address and per account, shared by
# every route that checks a password (sign-in, password change, deletion): a
# guess is a guess wherever it is made.
PASSWORD_CHECK_LIMITS = (
    ("LOGIN_LIMIT_ACCOUNT_IP", login_key_account_ip, "password-account-ip"),
    ("LOGIN_LIMIT_IP", login_key_ip, "password-ip"),
    ("LOGIN_LIMIT_ACCOUNT", login_key_account, "password-account"),
)


def password_check_limits(view):
    """Count failed password checks only; once over a limit, 429 with
    Retry-After until the window moves on (so nobody is locked out for good)."""
    for setting, key_func, scope in PASSWORD_CHECK_LIMITS:
        view = limiter.shared_limit(
            lambda setting=setting: current_app.config[setting],
            scope,
            key_func=key_func,
            methods=["POST"],
            deduct_when=password_check_failed,
        )(view)
    return view


def predict_key() -> str:
    """One budget per user, whichever tokens or sessions they send from (a
    new token must not buy a new budget)."""
    return f"predict-user:{current_user.get_id()}"


def register_key_ip() -> str:
    return f"register-ip:{client_ip()}"


def register_key_total() -> str:
    return "register-all"


def register_limits(view):
    """Sign-up attempts per address and in total (429 with Retry-After): each
    costs an argon2 hash, and each tells whether a username is taken."""
    for setting, key_func in (
        ("REGISTER_LIMIT_IP", register_key_ip),
        ("REGISTER_LIMIT_TOTAL", register_key_total),
    ):
        view = limiter.limit(
            lambda setting=setting: current_app.config[setting],
            key_func=key_func,
            methods=["POST"],
        )(view)
    return view


def predict_limit() -> str:
    return current_app.config["PREDICT_RATE_LIMIT"]


def predict_limits(view):
    """PREDICT_RATE_LIMIT per user, one budget shared by every route that
    classifies (``/predict`` and the upload form): the same work must not get a
    second budget through another door."""
    return limiter.shared_limit(
        predict_limit,
        "predict",
        key_func=predict_key,
        exempt_when=not_signed_in,
    )(view)


def batch_key() -> str:
    return f"batches-user:{current_user.get_id()}"


def batch_limits(view):
    """BATCH_RATE_LIMIT new batches per user (each is a row that costs nothing
    to ask for)."""
    return limiter.limit(
        lambda: current_app.config["BATCH_RATE_LIMIT"],
        key_func=batch_key,
        methods=["POST"],
        exempt_when=not_signed_in,
    )(view)


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
