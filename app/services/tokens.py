"""API tokens: issue within the per-user limit, for the account page and the CLI."""

from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models import ApiToken
from app.models import User


class TooManyTokens(Exception):
    """The user already holds ``MAX_TOKENS_PER_USER`` active tokens."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You have {limit} active tokens, the most allowed: revoke one first."
        )
        self.limit = limit


def active_tokens(user: User) -> int:
    return db.session.scalar(
        sa.select(sa.func.count(ApiToken.id)).where(
            ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)
        )
    )


def issue_token(user: User, name: str, limit: int) -> str:
    """Store a new token for ``user`` and return it in plain text (shown once).

    :raises TooManyTokens: the user holds ``limit`` active tokens already.
    """
    if active_tokens(user) >= limit:
        raise TooManyTokens(limit)
    token, plain = ApiToken.issue(user, name)
    db.session.add(token)
    db.session.commit()
    return plain
