"""Who is asking: session cookies for browsers, bearer tokens for programs.

CSRF is checked here rather than by CSRFProtect's default hook, because a
request that authenticates with ``Authorization: Bearer`` needs no CSRF token
(a browser cannot attach that header to a cross-site request).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import Flask
from flask import current_app
from flask import g
from flask import request
from flask import session
from flask_login import current_user
from flask_login import login_user
from flask_login import logout_user
from werkzeug.exceptions import Unauthorized

from app.extensions import csrf
from app.extensions import db
from app.extensions import login_manager
from app.http.overload import read_anonymous_body
from app.http.params import is_ascii_integer
from app.http.responses import is_api_path
from app.models import ApiToken
from app.models import User
from app.models import UserSession
from app.models import hash_token
from app.models import utcnow

SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "TRACE"))
# The only forms a signed-out client posts (CSRF-checked against login CSRF).
ANONYMOUS_FORMS = frozenset(("auth.login", "auth.register"))
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


SESSION_KEY = "sid"
# Liveness and readiness: answered without authentication, whatever is sent.
PROBE_ENDPOINTS = frozenset({"api.healthz", "api.readyz"})
# Sent at sign-out and account deletion: the browser drops what it cached of
# the account (thumbnails), so the next person at the computer sees none of it.
CLEAR_SITE_DATA = '"cache"'
# Record a session's last request at most this often, not on every request.
SESSION_TOUCH_INTERVAL = timedelta(minutes=1)


def _session_row_id(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def start_user_session(user: User) -> None:
    """Sign ``user`` in with a fresh session (no fixation), registered server-side."""
    secret = secrets.token_urlsafe(32)
    db.session.add(
        UserSession(
            id=_session_row_id(secret),
            user=user,
            user_agent=(request.user_agent.string or "")[:255] or None,
        )
    )
    db.session.commit()
    session.clear()
    session.permanent = True
    session[SESSION_KEY] = secret
    login_user(user)


def end_user_session() -> None:
    """Sign out: the server forgets the session, so a copied cookie is useless."""
    secret = session.get(SESSION_KEY)
    if secret:
        db.session.execute(
            sa.delete(UserSession).where(UserSession.id == _session_row_id(secret))
        )
        db.session.commit()
    logout_user()
    session.clear()


def end_other_sessions(user: User) -> int:
    """End every session of ``user`` except this one (after a password change)."""
    current = session.get(SESSION_KEY)
    query = sa.delete(UserSession).where(UserSession.user_id == user.id)
    if current:
        query = query.where(UserSession.id != _session_row_id(current))
    count = db.session.execute(query).rowcount
    db.session.commit()
    return count


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The user of a live, registered session; expired or ended ones are None."""
    secret = session.get(SESSION_KEY)
    if not is_ascii_integer(user_id) or not secret:
        return None
    # The user comes in the same query: every signed-in request needs it.
    row = db.session.get(
        UserSession, _session_row_id(secret), options=[so.joinedload(UserSession.user)]
    )
    if row is None or row.user_id != int(user_id):
        return None
    now = utcnow()
    config = current_app.config
    if (
        now - row.created_at > config["PERMANENT_SESSION_LIFETIME"]
        or now - row.last_seen_at > config["SESSION_IDLE_TIMEOUT"]
    ):
        db.session.delete(row)
        db.session.commit()
        return None
    if now - row.last_seen_at > SESSION_TOUCH_INTERVAL:
        row.last_seen_at = now
        db.session.commit()
    return row.user


class TokenNotAccepted(Unauthorized):
    description = (
        "API tokens work only on the JSON API (/predict and /api/...); "
        "pages and forms need a signed-in session."
    )
    code_name = "token_not_accepted"


def authenticate_and_check_csrf() -> None:
    """Bearer token if one is sent; otherwise the session, with CSRF enforced.

    A token opens the JSON API only: on pages and forms (password, tokens,
    retention, admin) a leaked token must not act as its owner.
    """
    if request.routing_exception is not None:
        return  # no such route: a 404 (or 405) is the answer, whoever asks
    if request.endpoint in PROBE_ENDPOINTS:
        return  # probes send what they are configured to; never look it up
    g.auth_method = "session"
    header = request.headers.get("Authorization")
    if header is not None:
        if not takes_tokens():
            raise TokenNotAccepted()
        token = token_from_header(header)
        # flask-login reads the current user from g._login_user; setting it
        # authenticates this request only, without writing a session cookie.
        g._login_user = token.user
        g.api_token = token
        g.auth_method = "token"
        return
    if request.method in SAFE_METHODS:
        return
    if not current_user.is_authenticated:
        if request.endpoint not in ANONYMOUS_FORMS:
            # Nothing to forge without a session: login_required or the API
            # refuses it, without waiting for a body that may never come.
            return
        read_anonymous_body()
    csrf.protect()


def takes_tokens() -> bool:
    """The JSON API, and the public API docs, where a token changes nothing."""
    return is_api_path(request.path) or request.blueprint == "docs"


def token_from_header(header: str) -> ApiToken:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise InvalidToken("Use 'Authorization: Bearer <token>'.")
    token = db.session.scalar(
        sa.select(ApiToken)
        .where(ApiToken.token_hash == hash_token(value.strip()))
        .options(so.joinedload(ApiToken.user))  # one query, not two
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
