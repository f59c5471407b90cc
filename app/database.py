"""Engine tuning per backend."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import event

from .extensions import db

# PRAGMA synchronous levels SQLite accepts, by name.
SQLITE_SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


def init_app(app: Flask) -> None:
    synchronous = sqlite_synchronous(app.config["SQLITE_SYNCHRONOUS"])
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":

        def tune(dbapi_connection, _record) -> None:
            _tune_sqlite(dbapi_connection, synchronous)

        event.listen(engine, "connect", tune)


def sqlite_synchronous(value: str) -> str:
    """``SQLITE_SYNCHRONOUS``, checked at start-up rather than at first query."""
    level = (value or "").strip().upper()
    if level not in SQLITE_SYNCHRONOUS_LEVELS:
        raise ValueError(
            "SQLITE_SYNCHRONOUS must be one of "
            f"{', '.join(SQLITE_SYNCHRONOUS_LEVELS)}, got {value!r}"
        )
    return level


def _tune_sqlite(dbapi_connection, synchronous: str) -> None:
    """WAL lets readers and one writer work at once across Gunicorn workers;
    busy_timeout makes a writer wait for the lock instead of failing.

    ``synchronous``: with WAL, NORMAL (the default here) syncs the log at
    checkpoints instead of at every commit. The database stays consistent
    after any crash; a power cut or OS crash may lose the last commits. Each
    commit's fsync is what an upload otherwise waits for: on the build machine
    it stalled single commits for 0.4-1.2 s. FULL syncs every commit.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


__all__ = ["init_app", "sqlite_synchronous"]
