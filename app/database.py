"""Engine tuning per backend."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import event

from .extensions import db


def init_app(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _tune_sqlite)


def _tune_sqlite(dbapi_connection, _record) -> None:
    """WAL lets readers and one writer work at once across Gunicorn workers;
    busy_timeout makes a writer wait for the lock instead of failing."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


__all__ = ["init_app"]
