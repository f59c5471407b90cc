"""SQLite connection settings: WAL, the sync level, lock waits, foreign keys."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from app import create_app
from app.config import TestingConfig
from app.database import sqlite_synchronous
from app.extensions import db

# What PRAGMA synchronous reads back, per level.
SYNCHRONOUS_VALUES = {"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3}


def sqlite_app(tmp_path, **overrides):
    settings = {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'pragmas.sqlite3'}",
        **overrides,
    }
    return create_app(type("Config", (TestingConfig,), settings))


def pragma(app, name: str):
    with app.app_context():
        value = db.session.execute(sa.text(f"PRAGMA {name}")).scalar()
        db.engine.dispose()
        return value


def test_sqlite_connections_use_wal_normal_sync_lock_wait_and_foreign_keys(tmp_path):
    if os.environ.get("SQLITE_SYNCHRONOUS"):
        pytest.skip("SQLITE_SYNCHRONOUS is set in this environment")
    app = sqlite_app(tmp_path)
    assert app.config["SQLITE_SYNCHRONOUS"] == "NORMAL"
    assert pragma(app, "journal_mode") == "wal"
    assert pragma(app, "synchronous") == SYNCHRONOUS_VALUES["NORMAL"]
    assert pragma(app, "busy_timeout") == 5000
    assert pragma(app, "foreign_keys") == 1


@pytest.mark.parametrize("setting", ["full", " Extra ", "OFF"])
def test_sqlite_synchronous_setting_is_applied(tmp_path, setting):
    app = sqlite_app(tmp_path, SQLITE_SYNCHRONOUS=setting)
    assert pragma(app, "synchronous") == SYNCHRONOUS_VALUES[setting.strip().upper()]


def test_without_wal_normal_becomes_full(tmp_path):
    # An in-memory database cannot use WAL; NORMAL is only crash-safe with it.
    app = sqlite_app(
        tmp_path, SQLALCHEMY_DATABASE_URI="sqlite://", SQLITE_SYNCHRONOUS="NORMAL"
    )
    with app.app_context():

        def read(name):
            return db.session.execute(sa.text(f"PRAGMA {name}")).scalar()

        assert read("journal_mode") == "memory"
        assert read("synchronous") == SYNCHRONOUS_VALUES["FULL"]


@pytest.mark.parametrize("setting", ["fast", "1", "NORMAL; DROP TABLE users"])
def test_an_unknown_sqlite_synchronous_level_stops_start_up(tmp_path, setting):
    with pytest.raises(ValueError, match="SQLITE_SYNCHRONOUS must be one of"):
        sqlite_app(tmp_path, SQLITE_SYNCHRONOUS=setting)


def test_sqlite_synchronous_names_the_bad_value():
    with pytest.raises(ValueError, match="got 'sometimes'"):
        sqlite_synchronous("sometimes")


@pytest.mark.parametrize(
    ("commit_first", "says"),
    [
        (False, "Nothing was saved."),
        (True, "If the request changed something, check it before retrying."),
    ],
)
def test_a_500_says_nothing_was_saved_only_before_any_commit(
    tmp_path, commit_first, says
):
    """The rollback undoes everything only when the request committed nothing."""
    app = sqlite_app(tmp_path)

    @app.get("/fails")
    def fails():
        if commit_first:
            db.session.execute(sa.text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
            db.session.execute(sa.text("INSERT INTO t VALUES (1)"))
            db.session.commit()
        raise RuntimeError("after the work")

    response = app.test_client().get("/fails", headers={"Accept": "application/json"})
    assert response.status_code == 500
    message = response.get_json()["error"]["message"]
    assert says in message
    assert ("Nothing was saved" in message) is not commit_first
    with app.app_context():
        db.engine.dispose()
