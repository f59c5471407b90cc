"""The account page: password link, retention setting, account deletion."""

from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models import ApiToken
from app.models import Prediction
from app.models import User
from app.models import UserSession
from tests.helpers import PASSWORD
from tests.helpers import AuthActions
from tests.helpers import add_prediction
from tests.helpers import bearer
from tests.helpers import user_id


def counts(app, owner: int) -> dict[str, int]:
    with app.app_context():
        return {
            model.__name__: db.session.scalar(
                sa.select(sa.func.count())
                .select_from(model)
                .where(model.user_id == owner)
            )
            for model in (Prediction, ApiToken, UserSession)
        }


def delete_account(client, auth, password: str = PASSWORD):
    return client.post(
        "/account/delete",
        data={"password": password, "csrf_token": auth.page_csrf_token()},
    )


def test_account_page_has_every_setting(client, signed_in):
    html = client.get("/account").get_data(as_text=True)
    assert 'href="/account/password"' in html
    assert 'action="/account/retention"' in html
    assert '<option selected value="0">forever</option>' in html
    assert 'action="/account/delete"' in html
    assert 'action="/account/tokens"' in html


def test_delete_account_removes_the_user_and_all_their_data(
    client, signed_in, auth, token, app
):
    alice = user_id(app)
    row = add_prediction(app, alice)
    client.post(
        f"/predictions/{row}/share", data={"csrf_token": signed_in.page_csrf_token()}
    )
    with app.app_context():
        share_token = db.session.get(Prediction, row).share_token
    # A second browser, and another user who must keep everything.
    other_browser = app.test_client()
    AuthActions(other_browser).login("alice")
    bob_browser = app.test_client()
    AuthActions(bob_browser).register("bob")
    bob = user_id(app, "bob")
    add_prediction(app, bob)
    assert counts(app, alice) == {"Prediction": 1, "ApiToken": 1, "UserSession": 2}

    response = delete_account(client, signed_in)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    login_page = client.get("/login").get_data(as_text=True)
    assert "Your account and all its data are deleted." in login_page

    with app.app_context():
        assert db.session.get(User, alice) is None
    assert counts(app, alice) == {"Prediction": 0, "ApiToken": 0, "UserSession": 0}
    assert counts(app, bob) == {"Prediction": 1, "ApiToken": 0, "UserSession": 1}
    # Signed out here and in the other browser; the token and link are dead.
    assert client.get("/history").status_code == 302
    assert other_browser.get("/history").status_code == 302
    assert client.get("/api/predictions", headers=bearer(token)).status_code == 401
    assert client.get(f"/s/{share_token}").status_code == 404
    assert bob_browser.get("/history").status_code == 200
    # The name is free again, and the old password opens nothing.
    assert auth.login("alice").status_code == 401


def test_delete_account_needs_the_right_password(client, signed_in, app):
    alice = user_id(app)
    add_prediction(app, alice)
    response = delete_account(client, signed_in, password="not my password")
    assert response.status_code == 400
    assert "The password is wrong." in response.get_data(as_text=True)
    response = delete_account(client, signed_in, password="")
    assert response.status_code == 400
    assert counts(app, alice)["Prediction"] == 1
    assert client.get("/history").status_code == 200


def test_delete_account_needs_csrf_and_post(client, signed_in, app):
    alice = user_id(app)
    response = client.post("/account/delete", data={"password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/account/delete").status_code == 405
    with app.app_context():
        assert db.session.get(User, alice) is not None


def test_delete_account_needs_a_sign_in(client):
    response = client.post("/account/delete", data={"password": PASSWORD})
    # No session: sent to sign in, without reading the body (issue 14).
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
