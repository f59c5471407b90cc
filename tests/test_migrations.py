"""The schema comes from migrations, and they match the models."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade
from flask_migrate import upgrade

from app.extensions import db


def insert_an_old_prediction() -> None:
    """A user and a prediction 'old.jpg' with only the columns of revision 0004
    (0005 adds nullable ones only, so this fits it too)."""
    with db.engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO users (id, username, password_hash, created_at, "
                "is_admin) VALUES (1, 'old', 'x', CURRENT_TIMESTAMP, false)"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO predictions (id, user_id, sha256, filename, "
                "mime_type, size_bytes, width, height, top_k, top_label, "
                "top_score, model_name, weights, backend, timing_ms, "
                "thumbnail, created_at) VALUES (1, 1, 'a', 'old.jpg', "
                "'image/jpeg', 1, 1, 1, '[]', 'tabby', 0.5, 'resnet50', "
                "'random', 'openvino', '{}', :thumb, CURRENT_TIMESTAMP)"
            ),
            {"thumb": b"\xff\xd8"},
        )


def filenames() -> list[str]:
    """The stored predictions' filenames."""
    query = sa.text("SELECT filename FROM predictions")
    with db.engine.connect() as connection:
        return list(connection.execute(query).scalars())


def test_upgrade_on_fresh_database_matches_models(fresh_schema):
    upgrade()
    tables = set(sa.inspect(db.engine).get_table_names())
    assert {"users", "api_tokens", "predictions", "alembic_version"} <= tables
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, db.metadata) == []
    indexes = {i["name"] for i in sa.inspect(db.engine).get_indexes("predictions")}
    assert "ix_predictions_user_created" in indexes
    downgrade(revision="base")
    assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}


def test_0005_keeps_existing_predictions_unreviewed_and_downgrades(fresh_schema):
    """Rows from before 0005 read as "not reviewed" and in no batch; going back
    to 0004 keeps them."""
    upgrade(revision="0004")
    insert_an_old_prediction()
    upgrade(revision="0005")
    with db.engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT feedback_correct, feedback_label, feedback_at, batch_id "
                "FROM predictions"
            )
        ).one()
    assert tuple(row) == (None, None, None, None)
    downgrade(revision="0004")
    assert filenames() == ["old.jpg"]
    columns = {c["name"] for c in sa.inspect(db.engine).get_columns("predictions")}
    assert "feedback_correct" not in columns and "batch_id" not in columns
    assert "batches" not in sa.inspect(db.engine).get_table_names()


def test_0006_adds_empty_explanations_and_downgrades(fresh_schema):
    """Rows from before 0006 have no maps; going back to 0005 keeps them."""
    upgrade(revision="0005")
    insert_an_old_prediction()
    upgrade(revision="0006")
    with db.engine.connect() as connection:
        value = connection.execute(sa.text("SELECT explanation FROM predictions"))
        assert value.scalar_one() is None
    downgrade(revision="0005")
    assert filenames() == ["old.jpg"]
    columns = {c["name"] for c in sa.inspect(db.engine).get_columns("predictions")}
    assert "explanation" not in columns


def batch_of_old_prediction() -> int | None:
    with db.engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT batch_id FROM predictions")
        ).scalar_one()


def add_batch(batch_id: int | None = None) -> int:
    """A batch of user 1 (with ``batch_id`` or the next the database gives)."""
    columns = "user_id, name, created_at"
    values = "1, 'b', CURRENT_TIMESTAMP"
    if batch_id is not None:
        columns, values = f"id, {columns}", f"{batch_id}, {values}"
    with db.engine.begin() as connection:
        connection.execute(
            sa.text(f"INSERT INTO batches ({columns}) VALUES ({values})")
        )
        return connection.execute(sa.text("SELECT max(id) FROM batches")).scalar()


def test_0007_keeps_batches_and_their_photos_and_never_reuses_an_id(fresh_schema):
    """Rebuilding the batches table on SQLite must not cascade into the photos
    that reference it; after it, a deleted batch's id is not given again."""
    upgrade(revision="0006")
    insert_an_old_prediction()
    assert (add_batch(), add_batch()) == (1, 2)
    with db.engine.begin() as connection:
        connection.execute(sa.text("UPDATE predictions SET batch_id = 2"))
    upgrade(revision="0007")
    assert filenames() == ["old.jpg"]
    assert batch_of_old_prediction() == 2
    with db.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM batches WHERE id = 2"))
    assert filenames() == []  # the cascade still works after the rebuild
    assert add_batch() == 3
    downgrade(revision="0006")
    with db.engine.connect() as connection:
        ids = connection.execute(sa.text("SELECT id FROM batches ORDER BY id"))
        assert list(ids.scalars()) == [1, 3]
