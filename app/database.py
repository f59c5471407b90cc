"""Engine tuning per backend, and what readiness asks of the database."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from flask import has_request_context
from flask import request
from sqlalchemy import event

from app.config import sqlite_synchronous
from app.extensions import db

NO_SCHEMA = "the database has no schema: run `flask db upgrade`"
# Tables every request path needs; created by the first migration.
REQUIRED_TABLES = ("users", "predictions")
# SQLSTATEs of a missing table or column (PostgreSQL).
MISSING_SCHEMA_STATES = frozenset({"42P01", "42703"})


def init_app(app: Flask) -> None:
    if not event.contains(db.session, "after_commit", note_commit):
        event.listen(db.session, "after_commit", note_commit)
    synchronous = sqlite_synchronous(app.config["SQLITE_SYNCHRONOUS"])
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":

        def tune(dbapi_connection, _record) -> None:
            _tune_sqlite(dbapi_connection, synchronous)

        event.listen(engine, "connect", tune)


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


COMMITTED_KEY = "snapclass.database_committed"


def note_commit(_session) -> None:
    if has_request_context():
        request.environ[COMMITTED_KEY] = True


def committed_in_request() -> bool:
    """Whether this request committed anything: after a commit, a failure
    cannot say that nothing was saved."""
    return bool(request.environ.get(COMMITTED_KEY))


def is_missing_schema(exc: sa.exc.DBAPIError) -> bool:
    """True when a query failed because a table or column does not exist: the
    database was never migrated (or is behind), which no retry will mend."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in MISSING_SCHEMA_STATES:
        return True
    message = str(orig).lower()
    return message.startswith(("no such table", "no such column"))


def warn_if_no_schema(app: Flask) -> str | None:
    """Log (and return) NO_SCHEMA when the database was never migrated, so the
    first line an operator reads says what to run. Called when a worker starts;
    an unreachable database is left to /readyz, which retries."""
    with app.app_context():
        try:
            with db.engine.connect() as connection:
                problem = schema_problem(connection)
        except sa.exc.SQLAlchemyError:
            return None
    if problem:
        app.logger.error("Snapclass: %s", problem)
    return problem


def schema_problem(connection: sa.Connection) -> str | None:
    """NO_SCHEMA when the tables the app needs are missing, else None.

    One catalog query (the table list), since /readyz asks on every probe."""
    if set(sa.inspect(connection).get_table_names()).issuperset(REQUIRED_TABLES):
        return None
    return NO_SCHEMA


def write_problem(connection: sa.Connection, min_free_bytes: int) -> str | None:
    """Why an upload could not be stored right now, or None; writes nothing.

    SQLite: the database file and its folder (the write-ahead log lives there)
    must be writable and the disk must have ``min_free_bytes`` free. PostgreSQL:
    the server must not be a standby or read-only.
    """
    if connection.dialect.name == "postgresql":
        recovery, read_only = connection.execute(
            sa.text(
                "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"
            )
        ).one()
        if recovery or read_only == "on":
            return "PostgreSQL accepts no writes (a standby, or read-only)"
        return None
    if connection.dialect.name != "sqlite":
        return None
    database = connection.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    folder = path.parent
    if not all(os.access(p, os.W_OK) for p in (path, folder) if p.exists()):
        return f"the SQLite database {path.name} or its folder is read-only"
    free = shutil.disk_usage(folder).free
    if free < min_free_bytes:
        return (
            f"the disk holding the database has {free // 2**20} MiB free, "
            f"less than READY_MIN_FREE_MB ({min_free_bytes // 2**20} MiB)"
        )
    return None


__all__ = [
    "NO_SCHEMA",
    "committed_in_request",
    "init_app",
    "is_missing_schema",
    "schema_problem",
    "sqlite_synchronous",
    "warn_if_no_schema",
    "write_problem",
]
