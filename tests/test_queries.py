"""The SQL a /predict request costs: each statement is CPU and, on PostgreSQL,
a round trip, on the path every upload takes."""

from __future__ import annotations

import re
from contextlib import contextmanager

import sqlalchemy as sa

from app.extensions import db
from app.models import Prediction
from tests.helpers import ApiClient


@contextmanager
def recorded_statements(app):
    """The SQL text of every statement run inside the block, in order."""
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(" ".join(statement.split()).upper())

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def selects_from(statements: list[str], table: str) -> list[str]:
    pattern = re.compile(rf"^SELECT .* FROM {table.upper()}\b")
    return [s for s in statements if pattern.match(s)]


def test_token_request_loads_token_and_user_in_one_query(api, app):
    assert api.predict().status_code == 200  # touches the token
    with recorded_statements(app) as statements:
        response = api.predict()
    assert response.status_code == 200
    token_queries = selects_from(statements, "api_tokens")
    assert len(token_queries) == 1
    assert "JOIN USERS" in token_queries[0]
    assert selects_from(statements, "users") == []


def test_session_request_loads_session_and_user_in_one_query(client, signed_in, app):
    csrf = {"X-CSRFToken": signed_in.page_csrf_token()}
    with recorded_statements(app) as statements:
        response = ApiClient(client).predict(headers=csrf)
    assert response.status_code == 200
    session_queries = selects_from(statements, "user_sessions")
    assert len(session_queries) == 1
    assert "JOIN USERS" in session_queries[0]
    assert selects_from(statements, "users") == []


def test_reply_is_built_without_reading_the_new_rows_back(api, app):
    with recorded_statements(app) as statements:
        response = api.predict()
    assert response.status_code == 200
    result = response.get_json()["results"][0]
    inserts = [
        i for i, s in enumerate(statements) if s.startswith("INSERT INTO PREDICTIONS")
    ]
    assert len(inserts) == 1
    after_insert = statements[inserts[0] + 1 :]
    # The result cache's lookup comes before the INSERT; nothing reads after it.
    assert selects_from(after_insert, "predictions") == []
    # ...and the reply still carries the stored row's values.
    with app.app_context():
        stored = db.session.get(Prediction, result["id"])
        assert stored.sha256 == result["sha256"]
        assert stored.label_scores == result["predictions"]
        assert stored.created_at is not None
