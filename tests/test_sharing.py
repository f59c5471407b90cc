"""Public links to one result: share, view without signing in, revoke."""

from __future__ import annotations

import io
import re

import sqlalchemy as sa
from PIL import Image

from app.extensions import db
from app.models import Prediction
from tests.helpers import add_prediction
from tests.helpers import user_id


def share(client, auth, prediction_id: int):
    return client.post(
        f"/predictions/{prediction_id}/share",
        data={"csrf_token": auth.page_csrf_token()},
    )


def unshare(client, auth, prediction_id: int):
    return client.post(
        f"/predictions/{prediction_id}/unshare",
        data={"csrf_token": auth.page_csrf_token()},
    )


def share_token(app, prediction_id: int) -> str | None:
    with app.app_context():
        return db.session.get(Prediction, prediction_id).share_token


def test_sharing_creates_an_unguessable_link_shown_to_the_owner(client, signed_in, app):
    row = add_prediction(app, user_id(app), filename="secret-name.jpg")
    response = share(client, signed_in, row)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/predictions/{row}"
    token = share_token(app, row)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # token_urlsafe(32)
    html = client.get(f"/predictions/{row}").get_data(as_text=True)
    assert f"http://localhost/s/{token}" in html
    assert "Revoke link" in html
    # Sharing again keeps the same link.
    share(client, signed_in, row)
    assert share_token(app, row) == token


def test_public_page_shows_the_result_and_nothing_else(client, signed_in, app):
    alice = user_id(app)
    row = add_prediction(app, alice, filename="secret-name.jpg", label="tabby")
    other = add_prediction(app, alice, filename="other.jpg", label="beagle")
    share(client, signed_in, row)
    token = share_token(app, row)
    visitor = app.test_client()
    response = visitor.get(f"/s/{token}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "tabby" in html and "resnet50" in html
    assert "random-weights-banner" in html
    for private in ("alice", "secret-name", "other.jpg", "beagle", "/predictions/"):
        assert private not in html, private
    assert f'src="/s/{token}/thumbnail.jpg"' in html
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "noindex" in response.headers["X-Robots-Tag"]
    # The owner's other results and thumbnails stay private.
    assert visitor.get(f"/predictions/{other}").status_code == 302
    assert visitor.get(f"/predictions/{row}/thumbnail.jpg").status_code == 302


def test_public_thumbnail_is_served_by_share_token(client, signed_in, app):
    row = add_prediction(app, user_id(app))
    share(client, signed_in, row)
    response = app.test_client().get(f"/s/{share_token(app, row)}/thumbnail.jpg")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert Image.open(io.BytesIO(response.data)).size == (32, 24)


def test_revoked_links_are_404_and_a_new_share_gets_a_new_token(client, signed_in, app):
    row = add_prediction(app, user_id(app))
    share(client, signed_in, row)
    old = share_token(app, row)
    response = unshare(client, signed_in, row)
    assert response.status_code == 302
    assert share_token(app, row) is None
    visitor = app.test_client()
    assert visitor.get(f"/s/{old}").status_code == 404
    assert visitor.get(f"/s/{old}/thumbnail.jpg").status_code == 404
    share(client, signed_in, row)
    new = share_token(app, row)
    assert new != old
    assert visitor.get(f"/s/{old}").status_code == 404
    assert visitor.get(f"/s/{new}").status_code == 200


def test_unknown_and_malformed_tokens_are_404(client, app):
    for token in ("x" * 43, "short", "a" * 200, "%00", "..%2f..%2fetc"):
        assert app.test_client().get(f"/s/{token}").status_code == 404


def test_others_cannot_share_or_revoke_my_results(client, signed_in, auth, app):
    row = add_prediction(app, user_id(app))
    share(client, signed_in, row)
    token = share_token(app, row)
    auth.logout()
    auth.register("bob")
    assert share(client, auth, row).status_code == 404
    assert unshare(client, auth, row).status_code == 404
    assert share_token(app, row) == token
    # Bob can open the public link like anyone else, and nothing more.
    assert client.get(f"/s/{token}").status_code == 200
    assert client.get(f"/predictions/{row}").status_code == 404


def test_sharing_needs_post_with_csrf(client, signed_in, app):
    row = add_prediction(app, user_id(app))
    assert client.get(f"/predictions/{row}/share").status_code == 405
    assert client.post(f"/predictions/{row}/share").status_code == 400
    assert share_token(app, row) is None


def test_deleting_a_shared_result_ends_its_link(client, signed_in, app):
    row = add_prediction(app, user_id(app))
    share(client, signed_in, row)
    token = share_token(app, row)
    client.post(
        f"/predictions/{row}/delete", data={"csrf_token": signed_in.page_csrf_token()}
    )
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Prediction.id))) == 0
    assert app.test_client().get(f"/s/{token}").status_code == 404


def test_shared_results_are_tagged_in_history_and_exports(client, signed_in, app):
    row = add_prediction(app, user_id(app))
    share(client, signed_in, row)
    assert "tag-shared" in client.get("/history").get_data(as_text=True)
    body = client.get("/history/export.json").get_json()
    assert body["items"][0]["shared"] is True
    assert share_token(app, row) not in client.get("/history/export.csv").get_data(
        as_text=True
    )
