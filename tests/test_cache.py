"""The result cache: identical bytes through the same model skip the network."""

from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models import Prediction
from tests.helpers import ApiClient
from tests.helpers import AuthActions
from tests.helpers import make_image_bytes

PHOTO = make_image_bytes("JPEG", size=(500, 400), color=(90, 160, 20))


def test_second_upload_of_same_bytes_is_a_cache_hit(api, app):
    first = api.predict(PHOTO)
    second = api.predict(PHOTO)
    one, two = first.get_json()["results"][0], second.get_json()["results"][0]
    assert one["cached"] is False and two["cached"] is True
    assert two["predictions"] == one["predictions"]
    assert two["id"] != one["id"]  # the user's own history entry, every time
    assert 'cache;desc="1/1"' in second.headers["Server-Timing"]
    assert 'cache;desc="0/1"' in first.headers["Server-Timing"]
    assert second.get_json()["batch_size"] == 0
    with app.app_context():
        rows = db.session.scalars(sa.select(Prediction).order_by(Prediction.id)).all()
        assert [r.cached for r in rows] == [False, True]
        # The hit shares the first row's thumbnail (stored once, issue 23).
        assert rows[1].thumbnail_id == rows[0].thumbnail_id


def test_cache_hit_skips_decoding_and_inference(api, classifier, monkeypatch):
    api.predict(PHOTO)

    def fail(*args, **kwargs):
        raise AssertionError("decoded or classified despite a cache hit")

    monkeypatch.setattr(classifier, "decode", fail)
    monkeypatch.setattr(classifier, "classify", fail)
    response = api.predict(PHOTO)
    assert response.status_code == 200
    assert response.get_json()["results"][0]["cached"] is True


def test_cache_answers_only_the_same_user_unless_shared(api, auth, app):
    """Another user's identical upload is no hit: a hit would tell bob that
    someone sent alice's private photo before (issue 14)."""
    api.predict(PHOTO)
    other = app.test_client()
    bob = AuthActions(other)
    bob.register("bob")

    def bob_predicts(data):
        response = ApiClient(other).predict(
            (data, "mine.jpg"), headers={"X-CSRFToken": bob.page_csrf_token()}
        )
        return response, response.get_json()["results"][0]

    response, result = bob_predicts(PHOTO)
    assert result["cached"] is False
    assert 'cache;desc="0/1"' in response.headers["Server-Timing"]
    # A deployment that opts in shares the cache across users.
    app.config["RESULT_CACHE_SHARED"] = True
    other_photo = make_image_bytes("JPEG", size=(500, 400), color=(9, 16, 200))
    first = api.predict(other_photo)
    assert first.get_json()["results"][0]["cached"] is False
    response, result = bob_predicts(other_photo)
    assert result["cached"] is True and result["filename"] == "mine.jpg"
    listing = other.get("/api/predictions").get_json()
    assert result["id"] in [item["id"] for item in listing["items"]]


def test_mixed_batch_runs_only_new_images_and_keeps_order(api):
    api.predict(PHOTO)
    fresh = make_image_bytes("PNG", color=(1, 2, 250))
    response = api.predict(fresh, PHOTO)
    body = response.get_json()
    assert [r["cached"] for r in body["results"]] == [False, True]
    assert [r["filename"] for r in body["results"]] == ["img0.jpg", "img1.jpg"]
    assert body["batch_size"] == 1
    assert 'cache;desc="1/2"' in response.headers["Server-Timing"]


def test_other_model_or_more_labels_is_a_miss(api, classifier, monkeypatch):
    api.predict(PHOTO)
    assert (
        api.predict(PHOTO, top_k="8").get_json()["results"][0]["cached"] is False
    )  # stored 5 labels cannot answer top 8
    monkeypatch.setattr(classifier, "fingerprint", "other-weights/openvino-f32")
    assert api.predict(PHOTO).get_json()["results"][0]["cached"] is False


def test_cache_can_be_turned_off(api, app):
    app.config["RESULT_CACHE"] = False
    api.predict(PHOTO)
    assert api.predict(PHOTO).get_json()["results"][0]["cached"] is False
