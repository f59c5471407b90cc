"""Response headers on every response (error pages included), the ``__Host-``
cookie name, and the one way a stored JPEG is answered."""

from __future__ import annotations

from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask import make_response
from flask import request

# Our pages need no inline script or style; previews are blob: URLs.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' blob: data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
STATIC_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def init_app(app: Flask) -> None:
    if app.config["SESSION_COOKIE_SECURE"]:
        # Browsers only accept __Host- cookies that are Secure, host-only and
        # Path=/, so a sibling subdomain cannot plant or overwrite ours.
        app.config["SESSION_COOKIE_NAME"] = "__Host-session"
        app.config["SESSION_COOKIE_DOMAIN"] = False
        app.config["SESSION_COOKIE_PATH"] = "/"
    app.after_request(add_security_headers)


def add_security_headers(response: Response) -> Response:
    for name, value in STATIC_HEADERS.items():
        response.headers.setdefault(name, value)
    if served_a_signed_in_user():
        # Someone's own pages and data: never kept by a browser or a proxy
        # (views that allow some caching, like thumbnails, say so themselves).
        response.headers.setdefault("Cache-Control", "no-store")
    if request.is_secure and current_app.config["HSTS_SECONDS"]:
        response.headers.setdefault(
            "Strict-Transport-Security",
            f"max-age={current_app.config['HSTS_SECONDS']}; includeSubDomains",
        )
    return response


# A history page shows many thumbnails: the browser may reuse them this long,
# never a shared cache; sign-out clears them (Clear-Site-Data).
THUMBNAIL_CACHE_CONTROL = "private, max-age=300"


def jpeg_response(data: bytes, cache_control: str) -> Response:
    """A stored JPEG (a thumbnail), never sniffed as anything else."""
    response = make_response(data)
    response.headers["Content-Type"] = "image/jpeg"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = cache_control
    return response


def served_a_signed_in_user() -> bool:
    """Whether this request loaded a signed-in user. Only loaded users are
    looked at: a response that never asked who is signed in (static files)
    holds nothing of theirs, and checking would cost a session query."""
    user = g.get("_login_user")
    return user is not None and user.is_authenticated
