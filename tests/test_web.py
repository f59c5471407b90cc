"""Pages: upload form, results, history, thumbnails, account tokens."""

from __future__ import annotations

import io
import re

import sqlalchemy as sa
from PIL import Image

from app.extensions import db
from app.models import ApiToken
from app.models import Prediction
from tests.helpers import jpeg


def upload(client, auth, files):
    return client.post(
        "/upload",
        data={"image": files, "csrf_token": auth.page_csrf_token()},
        content_type="multipart/form-data",
    )


def test_upload_page_is_a_plain_multipart_form(client, signed_in):
    html = client.get("/").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in html
    assert re.search(r'<input[^>]*name="image"[^>]*multiple', html)
    assert 'name="csrf_token"' in html


def test_random_weights_banner_on_every_page(client, signed_in):
    for path in ("/", "/history", "/account"):
        assert "random-weights-banner" in client.get(path).get_data(as_text=True)
    anonymous = client.application.test_client()
    assert "random-weights-banner" in anonymous.get("/login").get_data(as_text=True)


def test_upload_one_image_shows_its_result(client, signed_in, app):
    response = upload(client, signed_in, [jpeg("cat.jpg")])
    assert response.status_code == 302
    page = client.get(response.headers["Location"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "cat.jpg" in html
    assert html.count("<progress") == 5
    assert "%" in html and "random" in html


def test_upload_several_images_lists_them_in_order(client, signed_in):
    files = [jpeg("first.jpg"), jpeg("second.jpg", color=(0, 0, 200))]
    response = upload(client, signed_in, files)
    assert response.status_code == 302
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert html.index("first.jpg") < html.index("second.jpg")


def test_upload_with_the_folder_and_camera_inputs_left_empty(client, signed_in):
    # A plain post sends every file input of the form; an empty one is a part
    # with no file name and no bytes, which is no photo (and not "empty").
    empty = (io.BytesIO(b""), "")
    response = upload(client, signed_in, [jpeg("cat.jpg"), empty, empty])
    assert response.status_code == 302
    assert "cat.jpg" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert upload(client, signed_in, [empty, empty]).status_code == 400


def test_upload_errors_are_shown_on_the_form(client, signed_in, app):
    response = upload(client, signed_in, [(io.BytesIO(b"plain text"), "notes.jpg")])
    assert response.status_code == 400
    assert "notes.jpg" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Prediction.id))) == 0


def test_upload_without_csrf_is_refused(client, signed_in):
    response = client.post(
        "/upload", data={"image": [jpeg()]}, content_type="multipart/form-data"
    )
    assert response.status_code == 400


def test_thumbnail_is_a_jpeg_with_nosniff(client, signed_in):
    location = upload(client, signed_in, [jpeg(size=(800, 600))]).headers["Location"]
    response = client.get(location + "/thumbnail.jpg")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    thumbnail = Image.open(io.BytesIO(response.data))
    assert thumbnail.size == (256, 192)


def test_history_lists_newest_first_and_paginates(client, signed_in, app):
    app.config["HISTORY_PAGE_SIZE"] = 2
    for name in ("one.jpg", "two.jpg", "three.jpg"):
        upload(client, signed_in, [jpeg(name)])
    first = client.get("/history").get_data(as_text=True)
    assert first.index("three.jpg") < first.index("two.jpg")
    assert "one.jpg" not in first
    second = client.get("/history?page=2").get_data(as_text=True)
    assert "one.jpg" in second and "three.jpg" not in second


def test_history_escapes_file_names(client, signed_in):
    upload(client, signed_in, [jpeg("<img src=x onerror=alert(1)>.jpg")])
    html = client.get("/history").get_data(as_text=True)
    assert "<img src=x onerror" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in html


def test_delete_from_history(client, signed_in, app):
    location = upload(client, signed_in, [jpeg()]).headers["Location"]
    prediction_id = int(location.rsplit("/", 1)[1])
    response = client.post(
        f"/predictions/{prediction_id}/delete",
        data={"csrf_token": signed_in.page_csrf_token()},
    )
    assert response.status_code == 302
    assert client.get(location).status_code == 404
    with app.app_context():
        assert db.session.get(Prediction, prediction_id) is None


def test_other_users_pages_are_404(client, signed_in, auth):
    location = upload(client, signed_in, [jpeg()]).headers["Location"]
    auth.logout()
    auth.register("bob")
    assert client.get(location).status_code == 404
    assert client.get(location + "/thumbnail.jpg").status_code == 404
    prediction_id = location.rsplit("/", 1)[1]
    response = client.post(
        f"/predictions/{prediction_id}/delete",
        data={"csrf_token": auth.page_csrf_token()},
    )
    assert response.status_code == 404


def test_create_token_shows_it_once_and_stores_only_a_hash(client, signed_in, app):
    response = client.post(
        "/account/tokens",
        data={"name": "script", "csrf_token": signed_in.page_csrf_token()},
    )
    html = response.get_data(as_text=True)
    plain = re.search(r"(sc_[A-Za-z0-9_\-]{20,})", html).group(1)
    assert response.headers["Cache-Control"] == "no-store"
    assert plain not in client.get("/account").get_data(as_text=True)
    with app.app_context():
        row = db.session.scalar(sa.select(ApiToken))
        assert row.name == "script" and plain not in row.token_hash
    api = client.application.test_client()
    me = api.get("/api/predictions", headers={"Authorization": f"Bearer {plain}"})
    assert me.status_code == 200


def test_revoke_token(client, signed_in, app):
    client.post(
        "/account/tokens",
        data={"name": "script", "csrf_token": signed_in.page_csrf_token()},
    )
    with app.app_context():
        token_id = db.session.scalar(sa.select(ApiToken.id))
    response = client.post(
        f"/account/tokens/{token_id}/revoke",
        data={"csrf_token": signed_in.page_csrf_token()},
    )
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(ApiToken, token_id).revoked_at is not None


def test_html_error_pages(client, signed_in):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "text/html" in response.headers["Content-Type"]
    assert "Page not found" in response.get_data(as_text=True)


def test_oversized_form_upload_gets_413_page(client, signed_in, app):
    token = signed_in.page_csrf_token()
    app.config["MAX_CONTENT_LENGTH"] = 2048
    response = client.post(
        "/upload",
        data={"image": [jpeg(size=(900, 900))], "csrf_token": token},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert "Upload too large" in response.get_data(as_text=True)
