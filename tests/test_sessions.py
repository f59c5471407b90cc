"""Server-side sessions: logout really ends them, password changes end the
others, idle and absolute timeouts, password policy."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.auth.passwords import common_passwords
from app.auth.passwords import verify_password
from app.extensions import db
from app.models import UserSession
from tests.helpers import PASSWORD
from tests.helpers import AuthActions
from tests.helpers import csrf_token_from


def session_cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def test_cookie_replayed_after_logout_is_rejected(app, client, auth):
    auth.register()
    captured = session_cookie(client)
    auth.logout()
    attacker = app.test_client()
    attacker.set_cookie("session", captured)
    response = attacker.get("/history")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_each_login_is_a_new_registered_session(app, client, auth):
    auth.register()
    auth.logout()
    auth.login()
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(UserSession.id))) == 1


def change_password(client, current, new, confirm=None):
    page = client.get("/account/password").get_data(as_text=True)
    return client.post(
        "/account/password",
        data={
            "current_password": current,
            "new_password": new,
            "confirm": confirm or new,
            "csrf_token": csrf_token_from(page),
        },
    )


def test_password_change_ends_other_sessions_only(app, client, auth, token):
    other_browser = app.test_client()
    AuthActions(other_browser).login()
    assert other_browser.get("/history").status_code == 200
    response = change_password(client, PASSWORD, "a brand new passphrase")
    assert response.status_code == 302
    assert client.get("/history").status_code == 200  # this browser stays in
    assert other_browser.get("/history").status_code == 302  # the other is out
    # API tokens are not revoked silently: the flash message says they still work.
    api = app.test_client().get(
        "/api/predictions", headers={"Authorization": f"Bearer {token}"}
    )
    assert api.status_code == 200
    with app.app_context():
        from app.models import User

        user = db.session.scalar(sa.select(User))
        assert verify_password(user.password_hash, "a brand new passphrase")


def test_password_change_needs_the_current_password(client, signed_in):
    response = change_password(client, "not my password", "a brand new passphrase")
    assert response.status_code == 400
    assert b"The current password is wrong." in response.data


def test_idle_timeout_ends_the_session(app, client, signed_in):
    with app.app_context():
        row = db.session.scalar(sa.select(UserSession))
        row.last_seen_at -= app.config["SESSION_IDLE_TIMEOUT"] + timedelta(minutes=1)
        db.session.commit()
    assert client.get("/history").status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(UserSession)) is None


def test_absolute_timeout_ends_an_active_session(app, client, signed_in):
    with app.app_context():
        row = db.session.scalar(sa.select(UserSession))
        row.created_at -= app.config["PERMANENT_SESSION_LIFETIME"] + timedelta(
            minutes=1
        )
        db.session.commit()
    assert client.get("/history").status_code == 302


@pytest.mark.parametrize("password", ["password123", "Qwertyuiop", "12345678"])
def test_common_passwords_are_refused(client, auth, password):
    response = auth.register("carol", password)
    assert response.status_code == 400
    assert b"most common" in response.data


def test_password_equal_to_username_is_refused(auth):
    response = auth.register("carol.smith", "Carol.Smith")
    assert response.status_code == 400


def test_long_passwords_are_not_truncated(app, client, auth):
    long_password = "x" * 200 + "tail-1"
    auth.register("dana", long_password)
    auth.logout()
    assert auth.login("dana", "x" * 200 + "tail-2").status_code == 401
    assert auth.login("dana", long_password).status_code == 302


def test_shipped_common_password_list_is_loaded():
    passwords = common_passwords()
    assert len(passwords) >= 90 and "password1" in passwords
    assert all(len(p) >= 8 for p in passwords)
