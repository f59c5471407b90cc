"""Batches: a named upload of many photos (a folder), with its own page.

The upload page's script creates the batch (``POST /api/batches``), then sends
the photos to ``/predict`` in requests of MAX_FILES_PER_REQUEST, each with the
batch's id. A user only ever adds to, sees or deletes their own batches:
another user's batch id is a 404, like a missing one. The pages are in
app/web/batches.py.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from datetime import timedelta

import sqlalchemy as sa

from app.extensions import db
from app.http.params import MAX_ID
from app.http.params import BadParameter
from app.http.params import parse_int
from app.models import MAX_BATCH_NAME
from app.models import Batch
from app.models import Prediction
from app.models import User
from app.models import utcnow
from app.services.history import within_retention
from app.services.storage import delete_predictions

# The batch page shows this many photos; the exports have them all.
PAGE_LIMIT = 500
# The history page lists this many recent batches.
RECENT_BATCHES = 10


def clean_name(value: object) -> str:
    """A batch name: blanks collapsed, at most MAX_BATCH_NAME characters, no
    control characters; empty means "Upload <date and time>"."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise BadParameter("name", "name must be a string.")
    name = " ".join(value.split())
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise BadParameter("name", "The batch name contains control characters.")
    if len(name) > MAX_BATCH_NAME:
        raise BadParameter(
            "name", f"The batch name is longer than {MAX_BATCH_NAME} characters."
        )
    return name or utcnow().strftime("Upload %Y-%m-%d %H:%M UTC")


class TooManyEmptyBatches(Exception):
    """The user already has ``limit`` batches with no photos in them."""

    code = "too_many_empty_batches"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You have {limit} empty batches already: upload photos into one of "
            "them, or wait until unused ones are cleared (after an hour)."
        )
        self.limit = limit


def create_batch(
    user: User, name: object, *, max_empty: int, empty_ttl: timedelta
) -> Batch:
    """A new, empty batch; the user's empty batches older than ``empty_ttl``
    go first, and at most ``max_empty`` may stand empty at once.

    :raises TooManyEmptyBatches: the user has ``max_empty`` empty batches.
    """
    batch = Batch(user_id=user.id, name=clean_name(name))
    delete_empty_batches(utcnow() - empty_ttl, user)
    empty = db.session.scalar(
        sa.select(sa.func.count()).select_from(Batch).where(*empty_batches(user))
    )
    if empty >= max_empty:
        db.session.commit()  # the purge above stands either way
        raise TooManyEmptyBatches(max_empty)
    db.session.add(batch)
    db.session.commit()
    return batch


def empty_batches(user: User | None = None) -> list:
    """Conditions for batches without a single photo (of one user, or all)."""
    conditions = [~sa.exists().where(Prediction.batch_id == Batch.id)]
    if user is not None:
        conditions.append(Batch.user_id == user.id)
    return conditions


def delete_empty_batches(created_before: datetime, user: User | None = None) -> int:
    """Delete empty batches created before ``created_before``, in the current
    transaction: one user's, or everybody's (``flask purge-history``)."""
    result = db.session.execute(
        sa.delete(Batch).where(*empty_batches(user), Batch.created_at < created_before)
    )
    return result.rowcount


def owned_batch(user: User, batch_id: int) -> Batch | None:
    if not 0 < batch_id <= MAX_ID:
        return None
    return db.session.scalar(
        sa.select(Batch).where(Batch.id == batch_id, Batch.user_id == user.id)
    )


def batch_for_upload(user: User, value: object) -> int | None:
    """The ``batch_id`` an upload names, checked to be the user's own batch."""
    batch_id = parse_int(value, "batch_id", minimum=1)
    if batch_id is None:
        return None
    if owned_batch(user, batch_id) is None:
        raise BadParameter("batch_id", "No such batch: create it first.")
    return batch_id


def recent_batches(user: User, limit: int = RECENT_BATCHES) -> list[tuple[Batch, int]]:
    """The user's latest batches with how many photos each holds."""
    count = sa.func.count(Prediction.id)
    rows = db.session.execute(
        sa.select(Batch, count)
        .outerjoin(
            Prediction,
            sa.and_(
                Prediction.batch_id == Batch.id,
                # Only the owner's rows count, whatever a batch id once was.
                Prediction.user_id == user.id,
                *within_retention(user),
            ),
        )
        .where(Batch.user_id == user.id)
        .group_by(Batch.id)
        .order_by(Batch.created_at.desc(), Batch.id.desc())
        .limit(limit)
    ).all()
    return [(batch, n) for batch, n in rows]


def batch_rows(user: User, batch: Batch, min_confidence: float) -> list[Prediction]:
    """The batch's photos, "not sure" ones first (least confident first), then
    the rest in upload order."""
    unsure = sa.case((Prediction.top_score < min_confidence, 0), else_=1)
    return db.session.scalars(
        sa.select(Prediction)
        .where(
            Prediction.batch_id == batch.id,
            Prediction.user_id == user.id,
            *within_retention(user),
        )
        .order_by(unsure, sa.case((unsure == 0, Prediction.top_score)), Prediction.id)
        .limit(PAGE_LIMIT)
    ).all()


def label_counts(user: User, batch: Batch) -> list[tuple[str, int]]:
    count = sa.func.count(Prediction.id)
    rows = db.session.execute(
        sa.select(Prediction.top_label, count)
        .where(
            Prediction.batch_id == batch.id,
            Prediction.user_id == user.id,
            *within_retention(user),
        )
        .group_by(Prediction.top_label)
        .order_by(count.desc(), Prediction.top_label)
    ).all()
    return [(label, n) for label, n in rows]


def delete_batch(user: User, batch: Batch) -> int:
    """Delete the batch and its photos; returns how many photos went."""
    deleted = delete_predictions(
        Prediction.batch_id == batch.id, Prediction.user_id == user.id
    )
    db.session.delete(batch)
    db.session.commit()
    return deleted
