"""Inputs a red-team probe turned into 500s, and JSON sign-ins that were not
counted by the sign-in limits (issue 14, low)."""

from __future__ import annotations

import io

import pytest

from tests.helpers import PASSWORD
from tests.helpers import AuthActions


@pytest.mark.parametrize("path", ["/login", "/register"])
def test_a_username_sent_as_a_file_is_a_400(client, auth, path):
    response = client.post(
        path,
        data={
            "username": (io.BytesIO(b"alice"), "name.txt"),
            "password": PASSWORD,
            "confirm": PASSWORD,
            "csrf_token": auth.csrf_token(path),
        },
    )
    assert response.status_code == 400


@pytest.mark.parametrize("username", [42, {"a": 1}, None])
def test_a_json_username_that_is_not_text_is_a_400(client, auth, username):
    response = client.post(
        "/login",
        json={"username": username, "password": PASSWORD},
        headers={"X-CSRFToken": auth.csrf_token()},
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "path", ["/history", "/history/export.csv", "/history/export.json"]
)
@pytest.mark.parametrize("field", ["start", "end"])
def test_the_last_representable_day_is_a_400(client, signed_in, path, field):
    response = client.get(f"{path}?{field}=9999-12-31")
    assert response.status_code == 400
    assert "9999-12-30" in response.text


def json_sign_in(client, auth, password: str):
    return client.post(
        "/login",
        json={"username": "alice", "password": password},
        headers={"X-CSRFToken": auth.csrf_token()},
    )


def test_json_sign_ins_count_against_the_limits(make_app):
    app = make_app(LOGIN_LIMIT_ACCOUNT_IP="3 per minute")
    client = app.test_client()
    auth = AuthActions(client)
    auth.register()
    auth.logout()
    assert json_sign_in(client, auth, PASSWORD).status_code == 302  # JSON works
    auth.logout()
    statuses = [json_sign_in(client, auth, "wrong").status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    assert auth.login("alice", "wrong").status_code == 429  # the form is throttled
    assert json_sign_in(client, auth, "wrong").status_code == 429


def test_form_failures_throttle_json_sign_ins(make_app):
    app = make_app(LOGIN_LIMIT_ACCOUNT="2 per minute")
    client = app.test_client()
    auth = AuthActions(client)
    auth.register()
    auth.logout()
    assert [auth.login("alice", "wrong").status_code for _ in range(2)] == [401, 401]
    assert json_sign_in(client, auth, "wrong").status_code == 429
    assert json_sign_in(client, auth, PASSWORD).status_code == 429
