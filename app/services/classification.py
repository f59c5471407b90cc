"""The one path from an upload request to stored predictions, for pages and API.

``POST /upload`` (the page) and ``POST /predict`` (the API) both call
:func:`classify_request`: parameters are parsed once, the images are read,
classified and stored once, and the outcome is reported to the metrics and the
request log as data. Refusals are raised (``BadParameter``, ``UploadError``,
``ImageRejected``, ``InferenceError``) and answered by ``app/errors.py``, a
page or JSON as the request asks. The views only shape the success.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flask import Request
from flask import current_app

from app.model_service import model_service
from app.models import User
from app.plumbing import metrics
from app.plumbing.params import parse_bool
from app.plumbing.params import parse_decimal
from app.plumbing.params import parse_int
from app.plumbing.uploads import read_uploads
from app.services.batches import batch_for_upload
from app.services.predictions import ClassifyOutcome
from app.services.predictions import classify_and_store


@dataclass(frozen=True)
class ClassifyParams:
    """What a request asks of the classification besides its images."""

    top_k: int
    min_confidence: float | None = None
    batch_id: int | None = None
    # Add each result's class activation maps to the API answer.
    explain: bool = False


def classify_params(values: Mapping, user: User) -> ClassifyParams:
    """``top_k``, ``min_confidence``, ``batch_id`` and ``explain`` from a form
    or query."""
    config = current_app.config
    return ClassifyParams(
        top_k=parse_int(
            values.get("top_k"),
            "top_k",
            default=config["DEFAULT_TOP_K"],
            minimum=1,
            maximum=config["MAX_TOP_K"],
        ),
        min_confidence=parse_decimal(
            values.get("min_confidence"),
            "min_confidence",
            minimum=0.0,
            maximum=1.0,
            example="0.5",
        ),
        explain=parse_bool(values.get("explain"), "explain"),
        batch_id=batch_for_upload(user, values.get("batch_id")),
    )


def classify_request(
    request: Request, user: User, params: ClassifyParams
) -> ClassifyOutcome:
    """Read the request's images, classify and store them for ``user``."""
    config = current_app.config
    uploads = read_uploads(request, config["MAX_FILES_PER_REQUEST"])
    classifier = model_service().ready_classifier()
    outcome = classify_and_store(
        classifier,
        user,
        uploads,
        params.top_k,
        use_cache=config["RESULT_CACHE"],
        batch_id=params.batch_id,
        shared_cache=config["RESULT_CACHE_SHARED"],
    )
    metrics.observe_classification(outcome)
    return outcome
