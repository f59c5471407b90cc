"""Feedback on predictions: people confirm a label or correct it, and keep it.

A prediction is *confirmed* (``feedback_correct`` True), *corrected* to
``feedback_label`` (False), or *not reviewed* (None). A corrected label is one
of the ImageNet names or free text for something outside ImageNet, bounded by
MAX_FEEDBACK_LABEL. Pages (form or fetch) and the JSON API parse into the same
:class:`Verdict` and store it with :func:`apply`.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import sqlalchemy as sa

from app.extensions import db
from app.http.params import BadParameter
from app.inference import InferenceError
from app.model_service import ModelService
from app.models import MAX_FEEDBACK_LABEL
from app.models import Prediction
from app.models import utcnow


@dataclass(frozen=True)
class Verdict:
    """What a person said: right, wrong with the right label, or clear."""

    correct: bool | None
    label: str | None = None


CLEAR = Verdict(None)


def clean_label(value: object) -> str:
    """A corrected label: text, 1 to MAX_FEEDBACK_LABEL characters, no control
    characters (they would forge lines in the CSV export and the logs)."""
    if not isinstance(value, str):
        raise BadParameter("label", "label must be a string.")
    label = " ".join(value.split())
    if not label:
        raise BadParameter("label", "Give the right label (it is empty).")
    if len(label) > MAX_FEEDBACK_LABEL:
        raise BadParameter(
            "label", f"The label is longer than {MAX_FEEDBACK_LABEL} characters."
        )
    if any(unicodedata.category(ch).startswith("C") for ch in label):
        raise BadParameter("label", "The label contains control characters.")
    return label


def verdict_from_json(body: object) -> Verdict:
    """``{"correct": true}`` or ``{"correct": false, "label": "tabby"}``."""
    if not isinstance(body, dict):
        raise BadParameter("json", 'Send a JSON object such as {"correct": true}.')
    correct = body.get("correct")
    if not isinstance(correct, bool):
        raise BadParameter("correct", "correct must be true or false.")
    if correct:
        if body.get("label") is not None:
            raise BadParameter("label", "A label is only sent with correct: false.")
        return Verdict(True)
    return Verdict(False, clean_label(body.get("label")))


def verdict_from_form(form) -> Verdict:
    """A page's form: ``verdict`` is right, wrong (with ``label``) or clear."""
    verdict = form.get("verdict")
    if verdict == "right":
        return Verdict(True)
    if verdict == "wrong":
        return Verdict(False, clean_label(form.get("label", "")))
    if verdict == "clear":
        return CLEAR
    raise BadParameter("verdict", "verdict must be right, wrong or clear.")


def apply(prediction: Prediction, verdict: Verdict) -> None:
    """Store (or clear) the verdict and commit. Correcting to the predicted
    label itself is a confirmation."""
    correct, label = verdict.correct, verdict.label
    if correct is False and label == prediction.top_label:
        correct, label = True, None
    prediction.feedback_correct = correct
    prediction.feedback_label = label if correct is False else None
    prediction.feedback_at = utcnow() if correct is not None else None
    db.session.commit()


def describe(prediction: Prediction) -> str:
    """One sentence for the page's status line."""
    if prediction.feedback_correct is None:
        return "Not reviewed yet."
    if prediction.feedback_correct:
        return f"You confirmed: {prediction.top_label}."
    return f"You corrected it to: {prediction.feedback_label}."


def label_choices(service: ModelService) -> list[str]:
    """The ImageNet label names of ``service``'s model for the page's
    searchable list (sorted); none while the model cannot be built."""
    try:
        labels = service.classifier.labels
    except InferenceError:
        return []
    return _sorted_names(labels.entries)


@lru_cache(maxsize=4)
def _sorted_names(entries: tuple) -> list[str]:
    return sorted({name for _, name in entries}, key=str.casefold)


# --------------------------------------------------------------------------
# Admin figures


def agreement(since=None, top: int = 10) -> dict:
    """How often people agree with the model, and its most corrected labels."""
    where = [Prediction.created_at >= since] if since is not None else []
    reviewed, confirmed = db.session.execute(
        sa.select(
            sa.func.count(Prediction.id),
            sa.func.coalesce(
                sa.func.sum(
                    sa.case((Prediction.feedback_correct.is_(True), 1), else_=0)
                ),
                0,
            ),
        ).where(Prediction.feedback_correct.is_not(None), *where)
    ).one()
    count = sa.func.count(Prediction.id)
    pairs = db.session.execute(
        sa.select(Prediction.top_label, Prediction.feedback_label, count)
        .where(Prediction.feedback_correct.is_(False), *where)
        .group_by(Prediction.top_label, Prediction.feedback_label)
        .order_by(count.desc(), Prediction.top_label, Prediction.feedback_label)
        .limit(top)
    ).all()
    return {
        "reviewed": reviewed,
        "confirmed": int(confirmed),
        "corrected": reviewed - int(confirmed),
        "agreement": int(confirmed) / reviewed if reviewed else None,
        "corrections": [
            {"predicted": predicted, "corrected": corrected, "count": n}
            for predicted, corrected, n in pairs
        ],
    }
