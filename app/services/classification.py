"""The one path from an upload request to stored predictions, for pages and API.

``POST /upload`` (the page) and ``POST /predict`` (the API) both call
:func:`classify_request`: parameters are parsed once, the images are read,
classified and stored once, and the outcome is reported to the metrics and the
request log as data. Refusals are raised (``BadParameter``, ``UploadError``,
``ImageRejected``, ``InferenceError``, ``StorageQuotaExceeded``) and answered
by ``app/errors.py``, a page or JSON as the request asks. The views only shape
the success.
"""

from __future__ import annotations

from flask import Request
from flask import current_app
from werkzeug.datastructures import MultiDict

from app.http.params import MAX_ID
from app.http.params import Decimal
from app.http.params import Integer
from app.http.params import Params
from app.http.params import Setting
from app.http.params import Switch
from app.http.uploads import read_uploads
from app.model_service import model_service
from app.models import User
from app.observability import metrics
from app.services.batches import batch_for_upload
from app.services.predictions import ClassifyOutcome
from app.services.predictions import classify_and_store

Explain = Switch(
    "`true` (or `1`) adds each result's class activation maps (`explanation`)."
)
TopK = Integer(
    1, Setting("MAX_TOP_K"), "Labels per image.", default=Setting("DEFAULT_TOP_K")
)
MinConfidence = Decimal(
    0.0, 1.0, "Mark results whose top score is below this as `uncertain`."
)
# Its format only: classify_params checks that the batch is the user's.
BatchId = Integer(
    1, MAX_ID, "Add the images to this batch of yours (from `POST /api/batches`)."
)


class ClassifyParams(Params):
    """What a request asks of the classification besides its images: query or
    form fields, of the API and the upload page alike (and in /openapi.json)."""

    top_k: TopK = None
    min_confidence: MinConfidence = None
    explain: Explain = False
    batch_id: BatchId = None


def classify_params(values: MultiDict, user: User) -> ClassifyParams:
    """``top_k``, ``min_confidence``, ``explain`` and ``batch_id`` from a form
    or query."""
    params = ClassifyParams.parse(values)
    batch_for_upload(user, params.batch_id)
    return params


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
        max_stored_bytes=config["MAX_STORED_BYTES_PER_USER"],
    )
    metrics.observe_classification(outcome)
    return outcome
