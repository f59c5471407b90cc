"""Classify uploads for a user and store the results, all or nothing."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from dataclasses import field

import sqlalchemy as sa

from .extensions import db
from .inference import Classifier
from .inference import InferenceError
from .models import Prediction
from .models import User
from .uploads import Upload


@dataclass
class ClassifyOutcome:
    """The stored rows, in upload order, and where the request's time went."""

    rows: list[Prediction]
    timing_ms: dict[str, float] = field(default_factory=dict)
    batch_size: int = 0


class ImageRejected(Exception):
    """One upload of a request was refused; the whole request is refused."""

    def __init__(self, filename: str, error: InferenceError) -> None:
        super().__init__(f"{filename}: {error}")
        self.filename = filename
        self.error = error


def classify_and_store(
    classifier: Classifier, user: User, uploads: list[Upload], top_k: int
) -> ClassifyOutcome:
    """Decode every upload, classify them as one batch, store one row each.

    Nothing is stored unless every upload decodes and the commit succeeds, so a
    success reply always means the rows exist and a failure leaves none.
    """
    started = time.perf_counter()
    decoded = []
    for upload in uploads:
        try:
            decoded.append(classifier.decode(upload.data))
        except InferenceError as exc:
            raise ImageRejected(upload.filename, exc) from exc
    decode_ms = sum(image.decode_ms for image in decoded)
    batch = classifier.classify(decoded, top_k)

    db_started = time.perf_counter()
    info = classifier.info
    rows = []
    for upload, image, predictions in zip(
        uploads, decoded, batch.predictions, strict=True
    ):
        best = predictions[0]
        rows.append(
            Prediction(
                user_id=user.id,
                sha256=hashlib.sha256(upload.data).hexdigest(),
                filename=upload.filename,
                mime_type=image.mime_type,
                size_bytes=len(upload.data),
                width=image.width,
                height=image.height,
                top_k=[p.as_dict() for p in predictions],
                top_label=best.label,
                top_score=best.score,
                model_name=info.name,
                weights=info.weights,
                backend=info.backend,
                timing_ms={
                    "decode": round(image.decode_ms, 2),
                    "preprocess": round(batch.preprocess_ms, 2),
                    "inference": round(batch.inference_ms, 2),
                },
                thumbnail=image.thumbnail,
            )
        )
    try:
        db.session.add_all(rows)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    finished = time.perf_counter()
    return ClassifyOutcome(
        rows=rows,
        timing_ms={
            "decode": decode_ms,
            "preprocess": batch.preprocess_ms,
            "inference": batch.inference_ms,
            "db": (finished - db_started) * 1000.0,
            "total": (finished - started) * 1000.0,
        },
        batch_size=len(rows),
    )


def owned_prediction(user: User, prediction_id: int) -> Prediction | None:
    """The user's own prediction, or None (also for other users' ids)."""
    return db.session.scalar(
        sa.select(Prediction).where(
            Prediction.id == prediction_id, Prediction.user_id == user.id
        )
    )


def history_query(user: User) -> sa.Select:
    return (
        sa.select(Prediction)
        .where(Prediction.user_id == user.id)
        .order_by(Prediction.created_at.desc(), Prediction.id.desc())
    )


def server_timing_header(timing_ms: dict[str, float]) -> str:
    """``Server-Timing: decode;dur=3.1, inference;dur=48.0, ...``"""
    return ", ".join(f"{name};dur={value:.1f}" for name, value in timing_ms.items())
