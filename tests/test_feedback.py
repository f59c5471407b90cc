"""Feedback on predictions: the API, the page's form and fetch, history filters,
exports, the dataset ZIP and the admin figures."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Prediction
from app.models import User
from tests.helpers import add_prediction
from tests.helpers import bearer
from tests.helpers import history
from tests.helpers import shown_filenames
from tests.helpers import user_id


def put(client, prediction_id, body, token=None, headers=None):
    return client.put(
        f"/api/predictions/{prediction_id}/feedback",
        json=body,
        headers=bearer(token) if token else headers or {},
    )


def stored(app, prediction_id) -> Prediction:
    with app.app_context():
        row = db.session.get(Prediction, prediction_id)
        db.session.expunge(row)
        return row


# --------------------------------------------------------------------------
# API


def test_put_confirms_and_the_prediction_json_shows_it(app, client, token):
    pid = add_prediction(app, user_id(app))
    response = put(client, pid, {"correct": True}, token)
    assert response.status_code == 200
    fb = response.get_json()["feedback"]
    assert fb["correct"] is True and fb["label"] == "tabby" and fb["updated_at"]
    again = client.get(f"/api/predictions/{pid}", headers=bearer(token))
    assert again.get_json()["feedback"]["correct"] is True


def test_put_corrects_then_changes_then_delete_clears(app, client, token):
    pid = add_prediction(app, user_id(app))
    first = put(client, pid, {"correct": False, "label": "  Egyptian   cat "}, token)
    assert first.get_json()["feedback"] == {
        "correct": False,
        "label": "Egyptian cat",
        "updated_at": first.get_json()["feedback"]["updated_at"],
    }
    second = put(client, pid, {"correct": False, "label": "a toy tiger"}, token)
    assert second.get_json()["feedback"]["label"] == "a toy tiger"
    assert (
        client.delete(
            f"/api/predictions/{pid}/feedback", headers=bearer(token)
        ).status_code
        == 204
    )
    row = stored(app, pid)
    assert (row.feedback_correct, row.feedback_label, row.feedback_at) == (
        None,
        None,
        None,
    )
    listed = client.get("/api/predictions", headers=bearer(token)).get_json()
    assert listed["items"][0]["feedback"] is None


def test_correcting_to_the_predicted_label_is_a_confirmation(app, client, token):
    pid = add_prediction(app, user_id(app))
    body = put(client, pid, {"correct": False, "label": "tabby"}, token).get_json()
    assert body["feedback"]["correct"] is True
    assert stored(app, pid).feedback_label is None


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ([], "invalid_json"),
        ("yes", "invalid_json"),
        ({}, "invalid_correct"),
        ({"correct": "true"}, "invalid_correct"),
        ({"correct": 1}, "invalid_correct"),
        ({"correct": None}, "invalid_correct"),
        ({"correct": False}, "invalid_label"),
        ({"correct": False, "label": ""}, "invalid_label"),
        ({"correct": False, "label": "   "}, "invalid_label"),
        ({"correct": False, "label": 7}, "invalid_label"),
        ({"correct": False, "label": ["tabby"]}, "invalid_label"),
        ({"correct": False, "label": "x" * 129}, "invalid_label"),
        ({"correct": False, "label": "cat\x00"}, "invalid_label"),
        ({"correct": False, "label": "cat\u202e"}, "invalid_label"),
        ({"correct": True, "label": "tabby"}, "invalid_label"),
    ],
)
def test_put_refuses_wrong_types_with_a_clear_code(app, client, token, body, code):
    pid = add_prediction(app, user_id(app))
    response = put(client, pid, body, token)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code
    assert stored(app, pid).feedback_correct is None


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("{not json", "application/json"),
        ('{"correct": true}', "text/plain"),
        ("", "application/json"),
        (b"\xff\xfe", "application/json"),
    ],
)
def test_put_refuses_malformed_json(app, client, token, data, content_type):
    pid = add_prediction(app, user_id(app))
    response = client.put(
        f"/api/predictions/{pid}/feedback",
        data=data,
        content_type=content_type,
        headers=bearer(token),
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"


def test_a_longest_label_is_accepted(app, client, token):
    pid = add_prediction(app, user_id(app))
    response = put(client, pid, {"correct": False, "label": "é" * 128}, token)
    assert response.status_code == 200


def test_other_users_and_missing_predictions_are_404(app, client, token, auth):
    auth.logout()
    auth.register("bob")
    bobs = add_prediction(app, user_id(app, "bob"))
    for pid in (bobs, 999999, 2**31 - 1):
        assert put(client, pid, {"correct": True}, token).status_code == 404
        deleted = client.delete(
            f"/api/predictions/{pid}/feedback", headers=bearer(token)
        )
        assert deleted.status_code == 404
    assert client.put("/api/predictions/99999999999/feedback").status_code == 404
    assert stored(app, bobs).feedback_correct is None


def test_cookie_session_needs_csrf_and_bearer_does_not(app, client, signed_in):
    pid = add_prediction(app, user_id(app))
    without = put(client, pid, {"correct": True})
    assert without.status_code == 400
    assert without.get_json()["error"]["code"] == "csrf_failed"
    with_token = put(
        client,
        pid,
        {"correct": True},
        headers={"X-CSRFToken": signed_in.page_csrf_token()},
    )
    assert with_token.status_code == 200


def test_signed_out_is_401(app, client):
    assert put(client, 1, {"correct": True}).status_code == 401


# --------------------------------------------------------------------------
# Pages


def test_result_page_asks_right_with_the_label_list(app, client, signed_in):
    pid = add_prediction(app, user_id(app))
    html = client.get(f"/predictions/{pid}").get_data(as_text=True)
    assert "Right?" in html
    assert (
        'list="imagenet-labels"' in html and '<datalist id="imagenet-labels">' in html
    )
    assert html.count('name="verdict"') == 3
    assert "Not reviewed yet." in html


def form_post(client, signed_in, pid, **data):
    data.setdefault("csrf_token", signed_in.page_csrf_token())
    # As a browser's form post: it asks for a page.
    return client.post(
        f"/predictions/{pid}/feedback", data=data, headers={"Accept": "text/html"}
    )


def test_form_post_without_javascript_redirects_back(app, client, signed_in):
    pid = add_prediction(app, user_id(app))
    response = form_post(
        client, signed_in, pid, verdict="wrong", label="tiger cat", next="/history"
    )
    assert response.status_code == 302 and response.location == "/history"
    page = client.get(f"/predictions/{pid}").get_data(as_text=True)
    assert "You corrected it to: tiger cat." in page
    response = form_post(client, signed_in, pid, verdict="right")
    assert response.location == f"/predictions/{pid}"
    assert stored(app, pid).feedback_correct is True
    form_post(client, signed_in, pid, verdict="clear")
    assert stored(app, pid).feedback_correct is None


def test_form_post_refuses_an_outside_next(app, client, signed_in):
    pid = add_prediction(app, user_id(app))
    response = form_post(
        client, signed_in, pid, verdict="right", next="https://evil.example/"
    )
    assert response.location == f"/predictions/{pid}"


def test_fetch_gets_json(app, client, signed_in):
    pid = add_prediction(app, user_id(app))
    response = client.post(
        f"/predictions/{pid}/feedback",
        data={"verdict": "wrong", "label": "lynx"},
        headers={
            "Accept": "application/json",
            "X-CSRFToken": signed_in.page_csrf_token(),
        },
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["feedback"]["label"] == "lynx"
    assert body["message"] == "You corrected it to: lynx."


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"verdict": "maybe"},
        {"verdict": "wrong"},
        {"verdict": "wrong", "label": ""},
        {"verdict": "wrong", "label": "y" * 200},
    ],
)
def test_form_post_bad_input_goes_back_with_the_reason(app, client, signed_in, data):
    pid = add_prediction(app, user_id(app))
    response = form_post(client, signed_in, pid, **data)
    assert response.status_code == 303
    assert response.location == f"/predictions/{pid}"
    page = client.get(response.location).get_data(as_text=True)
    assert "flash-error" in page
    assert stored(app, pid).feedback_correct is None
    fetched = client.post(
        f"/predictions/{pid}/feedback",
        data=data,
        headers={
            "Accept": "application/json",
            "X-CSRFToken": signed_in.page_csrf_token(),
        },
    )
    assert fetched.status_code == 400
    assert fetched.get_json()["error"]["code"].startswith("invalid_")


def test_form_post_without_csrf_or_by_others_is_refused(app, client, signed_in, auth):
    pid = add_prediction(app, user_id(app))
    assert (
        client.post(
            f"/predictions/{pid}/feedback", data={"verdict": "right"}
        ).status_code
        == 400
    )
    auth.logout()
    auth.register("bob")
    response = form_post(client, auth, pid, verdict="right")
    assert response.status_code == 404
    assert stored(app, pid).feedback_correct is None


# --------------------------------------------------------------------------
# History filters and exports


def reviewed_three(app, client, token) -> tuple[int, int, int]:
    owner = user_id(app)
    confirmed = add_prediction(app, owner, filename="confirmed.jpg")
    corrected = add_prediction(app, owner, filename="=corrected.jpg", label="dog")
    unreviewed = add_prediction(app, owner, filename="unreviewed.jpg")
    put(client, confirmed, {"correct": True}, token)
    put(client, corrected, {"correct": False, "label": "=wolf"}, token)
    return confirmed, corrected, unreviewed


def test_history_filters_by_review_state(app, client, token):
    reviewed_three(app, client, token)
    for review, name in [
        ("confirmed", "confirmed.jpg"),
        ("corrected", "=corrected.jpg"),
        ("unreviewed", "unreviewed.jpg"),
    ]:
        status, html = history(client, review=review)
        assert status == 200
        assert shown_filenames(html) == [name]
    status, _ = history(client, review="bogus")
    assert status == 400


def test_csv_and_json_exports_carry_the_feedback(app, client, token):
    reviewed_three(app, client, token)
    text = client.get("/history/export.csv").get_data(as_text=True)
    rows = {r["filename"]: r for r in csv.DictReader(io.StringIO(text))}
    assert rows["confirmed.jpg"]["feedback"] == "confirmed"
    assert rows["confirmed.jpg"]["corrected_label"] == "tabby"
    assert rows["'=corrected.jpg"]["corrected_label"] == "'=wolf"  # no formula
    assert rows["unreviewed.jpg"]["feedback"] == ""
    items = client.get("/history/export.json?review=corrected").get_json()["items"]
    assert [i["feedback"]["label"] for i in items] == ["=wolf"]


def test_dataset_zip_has_thumbnails_and_a_labels_csv(app, client, token):
    confirmed, corrected, unreviewed = reviewed_three(app, client, token)
    response = client.get("/history/dataset.zip")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    names = archive.namelist()
    assert names[-1] == "labels.csv"
    assert sorted(names[:-1]) == sorted(
        f"images/{i}.jpg" for i in (confirmed, corrected, unreviewed)
    )
    assert archive.read(f"images/{confirmed}.jpg").startswith(b"\xff\xd8")
    rows = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode())))
    by_file = {r["file"]: r for r in rows}
    assert by_file[f"images/{corrected}.jpg"]["corrected_label"] == "'=wolf"
    assert by_file[f"images/{corrected}.jpg"]["predicted_label"] == "dog"
    assert by_file[f"images/{unreviewed}.jpg"]["corrected_label"] == ""
    only = client.get("/history/dataset.zip?review=corrected").get_data()
    assert zipfile.ZipFile(io.BytesIO(only)).namelist() == [
        f"images/{corrected}.jpg",
        "labels.csv",
    ]


def test_dataset_zip_holds_only_the_users_rows(app, client, token, auth):
    add_prediction(app, user_id(app))
    auth.logout()
    auth.register("bob")
    archive = zipfile.ZipFile(io.BytesIO(client.get("/history/dataset.zip").data))
    assert archive.namelist() == ["labels.csv"]


# --------------------------------------------------------------------------
# Admin


def test_admin_page_shows_agreement_and_top_corrections(app, client, token):
    reviewed_three(app, client, token)
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == "alice"))
        user.is_admin = True
        db.session.commit()
    html = client.get("/admin").get_data(as_text=True)
    assert 'id="feedback-agreement"' in html
    assert "50.0 %" in html  # 1 of 2 reviewed agreed
    assert "=wolf" in html
