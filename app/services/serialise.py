"""The JSON shapes of stored rows: what the API answers (``app/api/schemas.py``
describes them), what the history's JSON export holds, and the feedback that
the result pages' script reads.

Here, at the services level, not in ``api/``: the JSON export
(``services/history.py``) and the pages give the same shapes, and neither a
service nor a page may import the API's views. The functions take rows and
plain values (a URL is made by the view that knows the endpoint).
"""

from __future__ import annotations

from app import explanations
from app.models import Batch
from app.models import Prediction


def prediction_json(row: Prediction, explain: bool = False) -> dict:
    """One stored prediction (``Prediction`` in the API), with its class
    activation maps when ``explain``."""
    body = {
        "id": row.id,
        "filename": row.filename,
        "sha256": row.sha256,
        "mime_type": row.mime_type,
        "size_bytes": row.size_bytes,
        "width": row.width,
        "height": row.height,
        "predictions": row.label_scores,
        "model": {
            "name": row.model_name,
            "weights": row.weights,
            "backend": row.backend,
            "precision": row.precision,
            "random_weights": row.random_weights,
        },
        "timing_ms": row.timing_ms,
        "cached": row.cached,
        "created_at": row.created_at.isoformat(),
        "feedback": feedback_json(row),
        "batch_id": row.batch_id,
    }
    if explain:
        body["explanation"] = explanation_json(row)
    return body


def predict_result_json(
    row: Prediction,
    *,
    total_ms: float,
    url: str,
    min_confidence: float | None = None,
    explain: bool = False,
) -> dict:
    """One image's result in ``/predict``'s answer (``PredictResult``): the
    stored fields a caller needs at once, the request's ``total`` time, and
    ``uncertain`` and ``explanation`` only when asked for."""
    body = {
        "id": row.id,
        "filename": row.filename,
        "sha256": row.sha256,
        "width": row.width,
        "height": row.height,
        "predictions": row.label_scores,
        "cached": row.cached,
        "timing_ms": {**row.timing_ms, "total": round(total_ms, 2)},
        "url": url,
    }
    if min_confidence is not None:
        body["uncertain"] = row.top_score < min_confidence
    if explain:
        body["explanation"] = explanation_json(row)
    return body


def feedback_json(row: Prediction) -> dict | None:
    """``{"correct", "label", "updated_at"}``, or None when not reviewed."""
    if row.feedback_correct is None:
        return None
    return {
        "correct": row.feedback_correct,
        "label": row.top_label if row.feedback_correct else row.feedback_label,
        "updated_at": row.feedback_at.isoformat() if row.feedback_at else None,
    }


def explanation_json(row: Prediction) -> dict | None:
    """The maps per label (``explain=true``), or None."""
    return explanations.api_dict(row.label_scores, row.explanation)


def batch_json(batch: Batch, url: str) -> dict:
    """A person's named upload group (``Batch`` in the API), with its page."""
    return {
        "id": batch.id,
        "name": batch.name,
        "created_at": batch.created_at.isoformat(),
        "url": url,
    }
