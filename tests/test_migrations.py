"""The schema comes from migrations, and they match the models."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade
from flask_migrate import upgrade

from app.extensions import db
from devtools.database import reset_schema


def test_upgrade_on_fresh_database_matches_models(app):
    with app.app_context():
        reset_schema(db.engine)
        upgrade()
        tables = set(sa.inspect(db.engine).get_table_names())
        assert {"users", "api_tokens", "predictions", "alembic_version"} <= tables
        with db.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True}
            )
            assert compare_metadata(context, db.metadata) == []
        indexes = {i["name"] for i in sa.inspect(db.engine).get_indexes("predictions")}
        assert "ix_predictions_user_created" in indexes
        downgrade(revision="base")
        assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
        reset_schema(db.engine)
