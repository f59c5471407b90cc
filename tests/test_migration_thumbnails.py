"""Revision 0008 moves thumbnails into their own table, once per content, and
back on downgrade (issue 23)."""

from __future__ import annotations

import sqlalchemy as sa
from flask_migrate import downgrade
from flask_migrate import upgrade

from app.extensions import db

CAT = b"\xff\xd8cat-jpeg"
DOG = b"\xff\xd8dog-jpeg-longer"
ROW_BYTES = 4 * 1024  # the revision's own copy of storage.ROW_BYTES


def insert_rows_of_0007() -> None:
    """Two users; alice has two rows showing CAT and one DOG, bob one CAT."""
    with db.engine.begin() as connection:
        for user_id, name in ((1, "alice"), (2, "bob")):
            connection.execute(
                sa.text(
                    "INSERT INTO users (id, username, password_hash, created_at, "
                    "is_admin) VALUES (:id, :name, 'x', CURRENT_TIMESTAMP, false)"
                ),
                {"id": user_id, "name": name},
            )
        for prediction_id, user_id, thumbnail in (
            (1, 1, CAT),
            (2, 1, CAT),
            (3, 1, DOG),
            (4, 2, CAT),
        ):
            connection.execute(
                sa.text(
                    "INSERT INTO predictions (id, user_id, sha256, filename, "
                    "mime_type, size_bytes, width, height, top_k, top_label, "
                    "top_score, model_name, weights, backend, timing_ms, "
                    "thumbnail, created_at) VALUES (:id, :user, 'a', :name, "
                    "'image/jpeg', 1, 1, 1, '[]', 'tabby', 0.5, 'resnet50', "
                    "'random', 'openvino', '{}', :thumb, CURRENT_TIMESTAMP)"
                ),
                {
                    "id": prediction_id,
                    "user": user_id,
                    "name": f"{prediction_id}.jpg",
                    "thumb": thumbnail,
                },
            )


def query(sql: str) -> list[tuple]:
    with db.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(sql))]


def test_0008_stores_each_thumbnail_once_and_downgrades(fresh_schema):
    upgrade(revision="0007")
    insert_rows_of_0007()
    upgrade(revision="0008")

    stored = dict(query("SELECT id, data FROM thumbnails ORDER BY id"))
    assert sorted(bytes(v) for v in stored.values()) == sorted([CAT, DOG])
    by_row = query("SELECT id, thumbnail_id FROM predictions ORDER BY id")
    shown = [bytes(stored[thumbnail_id]) for _, thumbnail_id in by_row]
    assert shown == [CAT, CAT, DOG, CAT]
    assert by_row[0][1] == by_row[1][1] == by_row[3][1]
    sizes = query("SELECT size_bytes FROM thumbnails ORDER BY id")
    assert sorted(size for (size,) in sizes) == sorted([len(CAT), len(DOG)])
    assert query("SELECT id, stored_bytes FROM users ORDER BY id") == [
        (1, 3 * ROW_BYTES + len(CAT) + len(DOG)),
        (2, ROW_BYTES + len(CAT)),
    ]
    columns = {c["name"] for c in sa.inspect(db.engine).get_columns("predictions")}
    assert "thumbnail" not in columns

    downgrade(revision="0007")
    rows = query("SELECT id, thumbnail FROM predictions ORDER BY id")
    assert [(i, bytes(t)) for i, t in rows] == [
        (1, CAT),
        (2, CAT),
        (3, DOG),
        (4, CAT),
    ]
    assert "thumbnails" not in sa.inspect(db.engine).get_table_names()
    columns = {c["name"] for c in sa.inspect(db.engine).get_columns("users")}
    assert "stored_bytes" not in columns
