"""Accounts: registration, sign-in, sign-out, sessions and CSRF on forms."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.auth.security import safe_next_url
from app.extensions import db
from app.models import User
from tests.helpers import PASSWORD
from tests.helpers import csrf_token_from


@pytest.mark.real_password_hash
def test_register_creates_user_with_argon2id_hash_and_signs_in(client, auth, app):
    response = auth.register("Alice")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    with app.app_context():
        user = db.session.scalar(sa.select(User))
        assert user.username == "alice"
        # OWASP minimum for argon2id: m >= 19 MiB, t >= 2 (ours: m=64 MiB, t=3).
        assert user.password_hash.startswith("$argon2id$")
        params = dict(
            part.split("=") for part in user.password_hash.split("$")[3].split(",")
        )
        assert int(params["m"]) >= 19 * 1024 and int(params["t"]) >= 2
        assert PASSWORD not in user.password_hash
    assert client.get("/history").status_code == 200


def test_register_rejects_taken_username_case_insensitively(auth, client):
    auth.register("alice")
    auth.logout()
    response = auth.register("ALICE")
    assert response.status_code == 400
    assert b"That username is taken." in response.data


@pytest.mark.parametrize(
    ("username", "password", "confirm", "message"),
    [
        ("al", PASSWORD, PASSWORD, b"3-32 characters"),
        ("bad name!", PASSWORD, PASSWORD, b"3-32 characters"),
        ("bob", "short", "short", b"8 to 256 characters"),
        ("bob", "x" * 257, "x" * 257, b"8 to 256 characters"),
        ("bob", PASSWORD, PASSWORD + "!", b"The passwords do not match."),
    ],
)
def test_register_validation(client, auth, username, password, confirm, message):
    response = client.post(
        "/register",
        data={
            "username": username,
            "password": password,
            "confirm": confirm,
            "csrf_token": auth.csrf_token("/register"),
        },
    )
    assert response.status_code == 400
    assert message in response.data


def test_login_and_logout(client, auth):
    auth.register()
    auth.logout()
    assert client.get("/history").status_code == 302
    response = auth.login()
    assert response.status_code == 302
    assert client.get("/history").status_code == 200
    response = auth.logout()
    assert response.status_code == 302
    assert client.get("/history").headers["Location"].startswith("/login")


def test_unknown_user_and_wrong_password_get_the_same_answer(client, auth):
    auth.register()
    auth.logout()
    wrong_password = auth.login("alice", "not the password")
    unknown_user = auth.login("nobody", PASSWORD)
    assert wrong_password.status_code == unknown_user.status_code == 401
    message = b"Unknown username or wrong password."
    assert message in wrong_password.data and message in unknown_user.data


def test_logout_is_post_only(client, signed_in):
    assert client.get("/logout").status_code == 405
    assert client.get("/history").status_code == 200


def test_forms_reject_missing_csrf_token(client, auth):
    auth.register()
    response = client.post("/logout")
    assert response.status_code == 400
    assert b"security token" in response.data
    assert client.get("/history").status_code == 200  # still signed in
    anonymous = client.application.test_client()
    response = anonymous.post(
        "/login", data={"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 400


def test_login_redirects_to_safe_next_only(client, auth):
    auth.register()
    auth.logout()
    assert auth.login(next_url="/history").headers["Location"] == "/history"
    auth.logout()
    assert auth.login(next_url="https://evil.example/").headers["Location"] == "/"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/history", "/history"),
        ("/history?page=2", "/history?page=2"),
        ("//evil.example/", None),
        ("/\\evil.example", None),
        ("https://evil.example/", None),
        ("javascript:alert(1)", None),
        ("/ok\r\nSet-Cookie: x=1", None),
        ("", None),
        (None, None),
    ],
)
def test_safe_next_url(target, expected):
    assert safe_next_url(target) == expected


def test_session_cookie_flags(client, auth, app):
    response = auth.register()
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Expires=" in cookie  # permanent session with a lifetime
    assert "Secure" not in cookie  # plain HTTP in tests; see SESSION_COOKIE_SECURE


def test_secure_cookie_when_configured(app, auth):
    app.config["SESSION_COOKIE_SECURE"] = True
    assert "Secure" in auth.register().headers["Set-Cookie"]


def test_login_starts_a_new_session(client, auth):
    auth.register()
    auth.logout()
    client.get("/login")
    before = client.get_cookie("session")
    auth.login()
    after = client.get_cookie("session")
    assert after is not None and (before is None or before.value != after.value)


def test_pages_need_sign_in(client):
    for path in ("/", "/history", "/account", "/predictions/1"):
        response = client.get(path)
        assert response.status_code == 302
        assert "/login" in response.headers["Location"]


def test_login_page_has_csrf_token(client):
    assert csrf_token_from(client.get("/login").get_data(as_text=True))
