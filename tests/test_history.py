"""History: search, dates, sort, pages, bulk delete, exports, retention, and the
"not sure" threshold (``min_confidence`` on /predict, the web setting)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Prediction
from app.models import User
from tests.helpers import NOW
from tests.helpers import ApiClient
from tests.helpers import add_prediction
from tests.helpers import bearer
from tests.helpers import history
from tests.helpers import issue_token
from tests.helpers import make_image_bytes
from tests.helpers import shown_filenames
from tests.helpers import user_id

# --------------------------------------------------------------------------
# Search, dates, sort, pages


def test_search_by_label_is_case_insensitive(client, signed_in, app):
    alice = user_id(app)
    add_prediction(app, alice, label="tabby cat", filename="one.jpg")
    add_prediction(app, alice, label="golden retriever", filename="two.jpg")
    status, html = history(client, q="TABBY")
    assert status == 200
    assert shown_filenames(html) == ["one.jpg"]
    assert "1 prediction match" in html


def test_search_treats_like_wildcards_literally(client, signed_in, app):
    alice = user_id(app)
    add_prediction(app, alice, label="100% sure", filename="percent.jpg")
    add_prediction(app, alice, label="great_white_shark", filename="shark.jpg")
    add_prediction(app, alice, label="plain", filename="plain.jpg")
    assert shown_filenames(history(client, q="%")[1]) == ["percent.jpg"]
    assert shown_filenames(history(client, q="_")[1]) == ["shark.jpg"]


def test_date_range_is_inclusive_in_utc(client, signed_in, app):
    alice = user_id(app)
    day = datetime(2024, 3, 10, tzinfo=UTC)
    add_prediction(
        app, alice, filename="before.jpg", created_at=day - timedelta(seconds=1)
    )
    add_prediction(app, alice, filename="first.jpg", created_at=day)
    add_prediction(
        app, alice, filename="last.jpg", created_at=day + timedelta(days=2, hours=23)
    )
    add_prediction(app, alice, filename="after.jpg", created_at=day + timedelta(days=3))
    status, html = history(client, start="2024-03-10", end="2024-03-12", sort="oldest")
    assert status == 200
    assert shown_filenames(html) == ["first.jpg", "last.jpg"]


def test_invalid_dates_are_reported_and_ignored(client, signed_in, app):
    add_prediction(app, user_id(app), filename="kept.jpg")
    status, html = history(client, start="not-a-date")
    assert status == 400
    assert "Not a valid date value" in html
    assert shown_filenames(html) == ["kept.jpg"]
    status, html = history(client, start="2024-05-02", end="2024-05-01")
    assert status == 400
    assert "The end date is before the start date." in html


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("newest", ["c.jpg", "b.jpg", "a.jpg"]),
        ("oldest", ["a.jpg", "b.jpg", "c.jpg"]),
        ("confidence", ["b.jpg", "c.jpg", "a.jpg"]),
        ("uncertain", ["a.jpg", "c.jpg", "b.jpg"]),
        ("label", ["c.jpg", "a.jpg", "b.jpg"]),
    ],
)
def test_sort_orders(client, signed_in, app, sort, expected):
    alice = user_id(app)
    add_prediction(
        app,
        alice,
        filename="a.jpg",
        label="lynx",
        score=0.1,
        created_at=NOW - timedelta(hours=3),
    )
    add_prediction(
        app,
        alice,
        filename="b.jpg",
        label="zebra",
        score=0.9,
        created_at=NOW - timedelta(hours=2),
    )
    add_prediction(
        app,
        alice,
        filename="c.jpg",
        label="Axolotl",
        score=0.5,
        created_at=NOW - timedelta(hours=1),
    )
    status, html = history(client, sort=sort)
    assert status == 200
    assert shown_filenames(html) == expected


def test_unknown_sort_is_400(client, signed_in):
    assert history(client, sort="evil")[0] == 400


def test_pages_keep_the_filters(client, signed_in, app):
    app.config["HISTORY_PAGE_SIZE"] = 2
    alice = user_id(app)
    for i in range(3):
        add_prediction(
            app,
            alice,
            label="tabby",
            filename=f"cat{i}.jpg",
            created_at=NOW - timedelta(minutes=i),
        )
    add_prediction(app, alice, label="dog", filename="dog.jpg")
    status, html = history(client, q="tabby")
    assert shown_filenames(html) == ["cat0.jpg", "cat1.jpg"]
    assert "/history?page=2&amp;q=tabby" in html
    assert shown_filenames(history(client, q="tabby", page=2)[1]) == ["cat2.jpg"]


def test_history_only_shows_own_predictions(client, signed_in, auth, app):
    add_prediction(app, user_id(app), filename="alices.jpg")
    auth.logout()
    auth.register("bob")
    status, html = history(client)
    assert status == 200 and shown_filenames(html) == []


# --------------------------------------------------------------------------
# Deleting several at once


def test_bulk_delete_deletes_only_own_selected_rows(client, signed_in, auth, app):
    alice = user_id(app)
    keep = add_prediction(app, alice, filename="keep.jpg")
    gone = [add_prediction(app, alice, filename=f"gone{i}.jpg") for i in range(2)]
    auth.logout()
    auth.register("bob")
    bobs = add_prediction(app, user_id(app, "bob"), filename="bobs.jpg")
    auth.logout()
    auth.login("alice")
    response = client.post(
        "/history/delete",
        data={
            "ids": [*map(str, gone), str(bobs)],
            "csrf_token": signed_in.page_csrf_token(),
            "next": "/history?q=gone",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/history?q=gone"
    with app.app_context():
        remaining = set(db.session.scalars(sa.select(Prediction.id)))
    assert remaining == {keep, bobs}
    assert "Deleted 2 predictions." in client.get("/history").get_data(as_text=True)


def test_bulk_delete_refuses_offsite_next_and_needs_csrf(client, signed_in, app):
    row = add_prediction(app, user_id(app))
    response = client.post("/history/delete", data={"ids": [str(row)]})
    assert response.status_code == 400
    response = client.post(
        "/history/delete",
        data={
            "ids": [str(row)],
            "csrf_token": signed_in.page_csrf_token(),
            "next": "https://evil.example/",
        },
    )
    assert response.headers["Location"] == "/history"


def test_bulk_delete_with_nothing_selected_says_so(client, signed_in):
    response = client.post(
        "/history/delete",
        data={"csrf_token": signed_in.page_csrf_token()},
        follow_redirects=True,
    )
    assert "Select the predictions to delete first." in response.get_data(as_text=True)


# --------------------------------------------------------------------------
# Exports


def test_csv_export_has_a_header_and_one_row_per_prediction(client, signed_in, app):
    alice = user_id(app)
    add_prediction(app, alice, filename="cat.jpg", label="tabby", score=0.25)
    add_prediction(app, alice, filename="dog.jpg", label="beagle", score=0.75)
    response = client.get("/history/export.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(
        r'attachment; filename="snapclass-history-\d{4}-\d\d-\d\d\.csv"', disposition
    )
    assert response.headers["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["filename"] for row in rows] == ["dog.jpg", "cat.jpg"]
    assert rows[0]["top_label"] == "beagle"
    assert float(rows[0]["top_score"]) == 0.75
    assert rows[0]["predictions"] == "beagle: 0.750000; other: 0.375000"
    assert rows[0]["weights"] == "random" and rows[0]["shared"] == "false"


@pytest.mark.parametrize(
    "evil",
    ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"],
)
def test_csv_export_neutralises_formulas(client, signed_in, app, evil):
    add_prediction(app, user_id(app), filename=evil, label=evil)
    response = client.get("/history/export.csv")
    (row,) = csv.DictReader(io.StringIO(response.get_data(as_text=True)))
    assert row["filename"] == "'" + evil
    assert row["top_label"] == "'" + evil
    assert row["predictions"].startswith("'" + evil)


def test_csv_export_leaves_harmless_text_alone(client, signed_in, app):
    add_prediction(app, user_id(app), filename="a=b.jpg", label="tabby")
    response = client.get("/history/export.csv")
    (row,) = csv.DictReader(io.StringIO(response.get_data(as_text=True)))
    assert row["filename"] == "a=b.jpg" and row["top_label"] == "tabby"


def test_json_export(client, signed_in, app):
    alice = user_id(app)
    add_prediction(app, alice, filename="cat.jpg", label="tabby", score=0.25)
    response = client.get("/history/export.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Content-Disposition"].endswith('.json"')
    body = json.loads(response.get_data(as_text=True))
    assert body["user"] == "alice"
    datetime.fromisoformat(body["exported_at"])
    (item,) = body["items"]
    assert item["filename"] == "cat.jpg"
    assert item["predictions"][0] == {
        "class_id": 1,
        "wnid": "n0",
        "label": "tabby",
        "score": 0.25,
    }
    assert item["model"]["random_weights"] is True
    assert item["shared"] is False
    assert "thumbnail" not in item


def test_empty_json_export_is_valid_json(client, signed_in):
    body = json.loads(client.get("/history/export.json").get_data(as_text=True))
    assert body["items"] == []


def test_exports_follow_the_filters_and_the_owner(client, signed_in, auth, app):
    alice = user_id(app)
    add_prediction(app, alice, filename="cat.jpg", label="tabby")
    add_prediction(app, alice, filename="dog.jpg", label="beagle")
    auth.logout()
    auth.register("bob")
    add_prediction(app, user_id(app, "bob"), filename="bobs-cat.jpg", label="tabby")
    auth.logout()
    auth.login("alice")
    body = client.get("/history/export.json?q=tabby").get_json()
    assert [item["filename"] for item in body["items"]] == ["cat.jpg"]
    text = client.get("/history/export.csv").get_data(as_text=True)
    assert "bobs-cat.jpg" not in text and "dog.jpg" in text


def test_exports_need_a_sign_in_and_a_known_format(client, signed_in, auth):
    assert client.get("/history/export.xml").status_code == 404
    auth.logout()
    response = client.get("/history/export.csv")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# --------------------------------------------------------------------------
# Retention


def set_retention(app, username: str, days: int | None) -> None:
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == username))
        user.history_retention_days = days
        db.session.commit()


def filenames_in_db(app) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(sa.select(Prediction.filename)))


def test_expired_predictions_are_hidden_from_every_read(client, signed_in, app, api):
    alice = user_id(app)
    old = add_prediction(
        app, alice, filename="old.jpg", created_at=NOW - timedelta(days=8)
    )
    add_prediction(app, alice, filename="new.jpg", created_at=NOW - timedelta(days=6))
    set_retention(app, "alice", 7)
    status, html = history(client)
    assert status == 200
    assert shown_filenames(html) == ["new.jpg"]
    assert "kept for 7 days" in html
    assert "old.jpg" not in client.get("/history/export.csv").get_data(as_text=True)
    assert "old.jpg" not in client.get("/history/export.json").get_data(as_text=True)
    assert client.get(f"/predictions/{old}").status_code == 404
    assert api.get(f"/api/predictions/{old}").status_code == 404
    listing = api.get("/api/predictions").get_json()
    assert [item["filename"] for item in listing["items"]] == ["new.jpg"]


def test_reading_history_writes_nothing(client, signed_in, app):
    """GET /history and the exports run no DELETE, UPDATE, INSERT or COMMIT."""
    alice = user_id(app)
    add_prediction(app, alice, filename="old.jpg", created_at=NOW - timedelta(days=8))
    set_retention(app, "alice", 7)
    client.get("/history")  # sign-in bookkeeping settles before counting
    statements = []
    with app.app_context():
        engine = db.engine

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement.split(None, 1)[0].upper())

    def record_commit(_conn):
        statements.append("COMMIT")

    sa.event.listen(engine, "before_cursor_execute", record)
    sa.event.listen(engine, "commit", record_commit)
    try:
        for url in ("/history", "/history/export.csv", "/history/export.json"):
            assert client.get(url).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
        sa.event.remove(engine, "commit", record_commit)
    assert statements and set(statements) <= {"SELECT"}, statements
    assert filenames_in_db(app) == {"old.jpg"}  # hidden, not yet deleted


def test_expired_predictions_are_deleted_with_the_next_upload(signed_in, app, api):
    alice = user_id(app)
    add_prediction(app, alice, filename="old.jpg", created_at=NOW - timedelta(days=8))
    set_retention(app, "alice", 7)
    response = api.predict()
    assert response.status_code == 200
    assert filenames_in_db(app) == {"img0.jpg"}


def test_expired_shared_prediction_is_gone(client, signed_in, app):
    from app.services.sharing import share

    alice = user_id(app)
    old = add_prediction(
        app, alice, filename="old.jpg", created_at=NOW - timedelta(days=8)
    )
    with app.app_context():
        token = share(db.session.get(Prediction, old))
    assert client.get(f"/s/{token}").status_code == 200
    set_retention(app, "alice", 7)
    assert client.get(f"/s/{token}").status_code == 404
    assert client.get(f"/s/{token}/thumbnail.jpg").status_code == 404


def test_without_retention_nothing_is_purged(signed_in, app, api):
    add_prediction(
        app, user_id(app), filename="ancient.jpg", created_at=NOW - timedelta(days=900)
    )
    assert api.predict().status_code == 200
    assert filenames_in_db(app) == {"ancient.jpg", "img0.jpg"}


def test_an_upload_purges_only_the_uploaders_rows(client, signed_in, auth, app):
    add_prediction(
        app,
        user_id(app),
        created_at=NOW - timedelta(days=30),
        filename="alices-old.jpg",
    )
    set_retention(app, "alice", 1)
    auth.logout()
    auth.register("bob")
    bobs_program = ApiClient(client, issue_token(app, "bob"))
    assert bobs_program.predict().status_code == 200
    assert filenames_in_db(app) == {"alices-old.jpg", "img0.jpg"}


def test_retention_setting_saves_and_purges_at_once(client, signed_in, app):
    alice = user_id(app)
    add_prediction(app, alice, filename="old.jpg", created_at=NOW - timedelta(days=31))
    add_prediction(app, alice, filename="new.jpg")
    token = signed_in.page_csrf_token()
    response = client.post(
        "/account/retention",
        data={"days": "30", "csrf_token": token},
        follow_redirects=True,
    )
    html = response.get_data(as_text=True)
    assert "History is now kept for 30 days. 1 older prediction deleted." in html
    assert filenames_in_db(app) == {"new.jpg"}
    with app.app_context():
        assert db.session.get(User, alice).history_retention_days == 30
    response = client.post(
        "/account/retention",
        data={"days": "0", "csrf_token": token},
        follow_redirects=True,
    )
    assert "History is now kept forever." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, alice).history_retention_days is None


@pytest.mark.parametrize("days", ["5", "-1", "abc", ""])
def test_retention_setting_refuses_other_values(client, signed_in, app, days):
    response = client.post(
        "/account/retention",
        data={"days": days, "csrf_token": signed_in.page_csrf_token()},
        follow_redirects=True,
    )
    assert "Choose one of the offered retention periods." in response.get_data(
        as_text=True
    )
    with app.app_context():
        assert db.session.get(User, user_id(app)).history_retention_days is None


def test_purge_history_command_purges_for_all_users(runner, client, auth, app):
    auth.register("alice")
    auth.logout()
    auth.register("bob")
    auth.logout()
    auth.register("carol")
    old = NOW - timedelta(days=10)
    add_prediction(app, user_id(app, "alice"), filename="a-old.jpg", created_at=old)
    add_prediction(app, user_id(app, "alice"), filename="a-new.jpg")
    add_prediction(app, user_id(app, "bob"), filename="b-old.jpg", created_at=old)
    add_prediction(app, user_id(app, "carol"), filename="c-old.jpg", created_at=old)
    set_retention(app, "alice", 7)
    set_retention(app, "bob", 1)
    result = runner.invoke(args=["purge-history"])
    assert result.exit_code == 0, result.output
    assert "Deleted 2 predictions (2 users with a retention limit)." in result.output
    assert filenames_in_db(app) == {"a-new.jpg", "c-old.jpg"}


# --------------------------------------------------------------------------
# The "not sure" threshold: min_confidence on /predict, the web setting


@pytest.mark.parametrize("value", ["abc", "-0.1", "1.01", "nan", "inf", "50%"])
def test_min_confidence_must_be_a_number_from_0_to_1(api, app, value):
    response = api.predict(min_confidence=value)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_min_confidence"
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Prediction.id))) == 0


def test_min_confidence_marks_uncertain_results(api):
    sure = api.predict(min_confidence="0").get_json()["results"][0]
    assert sure["uncertain"] is False
    unsure = api.predict(min_confidence="1").get_json()["results"][0]
    top = unsure["predictions"][0]["score"]
    assert top < 1 and unsure["uncertain"] is True
    # The threshold is compared with the top score: exactly equal is sure.
    exact = api.predict(min_confidence=repr(top)).get_json()["results"][0]
    assert exact["uncertain"] is False


def test_without_min_confidence_there_is_no_uncertain_key(api):
    (result,) = api.predict().get_json()["results"]
    assert "uncertain" not in result


def test_min_confidence_in_the_query_string(client, token):
    response = client.post(
        "/predict?min_confidence=1",
        data=make_image_bytes("JPEG"),
        headers={**bearer(token), "Content-Type": "image/jpeg"},
    )
    assert response.get_json()["results"][0]["uncertain"] is True


def test_web_threshold_marks_results_not_sure(client, signed_in, app):
    row = add_prediction(app, user_id(app), score=0.3, label="tabby")
    html = client.get(f"/predictions/{row}").get_data(as_text=True)
    assert 'id="not-sure"' not in html  # 30% is above the default 20%
    response = client.post(
        "/preferences/confidence",
        data={
            "percent": "40",
            "next": f"/predictions/{row}",
            "csrf_token": signed_in.page_csrf_token(),
        },
    )
    assert response.headers["Location"] == f"/predictions/{row}"
    html = client.get(f"/predictions/{row}").get_data(as_text=True)
    assert 'id="not-sure"' in html
    assert "scores 30.0%, below the 40.0% threshold" in html
    assert "not sure" in client.get("/history").get_data(as_text=True)


@pytest.mark.parametrize("percent", ["-1", "101", "x", ""])
def test_web_threshold_refuses_bad_values(client, signed_in, percent):
    response = client.post(
        "/preferences/confidence",
        data={"percent": percent, "csrf_token": signed_in.page_csrf_token()},
        follow_redirects=True,
    )
    assert "whole number from 0 to 100" in response.get_data(as_text=True)


def test_web_threshold_never_redirects_off_site(client, signed_in):
    response = client.post(
        "/preferences/confidence",
        data={
            "percent": "10",
            "next": "//evil.example/",
            "csrf_token": signed_in.page_csrf_token(),
        },
    )
    assert response.headers["Location"] == "/history"


# --------------------------------------------------------------------------
# The upload page's background upload (Accept: application/json on /upload)


def test_upload_as_json_answers_where_to_go(client, signed_in):
    response = client.post(
        "/upload",
        data={
            "image": [
                (io.BytesIO(make_image_bytes("JPEG")), "a.jpg"),
                (io.BytesIO(make_image_bytes("PNG")), "b.png"),
            ],
            "csrf_token": signed_in.page_csrf_token(),
        },
        headers={"Accept": "application/json"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    body = response.get_json()
    assert len(body["ids"]) == 2
    assert body["redirect"] == "/results?ids=" + ",".join(map(str, body["ids"]))


def test_upload_as_json_reports_errors_in_the_api_envelope(client, signed_in, app):
    response = client.post(
        "/upload",
        data={
            "image": [(io.BytesIO(b"not an image"), "fake.jpg")],
            "csrf_token": signed_in.page_csrf_token(),
        },
        headers={"Accept": "application/json"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_image"
    assert error["message"].startswith("fake.jpg: ")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Prediction.id))) == 0


def test_ids_beyond_64_bits_are_404_not_500(client, signed_in, app):
    huge = str(2**64 + 5)
    assert client.get(f"/predictions/{huge}").status_code == 404
    assert client.get(f"/predictions/{huge}/thumbnail.jpg").status_code == 404
    assert client.get(f"/results?ids={huge}").status_code == 400
    token = signed_in.page_csrf_token()
    for action in ("delete", "share", "unshare"):
        response = client.post(
            f"/predictions/{huge}/{action}", data={"csrf_token": token}
        )
        assert response.status_code == 404, action
    response = client.post("/history/delete", data={"ids": [huge], "csrf_token": token})
    assert response.status_code == 400
