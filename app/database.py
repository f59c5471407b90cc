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

    ``synchronous``: with WAL, NORMAL (the default here) syncs the log only
    when a checkpoint copies it into the database (about every 1000 pages, a
    few hundred uploads), not at every commit. The database stays consistent
    after any crash; a power cut or OS crash may lose the last commits. On the
    build machine single fsyncs stalled for 0.4-1.2 s, and with FULL every
    upload waited for one. Without WAL (a filesystem that refuses it, or an
    in-memory database) NORMAL is not crash-safe, so FULL is used instead.
    """
    cursor = dbapi_connection.cursor()
    mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if synchronous == "NORMAL" and str(mode).lower() != "wal":
        synchronous = "FULL"
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


__all__ = ["init_app", "sqlite_synchronous"]
