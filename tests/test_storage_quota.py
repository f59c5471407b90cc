"""Thumbnails stored once by content, removed with their last row, and the
per-account storage cap (issue 23, point 4)."""

from __future__ import annotations

import io
import logging
import os
import random
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from PIL import Image

from app.extensions import db
from app.models import Prediction
from app.models import Thumbnail
from app.models import User
from app.models import utcnow
from app.services import storage
from tests.helpers import PASSWORD
from tests.helpers import AuthActions
from tests.helpers import bearer

log = logging.getLogger(__name__)

REQUESTS = 60
COPIES = 16


def noise_png(seed: int = 23) -> bytes:
    """A 128x128 black-and-white noise PNG of about 2 KB whose thumbnail (a
    JPEG of noise) is about 13 KB: the red team's case of issue 23."""
    rnd = random.Random(seed)
    pixels = bytes(255 if rnd.random() < 0.5 else 0 for _ in range(128 * 128))
    image = Image.frombytes("L", (128, 128), pixels).convert("1")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def predict(client, token, data: bytes, copies: int = 1):
    files = [(io.BytesIO(data), f"noise{i}.png") for i in range(copies)]
    return client.post(
        "/predict",
        data={"image": files},
        headers=bearer(token),
        content_type="multipart/form-data",
    )


def thumbnails(app) -> list[tuple[int, int]]:
    """(id, size) of every stored thumbnail."""
    with app.app_context():
        query = sa.select(Thumbnail.id, Thumbnail.size_bytes).order_by(Thumbnail.id)
        return [tuple(row) for row in db.session.execute(query)]


def thumbnail_ids_of_rows(app) -> list[int]:
    with app.app_context():
        query = sa.select(Prediction.thumbnail_id).order_by(Prediction.id)
        return list(db.session.scalars(query))


def alice(app) -> User:
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == "alice"))
        db.session.expunge(user)
        return user


def stored_bytes(app, username: str = "alice") -> int:
    with app.app_context():
        query = sa.select(User.stored_bytes).where(User.username == username)
        return db.session.scalar(query)


def counted_bytes(app, username: str = "alice") -> int:
    """What the account stores, counted again from its rows."""
    with app.app_context():
        user_id = db.session.scalar(sa.select(User.id).where(User.username == username))
        return db.session.scalar(sa.select(storage.account_bytes(user_id)))


def sqlite_file_bytes(app) -> int | None:
    """The SQLite database's size on disk, the write-ahead log folded in."""
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            return None
        with db.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return os.path.getsize(db.engine.url.database)


def test_repeated_small_uploads_store_their_thumbnail_once(client, token, app):
    """60 requests of 16 copies of one 2 KB noise PNG (all cache hits after the
    first) store one thumbnail, not 960: the database grows by the rows only.
    Before issue 23 each hit copied the ~13 KB thumbnail and the SQLite file
    grew 15.9 MB for 2.2 MB uploaded."""
    png = noise_png()
    assert len(png) < 2500
    before = sqlite_file_bytes(app)
    started = time.perf_counter()
    for _ in range(REQUESTS):
        response = predict(client, token, png, COPIES)
        assert response.status_code == 200
    took = time.perf_counter() - started
    growth = None if before is None else sqlite_file_bytes(app) - before

    stored = thumbnails(app)
    assert len(stored) == 1
    (only, size), rows = stored[0], thumbnail_ids_of_rows(app)
    assert rows == [only] * REQUESTS * COPIES
    uploaded = REQUESTS * COPIES * len(png)
    log.info(
        "png %d B, thumbnail %d B; uploaded %d B; SQLite grew %s B in %.1f s",
        len(png),
        size,
        uploaded,
        growth,
        took,
    )
    if growth is not None:
        # The rows themselves (labels, maps, timings, indexes): ~4 KB each.
        assert growth < REQUESTS * COPIES * 5000 + size
        assert growth < REQUESTS * COPIES * size / 3
    # The account is charged its rows and one thumbnail.
    assert stored_bytes(app) == REQUESTS * COPIES * storage.ROW_BYTES + size
    assert stored_bytes(app) == counted_bytes(app)


def test_identical_uploads_share_a_thumbnail_without_the_cache(make_app, classifier):
    """A miss (cache off) finds the stored JPEG by its hash; another user's
    identical upload shares it too, and its charge does not depend on that."""
    app = make_app(RESULT_CACHE=False)
    client = app.test_client()
    auth = AuthActions(client)
    auth.register()
    headers = {"X-CSRFToken": auth.page_csrf_token()}
    png = noise_png()

    def upload(client, headers):
        response = client.post(
            "/predict",
            data={"image": [(io.BytesIO(png), "a.png"), (io.BytesIO(png), "b.png")]},
            headers=headers,
            content_type="multipart/form-data",
        )
        assert response.status_code == 200
        assert [r["cached"] for r in response.get_json()["results"]] == [False] * 2

    upload(client, headers)
    upload(client, headers)
    other = app.test_client()
    bob = AuthActions(other)
    bob.register("bob")
    upload(other, {"X-CSRFToken": bob.page_csrf_token()})
    ((only, size),) = thumbnails(app)
    assert thumbnail_ids_of_rows(app) == [only] * 6
    assert stored_bytes(app, "alice") == 4 * storage.ROW_BYTES + size
    assert stored_bytes(app, "bob") == 2 * storage.ROW_BYTES + size


def delete_one_by_api(client, token, auth, ids):
    response = client.delete(f"/api/predictions/{ids[0]}", headers=bearer(token))
    assert response.status_code == 204


def delete_one_by_page(client, token, auth, ids):
    response = client.post(
        f"/predictions/{ids[0]}/delete", data={"csrf_token": auth.page_csrf_token()}
    )
    assert response.status_code == 302


def delete_by_history_selection(client, token, auth, ids):
    response = client.post(
        "/history/delete",
        data={"ids": [str(ids[0])], "csrf_token": auth.page_csrf_token()},
    )
    assert response.status_code == 302


@pytest.mark.parametrize(
    "delete", [delete_one_by_api, delete_one_by_page, delete_by_history_selection]
)
def test_a_shared_thumbnail_goes_with_its_last_row(
    client, token, signed_in, app, delete
):
    png = noise_png()
    ids = [r["id"] for r in predict(client, token, png, 2).get_json()["results"]]
    ((only, size),) = thumbnails(app)
    delete(client, token, signed_in, ids)
    assert thumbnails(app) == [(only, size)]
    url = f"/api/predictions/{ids[1]}/thumbnail.jpg"
    served = client.get(url, headers=bearer(token))
    assert served.status_code == 200 and served.data.startswith(b"\xff\xd8")
    assert served.headers["Cache-Control"] == "private, max-age=300"
    assert stored_bytes(app) == storage.ROW_BYTES + size == counted_bytes(app)
    delete(client, token, signed_in, ids[1:])
    assert thumbnails(app) == []
    assert stored_bytes(app) == 0


def test_batch_delete_and_retention_purge_remove_unused_thumbnails(
    client, token, signed_in, app, runner
):
    created = client.post("/api/batches", json={"name": "b"}, headers=bearer(token))
    batch = created.get_json()["id"]
    response = client.post(
        f"/predict?batch_id={batch}",
        data={"image": [(io.BytesIO(noise_png(1)), "a.png")]},
        headers=bearer(token),
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    predict(client, token, noise_png(2))
    assert len(thumbnails(app)) == 2
    response = client.post(
        f"/batches/{batch}/delete", data={"csrf_token": signed_in.page_csrf_token()}
    )
    assert response.status_code == 302
    assert len(thumbnails(app)) == 1
    assert stored_bytes(app) == counted_bytes(app) > 0
    with app.app_context():
        db.session.execute(
            sa.update(Prediction).values(created_at=utcnow() - timedelta(days=30))
        )
        db.session.execute(sa.update(User).values(history_retention_days=7))
        db.session.commit()
    result = runner.invoke(args=["purge-history"])
    assert "Deleted 1 predictions" in result.output
    assert thumbnails(app) == [] and stored_bytes(app) == 0


def test_account_deletion_keeps_thumbnails_other_accounts_show(
    client, token, signed_in, app
):
    app.config["RESULT_CACHE_SHARED"] = True
    predict(client, token, noise_png(1))
    predict(client, token, noise_png(2))
    other = app.test_client()
    bob = AuthActions(other)
    bob.register("bob")
    response = other.post(
        "/predict",
        data={"image": [(io.BytesIO(noise_png(1)), "mine.png")]},
        headers={"X-CSRFToken": bob.page_csrf_token()},
        content_type="multipart/form-data",
    )
    assert response.get_json()["results"][0]["cached"] is True
    bobs = response.get_json()["results"][0]["id"]
    assert len(thumbnails(app)) == 2
    response = client.post(
        "/account/delete",
        data={
            "password": PASSWORD,
            "csrf_token": signed_in.page_csrf_token(),
        },
    )
    assert response.status_code == 302
    assert len(thumbnails(app)) == 1
    assert other.get(f"/api/predictions/{bobs}/thumbnail.jpg").status_code == 200


def test_storage_cap_refuses_with_409_and_stores_nothing(make_app, classifier):
    png = noise_png()
    # Room for 3 rows and one thumbnail (~13.4 KB).
    app = make_app(MAX_STORED_BYTES_PER_USER=3 * storage.ROW_BYTES + 14_000)
    client = app.test_client()
    auth = AuthActions(client)
    auth.register()
    headers = {"X-CSRFToken": auth.page_csrf_token()}

    def upload(data, copies):
        files = [(io.BytesIO(data), f"n{i}.png") for i in range(copies)]
        return client.post(
            "/predict",
            data={"image": files},
            headers=headers,
            content_type="multipart/form-data",
        )

    assert upload(png, 2).status_code == 200
    used = stored_bytes(app)
    # Refused before decoding: 2 more rows cannot fit, whatever they show.
    response = upload(png, 2)
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "storage_quota_exceeded"
    assert "delete some of your history" in error["message"]
    # The upload page answers the same refusal as a page.
    page = client.post(
        "/upload",
        data={
            "image": [(io.BytesIO(png), "p.png"), (io.BytesIO(png), "q.png")],
            "csrf_token": auth.page_csrf_token(),
        },
        content_type="multipart/form-data",
    )
    assert page.status_code == 409
    assert "delete some of your history" in page.get_data(as_text=True)
    # Refused at the store: one row fits, not with a new thumbnail.
    assert upload(noise_png(7), 1).status_code == 409
    assert len(thumbnail_ids_of_rows(app)) == 2 and len(thumbnails(app)) == 1
    assert stored_bytes(app) == used
    # The same photo again only adds a row.
    assert upload(png, 1).status_code == 200
    # Deleting history makes room again.
    for item in client.get("/api/predictions").get_json()["items"]:
        client.delete(f"/api/predictions/{item['id']}", headers=headers)
    assert stored_bytes(app) == 0
    assert upload(png, 2).status_code == 200


def test_history_lists_never_load_thumbnail_bytes(client, token, app):
    predict(client, token, noise_png(), 3)
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        for path in ("/history", "/api/predictions", "/history/export.csv"):
            headers = bearer(token) if path.startswith("/api") else {}
            assert client.get(path, headers=headers).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert statements
    assert not [s for s in statements if "thumbnails" in s]


def test_concurrent_inserts_of_one_thumbnail_meet_on_one_row(app):
    """Two transactions storing the same new JPEG at once both get its id."""
    data = b"\xff\xd8" + os.urandom(4000)
    ids, errors = [], []
    start = threading.Barrier(2)

    def insert():
        try:
            with app.app_context():
                start.wait()
                ids.append(storage.thumbnail_id(data))
                time.sleep(0.2)  # hold the transaction open
                db.session.commit()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=insert) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(ids) == 2 and ids[0] == ids[1]
    assert [row[0] for row in thumbnails(app)] == [ids[0]]
