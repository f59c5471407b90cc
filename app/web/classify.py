"""The view side of classifying uploads, shared by ``POST /upload`` (the page,
app/web/routes.py) and ``POST /predict`` (the API, app/api/routes.py).

The views call :func:`classify_params`, then :func:`classify_request`, which
reads the request and the settings, calls the one service
(``app.services.classification``) with plain values, and reports its outcome to
the metrics and the request log. The views only shape the success (the API
with :func:`server_timing_header`); refusals are raised and answered by
``app/errors.py``.
"""

from __future__ import annotations

from flask import Request
from flask import current_app
from werkzeug.datastructures import MultiDict

from app.http.uploads import read_uploads
from app.model_service import model_service
from app.models import User
from app.observability import metrics
from app.observability import request_log
from app.services.batches import batch_for_upload
from app.services.classification import ClassifyParams
from app.services.classification import ClassifySettings
from app.services.classification import classify_uploads
from app.services.predictions import ClassifyOutcome


def classify_params(values: MultiDict, user: User) -> ClassifyParams:
    """``top_k``, ``min_confidence``, ``explain`` and ``batch_id`` from a form
    or query; the batch must be the user's."""
    params = ClassifyParams.parse(values)
    batch_for_upload(user, params.batch_id)
    return params


def classify_request(
    request: Request, user: User, params: ClassifyParams
) -> ClassifyOutcome:
    """Classify and store the request's images for ``user``, and report the
    outcome to the metrics and the request log."""
    config = current_app.config
    uploads = read_uploads(request, config["MAX_FILES_PER_REQUEST"])
    outcome = classify_uploads(
        model_service().ready_classifier(),
        user,
        uploads,
        params,
        ClassifySettings.from_config(config),
    )
    metrics.observe_classification(outcome)
    request_log.note_classification(outcome)
    return outcome


def server_timing_header(outcome: ClassifyOutcome) -> str:
    """``Server-Timing: decode;dur=3.1, queue;dur=2.0, ..., cache;desc="1/2"``

    ``queue`` is the wait for the batching loop; the ``cache`` entry says how
    many of the request's images were cache hits.
    """
    parts = [f"{name};dur={value:.1f}" for name, value in outcome.timing_ms.items()]
    parts.append(f'cache;desc="{outcome.cache_hits}/{len(outcome.rows)}"')
    return ", ".join(parts)
