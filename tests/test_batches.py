"""Batches: created by the API, filled by /predict, shown, exported, deleted;
a user only ever touches their own."""

from __future__ import annotations

import csv
import io
import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Batch
from app.models import Prediction
from tests.helpers import PASSWORD
from tests.helpers import ApiClient
from tests.helpers import add_prediction
from tests.helpers import make_image_bytes
from tests.helpers import user_id


def batch_ids(app) -> list[int | None]:
    with app.app_context():
        return list(db.session.scalars(sa.select(Prediction.batch_id)))


def test_create_a_batch_and_fill_it_with_predict(app, api):
    response = api.post_json("/api/batches", {"name": "  Holiday\t2026 "})
    assert response.status_code == 201
    batch = response.get_json()
    assert batch["name"] == "Holiday 2026"
    assert batch["url"] == f"/batches/{batch['id']}"
    ok = api.predict(
        make_image_bytes(color=(1, 2, 3)),
        make_image_bytes(color=(200, 10, 10)),
        batch_id=str(batch["id"]),
    )
    assert ok.status_code == 200
    assert batch_ids(app) == [batch["id"], batch["id"]]
    item = api.get(f"/api/predictions/{ok.get_json()['results'][0]['id']}").get_json()
    assert item["batch_id"] == batch["id"]


def test_an_empty_name_gets_a_dated_default(api):
    assert api.post_json("/api/batches", {}).get_json()["name"].startswith("Upload 20")
    assert api.post_json("/api/batches", {"name": None}).status_code == 201


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": 5}, "invalid_name"),
        ({"name": ["a"]}, "invalid_name"),
        ({"name": "x" * 101}, "invalid_name"),
        ({"name": "a\x07b"}, "invalid_name"),
    ],
)
def test_bad_batch_names_are_400(api, body, code):
    response = api.post_json("/api/batches", body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code


@pytest.mark.parametrize("body", [[], "name", 3])
def test_a_body_that_is_not_an_object_is_400(api, body):
    response = api.post_json("/api/batches", body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"


def test_cookie_session_needs_csrf_to_create(client, signed_in):
    session = ApiClient(client)
    refused = session.post_json("/api/batches", {"name": "x"})
    assert refused.get_json()["error"]["code"] == "csrf_failed"
    headers = {"X-CSRFToken": signed_in.page_csrf_token()}
    assert session.post_json("/api/batches", {"name": "x"}, headers).status_code == 201


@pytest.mark.parametrize("value", ["abc", "0", "-1", "１", "99999999999", "1.5"])
def test_predict_refuses_a_bad_batch_id(app, api, value):
    response = api.predict(make_image_bytes(color=(1, 2, 3)), batch_id=value)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_batch_id"
    assert batch_ids(app) == []


def test_nobody_adds_to_another_users_batch(app, client, api, auth):
    auth.logout()
    auth.register("bob")
    bobs = make_batch(app, user_id(app, "bob"), "bob's")
    response = api.predict(make_image_bytes(color=(1, 2, 3)), batch_id=str(bobs))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_batch_id"
    assert batch_ids(app) == []
    # and bob's pages are 404 for alice
    auth.logout()
    auth.login("alice", PASSWORD)
    assert client.get(f"/batches/{bobs}").status_code == 404
    csrf = auth.page_csrf_token()
    response = client.post(f"/batches/{bobs}/delete", data={"csrf_token": csrf})
    assert response.status_code == 404
    with app.app_context():
        assert db.session.get(Batch, bobs) is not None


def make_batch(app, owner: int, name: str = "Folder") -> int:
    with app.app_context():
        row = Batch(user_id=owner, name=name)
        db.session.add(row)
        db.session.commit()
        return row.id


def put_in(app, batch_id: int, *prediction_ids: int) -> None:
    with app.app_context():
        db.session.execute(
            sa.update(Prediction)
            .where(Prediction.id.in_(prediction_ids))
            .values(batch_id=batch_id)
        )
        db.session.commit()


def test_batch_page_counts_labels_and_shows_not_sure_first(app, client, signed_in):
    owner = user_id(app)
    batch = make_batch(app, owner, "Garden")
    ids = [
        add_prediction(app, owner, label="daisy", score=0.9, filename="sure.jpg"),
        add_prediction(app, owner, label="daisy", score=0.1, filename="unsure.jpg"),
        add_prediction(app, owner, label="bee", score=0.05, filename="least.jpg"),
        add_prediction(app, owner, label="bee", score=0.8, filename="bee.jpg"),
    ]
    put_in(app, batch, *ids)
    add_prediction(app, owner, filename="elsewhere.jpg")
    html = client.get(f"/batches/{batch}").get_data(as_text=True)
    assert '<h1 id="batch-heading">Garden</h1>' in html
    assert "4 photos · 2 not sure" in html
    shown = re.findall(r'class="card-title"><a href="[^"]+">([^<]+)</a>', html)
    assert shown == ["least.jpg", "unsure.jpg", "sure.jpg", "bee.jpg"]
    labels = re.findall(r'class="prediction-label">([^<]+)<', html)
    assert labels == ["bee", "daisy"]
    history = client.get("/history").get_data(as_text=True)
    assert f'href="/batches/{batch}">Garden</a>' in history


def test_batch_exports_hold_only_its_photos(app, client, signed_in):
    owner = user_id(app)
    batch = make_batch(app, owner)
    inside = add_prediction(app, owner, filename="in.jpg")
    add_prediction(app, owner, filename="out.jpg")
    put_in(app, batch, inside)
    text = client.get(f"/history/export.csv?batch={batch}").get_data(as_text=True)
    assert [r["filename"] for r in csv.DictReader(io.StringIO(text))] == ["in.jpg"]
    assert (
        client.get("/history/export.csv?batch=abc").status_code == 400
    )  # a filtered download is what was asked, or nothing
    assert client.get("/history?batch=abc").status_code == 400


def test_delete_a_batch_and_its_photos_with_csrf(app, client, signed_in):
    owner = user_id(app)
    batch = make_batch(app, owner)
    inside = add_prediction(app, owner)
    kept = add_prediction(app, owner)
    put_in(app, batch, inside)
    path = f"/batches/{batch}/delete"
    assert client.post(path).status_code == 400  # no CSRF token
    response = client.post(path, data={"csrf_token": signed_in.page_csrf_token()})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Batch, batch) is None
        assert list(db.session.scalars(sa.select(Prediction.id))) == [kept]
    assert client.get(f"/batches/{batch}").status_code == 404


@pytest.mark.parametrize("path", ["/batches/0", "/batches/abc", "/batches/99999999999"])
def test_missing_batches_are_404(client, signed_in, path):
    assert client.get(path).status_code == 404


def test_batch_pages_need_sign_in(client):
    assert client.get("/batches/1").status_code == 302
    assert client.post("/api/batches", json={}).status_code == 401


def test_deleting_the_account_deletes_its_batches(app, client, signed_in):
    owner = user_id(app)
    put_in(app, make_batch(app, owner), add_prediction(app, owner))
    response = client.post(
        "/account/delete",
        data={"password": PASSWORD, "csrf_token": signed_in.page_csrf_token()},
    )
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Batch.id))) == 0
