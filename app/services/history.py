"""History: search, filters and sorting, exports, and the retention purge."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import time
from datetime import timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so

from app.extensions import db
from app.models import Prediction
from app.models import User
from app.models import utcnow
from app.services.serialise import prediction_json
from app.services.storage import delete_predictions

# Sort keys offered on the history page: key -> (label, ORDER BY columns).
SORTS: dict[str, tuple[str, tuple]] = {
    "newest": ("Newest first", (Prediction.created_at.desc(), Prediction.id.desc())),
    "oldest": ("Oldest first", (Prediction.created_at.asc(), Prediction.id.asc())),
    "confidence": (
        "Most confident first",
        (Prediction.top_score.desc(), Prediction.id.desc()),
    ),
    "uncertain": (
        "Least confident first",
        (Prediction.top_score.asc(), Prediction.id.desc()),
    ),
    "label": ("Label A-Z", (Prediction.top_label.asc(), Prediction.id.desc())),
}
DEFAULT_SORT = "newest"
# The history's review filter: key -> (label, WHERE clause).
REVIEWS: dict[str, tuple[str, object]] = {
    "": ("All", None),
    "confirmed": ("Confirmed right", Prediction.feedback_correct.is_(True)),
    "corrected": ("Corrected", Prediction.feedback_correct.is_(False)),
    "unreviewed": ("Not reviewed", Prediction.feedback_correct.is_(None)),
}
# Choices for User.history_retention_days; 0 means keep forever (None).
RETENTION_CHOICES = (0, 1, 7, 30, 90, 365)
# Spreadsheets run cells that start with these as formulas (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = (
    "id",
    "created_at",
    "filename",
    "top_label",
    "top_score",
    "predictions",
    "model",
    "weights",
    "backend",
    "width",
    "height",
    "size_bytes",
    "mime_type",
    "sha256",
    "cached",
    "shared",
    "feedback",
    "corrected_label",
    "feedback_at",
)


@dataclass(frozen=True)
class HistoryFilters:
    """What the history page shows: label search, UTC date range, sort order."""

    q: str = ""
    start: date | None = None
    end: date | None = None
    sort: str = DEFAULT_SORT
    review: str = ""
    batch: int | None = None

    def args(self) -> dict[str, str]:
        """Query-string arguments that reproduce these filters (for links)."""
        args = {}
        if self.q:
            args["q"] = self.q
        if self.start:
            args["start"] = self.start.isoformat()
        if self.end:
            args["end"] = self.end.isoformat()
        if self.sort != DEFAULT_SORT:
            args["sort"] = self.sort
        if self.review:
            args["review"] = self.review
        if self.batch:
            args["batch"] = str(self.batch)
        return args

    @property
    def active(self) -> bool:
        return bool(self.q or self.start or self.end or self.review or self.batch)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def filtered_query(user: User, filters: HistoryFilters) -> sa.Select:
    """The user's predictions matching ``filters``, in the chosen order."""
    query = sa.select(Prediction).where(
        Prediction.user_id == user.id, *within_retention(user)
    )
    if filters.q:
        pattern = "%" + escape_like(filters.q) + "%"
        query = query.where(Prediction.top_label.ilike(pattern, escape="\\"))
    if filters.start:
        query = query.where(Prediction.created_at >= day_start(filters.start))
    if filters.end:
        # The end date is inclusive: everything before the next midnight (UTC).
        next_day = day_start(filters.end) + timedelta(days=1)
        query = query.where(Prediction.created_at < next_day)
    if filters.batch:
        query = query.where(Prediction.batch_id == filters.batch)
    _, review = REVIEWS.get(filters.review, REVIEWS[""])
    if review is not None:
        query = query.where(review)
    _, order = SORTS.get(filters.sort, SORTS[DEFAULT_SORT])
    return query.order_by(*order)


def escape_like(text: str) -> str:
    """Make ``%`` and ``_`` in a search match themselves in LIKE."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def delete_owned(user: User, ids: list[int]) -> int:
    """Delete the user's predictions among ``ids``; other users' ids are ignored."""
    if not ids:
        return 0
    deleted = delete_predictions(
        Prediction.user_id == user.id, Prediction.id.in_(set(ids))
    )
    db.session.commit()
    return deleted


def delete_one(row: Prediction) -> None:
    """Delete one prediction (already checked to be the user's) and commit."""
    delete_predictions(Prediction.id == row.id)
    db.session.commit()


# --------------------------------------------------------------------------
# Retention


# Expired predictions are hidden from every read at once (within_retention) and
# deleted on the user's next upload, when retention changes, or by
# `flask purge-history`: a GET never writes.


def retention_cutoff(user: User, now: datetime | None = None) -> datetime | None:
    """Predictions of ``user`` created before this are expired (None: kept)."""
    days = user.history_retention_days
    if not days:
        return None
    return (now or utcnow()) - timedelta(days=days)


def within_retention(user: User, now: datetime | None = None) -> list:
    """WHERE clauses that hide the user's expired predictions."""
    cutoff = retention_cutoff(user, now)
    return [] if cutoff is None else [Prediction.created_at >= cutoff]


def is_expired(row: Prediction, user: User, now: datetime | None = None) -> bool:
    cutoff = retention_cutoff(user, now)
    return cutoff is not None and row.created_at < cutoff


def delete_expired(user: User, now: datetime | None = None) -> int:
    """Delete the user's expired predictions in the current transaction."""
    cutoff = retention_cutoff(user, now)
    if cutoff is None:
        return 0
    return delete_predictions(
        Prediction.user_id == user.id, Prediction.created_at < cutoff
    )


def purge_expired(user: User, now: datetime | None = None) -> int:
    """Delete the user's expired predictions and commit."""
    deleted = delete_expired(user, now)
    if deleted:
        db.session.commit()
    return deleted


def purge_all_expired(now: datetime | None = None) -> tuple[int, int]:
    """Purge for every user with a retention setting: (rows deleted, users)."""
    users = db.session.scalars(
        sa.select(User).where(User.history_retention_days.is_not(None))
    ).all()
    deleted = sum(purge_expired(user, now) for user in users)
    return deleted, len(users)


def retention_label(days: int | None) -> str:
    if not days:
        return "forever"
    if days == 365:
        return "1 year"
    return f"{days} day{'' if days == 1 else 's'}"


# --------------------------------------------------------------------------
# Exports


def csv_cell(value: object) -> object:
    """Neutralise spreadsheet formulas: text starting with = + - @ gets a quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_row(row: Prediction) -> list[object]:
    predictions = "; ".join(
        f"{p.get('label')}: {p.get('score', 0):.6f}" for p in row.label_scores or []
    )
    values = (
        row.id,
        row.created_at.isoformat(),
        row.filename,
        row.top_label,
        f"{row.top_score:.6f}",
        predictions,
        row.model_name,
        row.weights,
        row.backend,
        row.width,
        row.height,
        row.size_bytes,
        row.mime_type,
        row.sha256,
        "true" if row.cached else "false",
        "true" if row.share_token else "false",
        review_state(row),
        corrected_label(row),
        row.feedback_at.isoformat() if row.feedback_at else "",
    )
    return [csv_cell(value) for value in values]


def review_state(row: Prediction) -> str:
    """confirmed, corrected, or "" (not reviewed)."""
    if row.feedback_correct is None:
        return ""
    return "confirmed" if row.feedback_correct else "corrected"


def corrected_label(row: Prediction) -> str:
    """The label a person gave: the predicted one when confirmed, else theirs."""
    if row.feedback_correct is None:
        return ""
    return row.top_label if row.feedback_correct else row.feedback_label or ""


def export_rows(query: sa.Select) -> Iterator[Prediction]:
    """The rows of ``query``, fetched in chunks (the thumbnails stay unloaded)."""
    yield from db.session.scalars(query.execution_options(yield_per=500))


def csv_export(query: sa.Select) -> Iterator[str]:
    """The history as CSV, one chunk per row, header first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for row in export_rows(query):
        writer.writerow(csv_row(row))
        yield flush()


def json_export(query: sa.Select, username: str) -> Iterator[str]:
    """The history as one JSON document: ``{"user", "exported_at", "items"}``."""
    head = json.dumps({"user": username, "exported_at": utcnow().isoformat()})
    yield head[:-1] + ', "items": ['
    for index, row in enumerate(export_rows(query)):
        item = prediction_json(row)
        item["shared"] = row.share_token is not None
        yield ("," if index else "") + json.dumps(item)
    yield "]}\n"


# --------------------------------------------------------------------------
# Dataset export: thumbnails and labels, for fine-tuning on one's corrections

DATASET_COLUMNS = (
    "file",
    "filename",
    "predicted_label",
    "score",
    "feedback",
    "corrected_label",
)


class _ZipSink(io.RawIOBase):
    """Where zipfile writes; the export hands each piece on as it is written.

    Not seekable, so zipfile streams (sizes in data descriptors) and the
    response holds one thumbnail at a time, whatever the history's size.
    """

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def dataset_zip(query: sa.Select) -> Iterator[bytes]:
    """``images/<id>.jpg`` per row, then ``labels.csv`` (file, predicted label,
    score, feedback, corrected label). Names are ids: a filename a person
    uploaded never becomes a path in the archive."""
    sink = _ZipSink()
    labels = io.StringIO()
    writer = csv.writer(labels)
    writer.writerow(DATASET_COLUMNS)
    # JPEG thumbnails do not compress further: stored, not deflated.
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        rows = query.options(so.joinedload(Prediction.thumbnail)).execution_options(
            yield_per=100
        )
        for row in db.session.scalars(rows):
            name = f"images/{row.id}.jpg"
            archive.writestr(name, row.thumbnail.data)
            values = (
                name,
                row.filename,
                row.top_label,
                f"{row.top_score:.6f}",
                review_state(row),
                corrected_label(row),
            )
            writer.writerow([csv_cell(v) for v in values])
            yield sink.take()
        archive.writestr("labels.csv", labels.getvalue().encode("utf-8"))
    yield sink.take()
