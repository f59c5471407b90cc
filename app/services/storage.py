"""What the database keeps of an upload: thumbnails stored once by content,
the ones no row uses any more removed, and what each account stores, capped.

A history row points at a :class:`~app.models.Thumbnail`; identical uploads
(cache hits, or the same photo sent again by anyone) share one. Each way of
deleting rows goes through :func:`delete_predictions`, which removes the
thumbnails left unused and recounts the owner's storage.

An account's storage (``User.stored_bytes``) is ``ROW_BYTES`` per history row
plus the size of each distinct thumbnail its rows show. It counts what the
account would cost alone, whether or not someone else sent the same photo, so
it tells nobody about other accounts' uploads.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from app.extensions import db
from app.models import Prediction
from app.models import Thumbnail
from app.models import User
from app.models import utcnow

log = logging.getLogger(__name__)

# What a history row costs besides its thumbnail: its columns (labels and
# scores, activation maps, timings as JSON) and index entries. An estimate,
# measured on SQLite: docs/reliability.md, "Storage per account".
ROW_BYTES = 4 * 1024
# Ids per IN (...) list when thumbnails are looked up or removed.
CHUNK = 500


class StorageQuotaExceeded(Exception):
    """Storing the request's rows would take the account past its cap."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"storage quota of {limit_bytes} bytes reached")
        self.limit_bytes = limit_bytes


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def thumbnail_ids(blobs: Iterable[bytes]) -> dict[str, int]:
    """The id of the stored thumbnail for each of ``blobs`` (by SHA-256),
    inserting those not stored yet, in the current transaction.

    Race-safe: concurrent requests inserting the same JPEG meet on the unique
    ``sha256`` (INSERT ... ON CONFLICT DO NOTHING, then SELECT). On PostgreSQL
    the rows are locked (FOR KEY SHARE) until the commit, so that a concurrent
    :func:`drop_unused` cannot remove them before the new history rows exist.
    """
    by_digest = {digest(data): data for data in blobs}
    if not by_digest:
        return {}
    now = utcnow()
    values = [
        {"sha256": key, "size_bytes": len(data), "data": data, "created_at": now}
        for key, data in by_digest.items()
    ]
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[db.engine.dialect.name]
    insert = dialect.insert(Thumbnail).on_conflict_do_nothing(index_elements=["sha256"])
    db.session.execute(insert, values)
    return dict(
        db.session.execute(
            sa.select(Thumbnail.sha256, Thumbnail.id)
            .where(Thumbnail.sha256.in_(by_digest))
            .with_for_update(read=True, key_share=True)
        ).all()
    )


def thumbnail_id(data: bytes) -> int:
    """The id of the stored thumbnail with these bytes (inserted if new)."""
    return thumbnail_ids([data])[digest(data)]


def still_stored(ids: Iterable[int]) -> set[int]:
    """Which of the thumbnail ``ids`` exist, locked like :func:`thumbnail_ids`
    (a cache hit reuses its source's thumbnail, which a delete may have just
    removed)."""
    wanted = set(ids)
    if not wanted:
        return set()
    return set(
        db.session.scalars(
            sa.select(Thumbnail.id)
            .where(Thumbnail.id.in_(wanted))
            .with_for_update(read=True, key_share=True)
        )
    )


def charge(user_id: int, rows: Sequence[Prediction], limit_bytes: int) -> int:
    """Add what the (not yet stored) ``rows`` cost to the user's storage, or
    refuse past ``limit_bytes`` (0: no cap). Returns the bytes added.

    One conditional UPDATE, so concurrent requests of one account cannot pass
    the cap together. Call it before the rows are added to the session.

    :raises StorageQuotaExceeded: nothing was counted.
    """
    ids = {row.thumbnail_id for row in rows}
    known = set(
        db.session.scalars(
            sa.select(Prediction.thumbnail_id)
            .where(Prediction.thumbnail_id.in_(ids), Prediction.user_id == user_id)
            .distinct()
        )
    )
    new = ids - known
    sizes = db.session.scalars(
        sa.select(Thumbnail.size_bytes).where(Thumbnail.id.in_(new))
    )
    added = len(rows) * ROW_BYTES + sum(sizes)
    update = (
        sa.update(User)
        .where(User.id == user_id)
        .values(stored_bytes=User.stored_bytes + added)
        .execution_options(synchronize_session=False)
    )
    if limit_bytes:
        update = update.where(User.stored_bytes + added <= limit_bytes)
    if db.session.execute(update).rowcount != 1:
        raise StorageQuotaExceeded(limit_bytes)
    return added


def check_room(user: User, new_rows: int, limit_bytes: int) -> None:
    """Refuse early, before any decoding or inference, when ``new_rows`` more
    rows cannot fit whatever their thumbnails (:func:`charge` decides)."""
    if limit_bytes and user.stored_bytes + new_rows * ROW_BYTES > limit_bytes:
        raise StorageQuotaExceeded(limit_bytes)


def account_bytes(user_id: int) -> sa.ScalarSelect:
    """What the account stores, counted in SQL from its rows (see the module)."""
    rows = (
        sa.select(sa.func.count(Prediction.id))
        .where(Prediction.user_id == user_id)
        .scalar_subquery()
    )
    used = sa.select(Prediction.thumbnail_id).where(Prediction.user_id == user_id)
    thumbnails = (
        sa.select(sa.func.coalesce(sa.func.sum(Thumbnail.size_bytes), 0))
        .where(Thumbnail.id.in_(used))
        .scalar_subquery()
    )
    return rows * ROW_BYTES + thumbnails


def recount(user_id: int) -> None:
    """Set the user's ``stored_bytes`` from the rows left (after deletes)."""
    db.session.execute(
        sa.update(User)
        .where(User.id == user_id)
        .values(stored_bytes=account_bytes(user_id))
        .execution_options(synchronize_session=False)
    )


def delete_predictions(*where) -> int:
    """Delete the predictions matching ``where`` in the current transaction,
    then the thumbnails no row uses any more, and recount their owners'
    storage. Returns how many rows went."""
    found = db.session.execute(
        sa.select(Prediction.user_id, Prediction.thumbnail_id).where(*where).distinct()
    ).all()
    if not found:
        return 0
    deleted = db.session.execute(
        sa.delete(Prediction).where(*where).execution_options(synchronize_session=False)
    ).rowcount
    drop_unused({thumbnail_id for _, thumbnail_id in found})
    for user_id in {user_id for user_id, _ in found}:
        recount(user_id)
    return deleted


def drop_unused(ids: Iterable[int]) -> int:
    """Delete those of the thumbnail ``ids`` that no prediction uses.

    On PostgreSQL a concurrent upload may have just pointed a new row at one of
    them (it holds it FOR KEY SHARE): the foreign key then refuses the DELETE,
    which is undone to a savepoint and the thumbnail kept, as it is used again.
    """
    removed = 0
    ids = sorted(set(ids))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        delete = sa.delete(Thumbnail).where(
            Thumbnail.id.in_(chunk),
            ~sa.exists().where(Prediction.thumbnail_id == Thumbnail.id),
        )
        if db.engine.dialect.name == "sqlite":
            # One writer at a time: nothing can reuse them meanwhile.
            removed += db.session.execute(delete).rowcount
            continue
        try:
            with db.session.begin_nested():
                removed += db.session.execute(delete).rowcount
        except sa.exc.IntegrityError:
            log.info("thumbnails kept: an upload reused one while it was deleted")
    return removed


def drop_all_unused() -> int:
    """Delete every thumbnail no prediction uses (``flask purge-history``:
    rows removed by a database cascade, or by hand, leave theirs behind)."""
    unused = db.session.scalars(
        sa.select(Thumbnail.id).where(
            ~sa.exists().where(Prediction.thumbnail_id == Thumbnail.id)
        )
    ).all()
    return drop_unused(unused)
