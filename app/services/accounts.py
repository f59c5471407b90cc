"""Deleting an account and everything in it."""

from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models import ApiToken
from app.models import Batch
from app.models import Prediction
from app.models import User
from app.models import UserSession
from app.services.storage import delete_predictions


def delete_account_data(user_id: int) -> None:
    """Delete the user, their history (and the thumbnails no one else's rows
    show), batches, tokens and sessions, in one transaction, and commit."""
    delete_predictions(Prediction.user_id == user_id)
    for model in (Batch, ApiToken, UserSession):
        db.session.execute(sa.delete(model).where(model.user_id == user_id))
    db.session.execute(sa.delete(User).where(User.id == user_id))
    db.session.commit()
