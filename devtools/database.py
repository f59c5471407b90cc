"""Throw-away databases for real servers: a fresh PostgreSQL database or SQLite
file per test or run, and dropping every table (a fresh schema)."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import sqlalchemy as sa

POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def reset_schema(engine: sa.Engine) -> None:
    """Drop every table, alembic_version included (a fresh database)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(sa.text("DROP SCHEMA public CASCADE"))
            connection.execute(sa.text("CREATE SCHEMA public"))
    else:
        metadata = sa.MetaData()
        metadata.reflect(engine)
        metadata.drop_all(engine)


def postgres_reachable(timeout_s: float = 2.0) -> bool:
    """True when the local PostgreSQL accepts connections."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=timeout_s):
            pass
    except OSError:
        return False
    engine = sa.create_engine(f"{POSTGRES_SERVER}/postgres")
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def fresh_postgres_database(name: str) -> str:
    """Drop and create database ``name`` on the local server; return its URL."""
    _on_postgres_server(
        f'DROP DATABASE IF EXISTS "{_safe(name)}" (FORCE)', f'CREATE DATABASE "{name}"'
    )
    return f"{POSTGRES_SERVER}/{name}"


def drop_postgres_database(name: str) -> None:
    """Drop database ``name`` from the local server, connections and all."""
    _on_postgres_server(f'DROP DATABASE IF EXISTS "{_safe(name)}" (FORCE)')


def _safe(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"unsafe database name {name!r}")
    return name


def _on_postgres_server(*statements: str) -> None:
    """Run statements outside a transaction (CREATE/DROP DATABASE need that)."""
    engine = sa.create_engine(
        f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(sa.text(statement))
    finally:
        engine.dispose()


def reset_database(url: str) -> None:
    """Drop every table of ``url`` (a PostgreSQL schema or a SQLite file)."""
    engine = sa.create_engine(url)
    try:
        reset_schema(engine)
    finally:
        engine.dispose()


def database_for_test(tmp: Path, name: str) -> str:
    """The database a server test uses: a fresh PostgreSQL database ``name``
    when ``TEST_DATABASE_URL`` is set (CI's PostgreSQL pass), else SQLite."""
    if os.environ.get("TEST_DATABASE_URL", "").startswith("postgres"):
        return fresh_postgres_database(name)
    return f"sqlite:///{tmp / (name + '.sqlite3')}"
