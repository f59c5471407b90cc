"""Numbers from users (app/http/params.py): one parser, a 400 for anything but ASCII
digits, and never a 500 on any route that reads a number."""

from __future__ import annotations

import io
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.http.params import MAX_ID
from app.http.params import BadParameter
from app.http.params import parse_decimal
from app.http.params import parse_id_list
from app.http.params import parse_int
from app.http.params import parse_page
from app.models import Prediction
from app.models import User
from app.services.storage import thumbnail_id
from tests.helpers import bearer
from tests.helpers import make_image_bytes

# What people and programs send instead of a plain number.
BAD_NUMBERS = ["²", "１２", "1e3", "-1", "0x10", " 7 ", "7\n", "1_0", "٣", "9" * 5000]
# The empty value means "not given" where a parameter is optional.
WALK_VALUES = [*BAD_NUMBERS, ""]


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_parse_int_refuses_anything_but_ascii_digits(value):
    with pytest.raises(BadParameter) as caught:
        parse_int(value, "page")
    assert caught.value.code == "invalid_page"
    assert "whole number" in caught.value.message


def test_parse_int_bounds_default_and_json_integers():
    assert parse_int("", "top_k", default=5) == 5
    assert parse_int(None, "top_k", default=5) == 5
    assert parse_int("007", "top_k") == 7
    assert parse_int(12, "top_k") == 12
    assert parse_int(str(MAX_ID), "id") == MAX_ID
    for value in (str(MAX_ID + 1), True, 2.0, "0", -3):
        with pytest.raises(BadParameter):
            parse_int(value, "id", minimum=1)


@pytest.mark.parametrize("value", [*BAD_NUMBERS, "nan", "inf", "1.", "0.5.1", "50%"])
def test_parse_decimal_refuses_what_is_not_a_plain_decimal(value):
    if value == "1.":
        assert parse_decimal(value, "x", minimum=0, maximum=1, example="0.5") == 1.0
        return
    with pytest.raises(BadParameter) as caught:
        parse_decimal(value, "min_confidence", minimum=0, maximum=1, example="0.5")
    assert caught.value.code == "invalid_min_confidence"


def test_parse_decimal_accepts_plain_decimals():
    for text, number in (("0", 0.0), ("1", 1.0), ("0.25", 0.25), (".5", 0.5)):
        assert parse_decimal(text, "x", minimum=0, maximum=1, example="0.5") == number
    assert parse_decimal(0.75, "x", minimum=0, maximum=1, example="0.5") == 0.75


def test_parse_page_clamps_far_pages_and_id_lists_are_bounded():
    assert parse_page(None) == 1
    assert parse_page(str(MAX_ID)) == 1_000_000
    with pytest.raises(BadParameter):
        parse_page("0")
    assert parse_id_list(["3", "", "4"], "ids", limit=5) == [3, 4]
    with pytest.raises(BadParameter):
        parse_id_list(["1"] * 6, "ids", limit=5)


# --------------------------------------------------------------------------
# Every route and parameter


@pytest.fixture
def owner(app, client, signed_in, token):
    """alice, signed in, with one prediction; yields (prediction id, csrf)."""
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == "alice"))
        row = Prediction(
            user_id=user.id,
            filename="a.jpg",
            sha256="0" * 64,
            width=1,
            height=1,
            size_bytes=1,
            mime_type="image/jpeg",
            model_name="resnet50",
            weights="random",
            backend="openvino",
            top_label="x",
            top_score=0.5,
            label_scores=[{"class_id": 1, "wnid": "n0", "label": "x", "score": 0.5}],
            timing_ms={"decode": 0.0, "preprocess": 0.0, "inference": 0.0},
            thumbnail_id=thumbnail_id(b""),
        )
        db.session.add(row)
        db.session.commit()
        return row.id, signed_in.page_csrf_token()


def predictions_count(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count(Prediction.id)))


@pytest.mark.parametrize("name", ["top_k", "min_confidence", "batch_id"])
@pytest.mark.parametrize("where", ["form", "query"])
def test_predict_numbers(client, app, token, name, where):
    for value in WALK_VALUES:
        check_predict_number(client, app, token, value, name, where)


def check_predict_number(client, app, token, value, name, where):
    photo = (io.BytesIO(make_image_bytes("JPEG")), "x.jpg")
    data = {"image": [photo]}
    query = ""
    if where == "form":
        data[name] = value
    else:
        query = f"?{name}={quote(value)}"
    response = client.post(
        "/predict" + query,
        data=data,
        headers=bearer(token),
        content_type="multipart/form-data",
    )
    if value == "":
        assert response.status_code == 200
        return
    assert response.status_code == 400, (value, response.get_json())
    assert response.get_json()["error"]["code"] == f"invalid_{name}"
    assert predictions_count(app) == 0


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/predictions", "page"),
        ("/api/predictions", "per_page"),
        ("/history", "page"),
        ("/results", "ids"),
    ],
)
def test_query_numbers(client, owner, path, name):
    for value in WALK_VALUES:
        response = client.get(f"{path}?{name}={quote(value)}")
        if value == "":
            # Not given: the default page; /results without ids shows nothing.
            assert response.status_code == (404 if name == "ids" else 200)
            continue
        assert response.status_code == 400, value
        if path.startswith("/api/"):
            assert response.get_json()["error"]["code"] == f"invalid_{name}"
        else:
            assert f"{name} must be".encode() in response.data


def test_bulk_delete_ids(client, app, owner):
    prediction_id, csrf = owner
    for value in BAD_NUMBERS:
        response = client.post(
            "/history/delete",
            data={"ids": [str(prediction_id), value], "csrf_token": csrf},
        )
        assert response.status_code == 400, value
        assert b"ids must be" in response.data
        assert predictions_count(app) == 1  # nothing is deleted on a bad request
    # The empty value is ignored.
    response = client.post(
        "/history/delete",
        data={"ids": [str(prediction_id), ""], "csrf_token": csrf},
    )
    assert response.status_code == 302
    assert predictions_count(app) == 0


@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", "/predictions/{}"),
        ("GET", "/predictions/{}/thumbnail.jpg"),
        ("POST", "/predictions/{}/delete"),
        ("POST", "/predictions/{}/share"),
        ("POST", "/predictions/{}/unshare"),
        ("GET", "/api/predictions/{}"),
        ("DELETE", "/api/predictions/{}"),
        ("POST", "/account/tokens/{}/revoke"),
        ("POST", "/predictions/{}/feedback"),
        ("PUT", "/api/predictions/{}/feedback"),
        ("DELETE", "/api/predictions/{}/feedback"),
        ("GET", "/batches/{}"),
        ("POST", "/batches/{}/delete"),
    ],
)
def test_ids_in_urls(client, app, owner, method, template):
    _, csrf = owner
    for value in [*WALK_VALUES, str(MAX_ID + 1), "0"]:
        url = template.format(quote(value, safe=""))
        response = client.open(url, method=method, data={"csrf_token": csrf})
        assert response.status_code == 404, url
    assert predictions_count(app) == 1


def test_retention_days(client, app, owner):
    _, csrf = owner
    for value in WALK_VALUES:
        response = client.post(
            "/account/retention", data={"days": value, "csrf_token": csrf}
        )
        assert response.status_code == 400, value
        assert b"Choose one of the offered retention periods" in response.data
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == "alice"))
        assert user.history_retention_days is None


def test_confidence_percent(client, owner):
    _, csrf = owner
    for value in WALK_VALUES:
        response = client.post(
            "/preferences/confidence",
            data={"percent": value, "csrf_token": csrf, "next": "/history"},
        )
        assert response.status_code == 302, value
        with client.session_transaction() as session:
            assert "min_confidence" not in session
        page = client.get("/history").get_data(as_text=True)
        assert "The threshold must be a whole number from 0 to 100." in page
