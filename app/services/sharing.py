"""Public links to single results: create, revoke, look up."""

from __future__ import annotations

import re
import secrets

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.extensions import db
from app.models import Prediction
from app.services.history import is_expired

# secrets.token_urlsafe(32): 43 characters from the URL-safe base64 alphabet.
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


def share(prediction: Prediction) -> str:
    """Give the prediction a public link token (kept if it already has one)."""
    if prediction.share_token is None:
        prediction.share_token = secrets.token_urlsafe(32)
        db.session.commit()
    return prediction.share_token


def unshare(prediction: Prediction) -> None:
    """Revoke the public link: the old token stops working for good."""
    if prediction.share_token is not None:
        prediction.share_token = None
        db.session.commit()


def shared_prediction(token: str, *, thumbnail: bool = False) -> Prediction | None:
    """The prediction shared under ``token``, or None (unknown or revoked)."""
    if not TOKEN_PATTERN.match(token):
        return None
    query = sa.select(Prediction).where(Prediction.share_token == token)
    if thumbnail:
        query = query.options(so.joinedload(Prediction.thumbnail))
    prediction = db.session.scalar(query.options(so.joinedload(Prediction.user)))
    if prediction is None or is_expired(prediction, prediction.user):
        return None
    return prediction
