"""A leaked API token opens the JSON API only, and every check of a password
is throttled like sign-in (issue 14, "An API token opens every web page")."""

from __future__ import annotations

import sqlalchemy as sa

from app.auth.passwords import verify_password
from app.extensions import db
from app.models import Prediction
from app.models import User
from tests.helpers import PASSWORD
from tests.helpers import AuthActions
from tests.helpers import bearer
from tests.helpers import csrf_token_from
from tests.helpers import issue_token
from tests.helpers import make_admin

NEW_PASSWORD = "another long enough password"


def test_a_token_opens_the_json_api(client, token):
    assert client.get("/api/predictions", headers=bearer(token)).status_code == 200
    assert client.get("/openapi.json", headers=bearer(token)).status_code == 200


def test_a_leaked_token_opens_no_page_or_form(app, runner):
    owner = app.test_client()
    AuthActions(owner).register()
    make_admin(runner)
    token = issue_token(app, name="leaked")
    attacker = app.test_client()
    headers = {**bearer(token), "Accept": "application/json"}
    for path in ("/", "/history", "/account", "/account/password", "/admin"):
        response = attacker.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.get_json()["error"]["code"] == "token_not_accepted"
        assert "csrf_token" not in response.text
    for path, data in (
        ("/account/password", {"current_password": "guess"}),
        ("/account/tokens", {"name": "backdoor"}),
        ("/account/retention", {"days": "1"}),
        ("/account/delete", {"password": PASSWORD}),
    ):
        response = attacker.post(path, data=data, headers=headers)
        assert response.status_code == 401, path
    assert "Set-Cookie" not in response.headers
    with app.app_context():
        alice = db.session.scalar(sa.select(User).where(User.username == "alice"))
        tokens = db.session.scalars(alice.tokens.select()).all()
        assert [t.name for t in tokens] == ["leaked"]
        assert alice.history_retention_days is None
    # The owner's session is untouched and still works.
    assert owner.get("/account").status_code == 200


def test_a_token_opens_no_result_page_under_predictions(app, token, image_bytes):
    """/predictions/... are pages, though their path starts like /predict."""
    client = app.test_client()
    response = client.post(
        "/predict",
        data=image_bytes("JPEG"),
        headers={**bearer(token), "Content-Type": "image/jpeg"},
    )
    prediction_id = response.get_json()["results"][0]["id"]
    headers = {**bearer(token), "Accept": "application/json"}
    for method, path in (
        ("GET", f"/predictions/{prediction_id}"),
        ("GET", f"/predictions/{prediction_id}/thumbnail.jpg"),
        ("POST", f"/predictions/{prediction_id}/share"),
        ("POST", f"/predictions/{prediction_id}/delete"),
    ):
        response = client.open(path, method=method, headers=headers)
        assert response.status_code == 401, path
        assert response.get_json()["error"]["code"] == "token_not_accepted"
    with app.app_context():
        assert db.session.get(Prediction, prediction_id).share_token is None
    # The API has the thumbnail for token clients.
    thumbnail = client.get(
        f"/api/predictions/{prediction_id}/thumbnail.jpg", headers=bearer(token)
    )
    assert thumbnail.status_code == 200
    assert thumbnail.mimetype == "image/jpeg"
    assert thumbnail.data.startswith(b"\xff\xd8")
    assert thumbnail.headers["Cache-Control"] == "private, max-age=300"
    # A browser without a session is sent to sign in (a page, not JSON), the
    # same way whether the result exists or not: nothing tells them apart.
    for missing_or_not in (999999, prediction_id):
        path = f"/predictions/{missing_or_not}"
        page = client.get(path, headers={"Accept": "text/html"})
        assert page.status_code == 302, path
        assert (
            page.headers["Location"] == f"/login?next=%2Fpredictions%2F{missing_or_not}"
        )
        assert page.mimetype == "text/html"


def wrong_password_change(client, auth: AuthActions):
    page = client.get("/account/password").get_data(as_text=True)
    return client.post(
        "/account/password",
        data={
            "current_password": "a wrong guess",
            "new_password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
            "csrf_token": csrf_token_from(page),
        },
    )


def wrong_account_deletion(client, auth: AuthActions):
    return client.post(
        "/account/delete",
        data={"password": "a wrong guess", "csrf_token": auth.page_csrf_token()},
    )


def test_current_password_guesses_are_throttled(make_app):
    app = make_app(LOGIN_LIMIT_ACCOUNT_IP="3 per minute")
    client = app.test_client()
    auth = AuthActions(client)
    auth.register()
    statuses = [wrong_password_change(client, auth).status_code for _ in range(4)]
    assert statuses == [400, 400, 400, 429]
    limited = wrong_account_deletion(client, auth)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    with app.app_context():
        alice = db.session.scalar(sa.select(User).where(User.username == "alice"))
        assert verify_password(alice.password_hash, PASSWORD)


def test_deletion_guesses_count_against_sign_in(make_app):
    app = make_app(LOGIN_LIMIT_ACCOUNT="2 per minute")
    client = app.test_client()
    auth = AuthActions(client)
    auth.register()
    assert [wrong_account_deletion(client, auth).status_code for _ in range(2)] == [
        400,
        400,
    ]
    auth.logout()
    # One budget per account: the sign-in page is throttled for alice now ...
    assert auth.login("alice", PASSWORD).status_code == 429
    # ... but not for anyone else.
    auth.register("bob")
    assert client.get("/account").status_code == 200


def test_a_right_password_or_a_form_error_costs_nothing(make_app):
    app = make_app(LOGIN_LIMIT_ACCOUNT_IP="1 per minute")
    client = app.test_client()
    auth = AuthActions(client)
    auth.register()
    page = client.get("/account/password").get_data(as_text=True)
    for _ in range(3):  # new passwords that do not match: no password checked
        response = client.post(
            "/account/password",
            data={
                "current_password": "a wrong guess",
                "new_password": NEW_PASSWORD,
                "confirm": "different",
                "csrf_token": csrf_token_from(page),
            },
        )
        assert response.status_code == 400
    response = client.post(
        "/account/password",
        data={
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
            "csrf_token": csrf_token_from(page),
        },
    )
    assert response.status_code == 302
