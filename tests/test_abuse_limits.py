"""What one free account could abuse (issue 23, points 3 and 5 to 8): the upload
form's own budget, batches deleted during an upload, JSON nested too deeply,
the dataset ZIP's filters, and batches without bound."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from app.extensions import db
from app.models import Batch
from app.models import Prediction
from app.models import User
from app.models import utcnow
from app.services import predictions
from app.services.batches import recent_batches
from tests.helpers import AuthActions
from tests.helpers import add_prediction
from tests.helpers import bearer
from tests.helpers import csrf_token_from
from tests.helpers import make_image_bytes
from tests.helpers import registered
from tests.helpers import user_id

DEEP_JSON = "[" * 3000 + "]" * 3000


def jpeg(color=(200, 30, 30)) -> bytes:
    return make_image_bytes("JPEG", color=color)


def predict(client, token, **fields):
    return client.post(
        "/predict",
        data={"image": (io.BytesIO(jpeg()), "a.jpg"), **fields},
        headers=bearer(token),
        content_type="multipart/form-data",
    )


def new_batch(client, token, name="b"):
    return client.post("/api/batches", json={"name": name}, headers=bearer(token))


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def signed_in_client(app, username: str = "alice"):
    """A browser session of a new user, and the CSRF header its API calls need."""
    client, auth = registered(app, username)
    return client, {"X-CSRFToken": auth.page_csrf_token()}


def batch_statuses(client, headers, times: int) -> list[int]:
    return [
        client.post("/api/batches", json={}, headers=headers).status_code
        for _ in range(times)
    ]


# --------------------------------------------------------------------------
# 3. /upload and /predict share one per-user budget


@pytest.mark.server
def test_upload_form_and_predict_share_one_budget_on_a_real_server(new_server):
    """At 3 a minute, three classifications pass whichever door they use, and
    the fourth is refused on both: the upload form had no limit at all."""
    server = new_server(
        "upload_limit", PREDICT_RATE_LIMIT="3 per minute", WEB_CONCURRENCY="1"
    )
    try:
        api = requests.Session()
        api.headers.update(server.headers)
        browser = server.browser()
        page = browser.get(server.url + "/", timeout=10).text
        csrf = csrf_token_from(page)

        def upload():
            return browser.post(
                server.url + "/upload",
                data={"csrf_token": csrf},
                files={"image": ("a.jpg", jpeg(), "image/jpeg")},
                headers={"Accept": "application/json"},
                timeout=30,
            )

        def post_predict():
            return api.post(
                server.url + "/predict",
                files={"image": ("a.jpg", jpeg(), "image/jpeg")},
                timeout=30,
            )

        statuses = [
            post_predict().status_code,
            upload().status_code,
            post_predict().status_code,
        ]
        assert statuses == [200, 200, 200]
        refused = [upload(), post_predict(), upload()]
        assert [r.status_code for r in refused] == [429, 429, 429]
        assert refused[0].json()["error"]["code"] == "too_many_requests"
        assert int(refused[0].headers["Retry-After"]) > 0
        engine = server.engine()
        try:
            with engine.connect() as connection:
                stored = connection.execute(
                    sa.text("SELECT count(*) FROM predictions")
                ).scalar()
        finally:
            engine.dispose()  # a pooled connection left open warns later
        assert stored == 3
    finally:
        server.stop()


def test_upload_form_is_refused_past_the_limit_with_a_page(make_app):
    app = make_app(PREDICT_RATE_LIMIT="1 per minute")
    client, auth = registered(app)
    csrf = auth.page_csrf_token()
    statuses = []
    for _ in range(2):
        response = client.post(
            "/upload",
            data={"image": (io.BytesIO(jpeg()), "a.jpg"), "csrf_token": csrf},
            content_type="multipart/form-data",
        )
        statuses.append(response.status_code)
    assert statuses == [302, 429]
    assert "text/html" in response.content_type
    assert count(app, Prediction) == 1


# --------------------------------------------------------------------------
# 5. A batch deleted during an upload


def delete_batch_from_elsewhere(app, batch_id: int) -> None:
    """Another request (another connection) deletes the batch."""
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.delete(Batch).where(Batch.id == batch_id))


def test_a_batch_deleted_while_the_photos_upload_is_a_400_and_stores_nothing(
    app, client, token, monkeypatch
):
    batch_id = new_batch(client, token).get_json()["id"]
    real_run_network = predictions.run_network

    def run_network_then_delete(*args, **kwargs):
        # The batch was checked when the request began; it goes while the
        # network runs (the upload itself took seconds).
        result = real_run_network(*args, **kwargs)
        delete_batch_from_elsewhere(app, batch_id)
        return result

    monkeypatch.setattr(predictions, "run_network", run_network_then_delete)
    response = predict(client, token, batch_id=str(batch_id))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_batch_id"
    assert "deleted" in error["message"]
    assert count(app, Prediction) == 0


def test_a_batch_deleted_between_the_check_and_the_insert_is_a_400(
    app, client, token, monkeypatch
):
    """Where nothing locks the batch (SQLite), the foreign key refuses the rows:
    a 400 that says so, never a 500."""
    if db_is_postgresql(app):
        # There the batch's row lock makes this interleaving impossible: the
        # delete from elsewhere waits for the insert's commit.
        pytest.skip("PostgreSQL locks the batch until the rows are committed")
    batch_id = new_batch(client, token).get_json()["id"]
    real_lock = predictions.lock_batch
    calls = []

    def lock_then_lose(user, wanted):
        calls.append(wanted)
        if len(calls) == 1:
            found = real_lock(user, wanted)
            delete_batch_from_elsewhere(app, batch_id)
            return found
        return real_lock(user, wanted)

    monkeypatch.setattr(predictions, "lock_batch", lock_then_lose)
    response = predict(client, token, batch_id=str(batch_id))
    assert response.status_code == 400, response.text
    assert response.get_json()["error"]["code"] == "invalid_batch_id"
    assert count(app, Prediction) == 0


def db_is_postgresql(app) -> bool:
    return app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")


def test_a_deleted_batch_id_is_never_given_to_a_new_batch(app, client, token):
    first = new_batch(client, token).get_json()["id"]
    second = new_batch(client, token).get_json()["id"]
    csrf = AuthActions(client).page_csrf_token()
    response = client.post(f"/batches/{second}/delete", data={"csrf_token": csrf})
    assert response.status_code in (302, 303)
    third = new_batch(client, token).get_json()["id"]
    assert third > second > first


def test_a_batch_counts_only_its_owners_photos(app, client, token):
    batch_id = new_batch(client, token).get_json()["id"]
    alice = user_id(app, "alice")
    other = AuthActions(app.test_client())
    other.register("bob")
    bob = user_id(app, "bob")
    mine = add_prediction(app, alice)
    theirs = add_prediction(app, bob)
    with app.app_context():
        # A row of bob's that names alice's batch (an old reused id, say).
        db.session.execute(
            sa.update(Prediction)
            .where(Prediction.id.in_([mine, theirs]))
            .values(batch_id=batch_id)
        )
        db.session.commit()
        user = db.session.get(User, alice)
        [(batch, photos)] = recent_batches(user)
    assert batch.id == batch_id and photos == 1


# --------------------------------------------------------------------------
# 6. JSON nested too deeply, or not an object


@pytest.mark.parametrize("body", [DEEP_JSON, '{"a": ' * 3000, "[1]", '"x"', "null"])
@pytest.mark.parametrize("path", ["/login", "/register"])
def test_sign_in_and_up_refuse_bad_json_with_invalid_json(client, auth, path, body):
    response = client.post(
        path,
        data=body,
        content_type="application/json",
        headers={"X-CSRFToken": auth.csrf_token(), "Accept": "application/json"},
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/api/batches"), ("put", "/api/predictions/{id}/feedback")],
)
def test_api_refuses_json_nested_too_deeply_with_invalid_json(
    app, client, token, method, path
):
    prediction_id = predict(client, token).get_json()["results"][0]["id"]
    response = getattr(client, method)(
        path.format(id=prediction_id),
        data=DEEP_JSON,
        content_type="application/json",
        headers=bearer(token),
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"


def test_a_signed_in_page_post_with_deep_json_is_a_400_not_a_500(client, signed_in):
    response = client.post(
        "/account/tokens",
        data=DEEP_JSON,
        content_type="application/json",
        headers={"X-CSRFToken": signed_in.page_csrf_token()},
    )
    assert response.status_code == 400


# --------------------------------------------------------------------------
# 7. The dataset ZIP refuses invalid filters, as the CSV and JSON do


@pytest.mark.parametrize(
    "export", ["dataset.zip", "export.csv", "export.json"], ids=str
)
@pytest.mark.parametrize("query", ["start=2026-13-99", "end=yesterday", "sort=x"])
def test_every_export_refuses_an_invalid_filter(client, token, export, query):
    predict(client, token)
    response = client.get(f"/history/{export}?{query}")
    assert response.status_code == 400
    response = client.get(
        f"/history/{export}?{query}", headers={"Accept": "application/json"}
    )
    assert response.get_json()["error"]["code"] == "invalid_filter"


def test_the_dataset_zip_still_exports_with_valid_filters(client, token):
    predict(client, token)
    response = client.get("/history/dataset.zip?start=2020-01-01")
    assert response.status_code == 200
    assert response.data[:2] == b"PK"


# --------------------------------------------------------------------------
# 8. Empty batches: a rate, a cap and a purge


def test_empty_batches_are_capped_per_user(make_app):
    app = make_app(MAX_EMPTY_BATCHES=3)
    client, headers = signed_in_client(app)
    assert batch_statuses(client, headers, 5) == [201, 201, 201, 409, 409]
    response = client.post("/api/batches", json={"name": "x"}, headers=headers)
    assert response.get_json()["error"]["code"] == "too_many_empty_batches"
    assert count(app, Batch) == 3
    # Another user has a budget of their own.
    assert batch_statuses(*signed_in_client(app, "bob"), 1) == [201]


def test_a_filled_batch_does_not_count_against_the_cap(make_app):
    app = make_app(MAX_EMPTY_BATCHES=1)
    client, headers = signed_in_client(app)
    batch_id = client.post("/api/batches", json={}, headers=headers).get_json()["id"]
    response = client.post(
        "/predict",
        data={"image": (io.BytesIO(jpeg()), "a.jpg"), "batch_id": str(batch_id)},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    assert batch_statuses(client, headers, 2) == [201, 409]


def test_batch_creation_is_rate_limited_per_user(make_app):
    app = make_app(BATCH_RATE_LIMIT="2 per hour", MAX_EMPTY_BATCHES=100)
    assert batch_statuses(*signed_in_client(app), 3) == [201, 201, 429]


def age_batches(app, minutes: int) -> None:
    with app.app_context():
        db.session.execute(
            sa.update(Batch).values(created_at=utcnow() - timedelta(minutes=minutes))
        )
        db.session.commit()


def test_old_empty_batches_are_purged_when_a_new_one_is_made(make_app):
    app = make_app(MAX_EMPTY_BATCHES=2)
    client, headers = signed_in_client(app)
    assert batch_statuses(client, headers, 2) == [201, 201]
    age_batches(app, 61)
    assert batch_statuses(client, headers, 1) == [201]
    assert count(app, Batch) == 1


def test_purge_history_deletes_old_empty_batches_only(app, client, token, runner):
    kept_full = new_batch(client, token, "full").get_json()["id"]
    predict(client, token, batch_id=str(kept_full))
    new_batch(client, token, "empty")
    age_batches(app, 61)
    fresh = new_batch(client, token, "fresh").get_json()["id"]
    # Making "fresh" already purged alice's old empty batch; one more old one
    # of bob's is left for the command.
    assert batch_statuses(*signed_in_client(app, "bob"), 1) == [201]
    age_batches(app, 61)
    result = runner.invoke(args=["purge-history"])
    assert result.exit_code == 0, result.output
    assert "Deleted 2 empty batches." in result.output
    with app.app_context():
        left = set(db.session.scalars(sa.select(Batch.id)))
    assert left == {kept_full}
    assert fresh not in left
