"""Who is asking: session cookies for browsers, bearer tokens for programs.

CSRF is checked here rather than by CSRFProtect's default hook, because a
request that authenticates with ``Authorization: Bearer`` needs no CSRF token
(a browser cannot attach that header to a cross-site request).
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask
from flask import g
from flask import request
from flask_login import current_user
from werkzeug.exceptions import Unauthorized

from .extensions import csrf
from .extensions import db
from .extensions import login_manager
from .models import ApiToken
from .models import User
from .models import hash_token
from .models import utcnow

SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "TRACE"))
# Record a token's last use at most this often, not on every request.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


class InvalidToken(Unauthorized):
    description = "The API token is missing, malformed, unknown or revoked."
    code_name = "invalid_token"


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    csrf.init_app(app)
    app.before_request(authenticate_and_check_csrf)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    if not user_id.isdigit():
        return None
    return db.session.get(User, int(user_id))


def authenticate_and_check_csrf() -> None:
    """Bearer token if one is sent; otherwise the session, with CSRF enforced."""
    g.auth_method = "session"
    header = request.headers.get("Authorization")
    if header is not None:
        token = token_from_header(header)
        # flask-login reads the current user from g._login_user; setting it
        # authenticates this request only, without writing a session cookie.
        g._login_user = token.user
        g.auth_method = "token"
        return
    if request.method in SAFE_METHODS:
        return
    if request.blueprint == "api" and not current_user.is_authenticated:
        return  # the API answers 401 itself; there is no session to forge
    csrf.protect()


def token_from_header(header: str) -> ApiToken:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise InvalidToken("Use 'Authorization: Bearer <token>'.")
    token = db.session.scalar(
        sa.select(ApiToken).where(ApiToken.token_hash == hash_token(value.strip()))
    )
    if token is None or not token.active:
        raise InvalidToken()
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > TOKEN_TOUCH_INTERVAL:
        token.last_used_at = now
        db.session.commit()
    return token


def safe_next_url(target: str | None) -> str | None:
    """Return ``target`` only if it is a path on this site, else None."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if any(ch in target for ch in "\r\n\t\\") or any(ord(ch) < 32 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target
