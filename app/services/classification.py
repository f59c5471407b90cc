"""Classify a user's uploads and store the results: the one path of pages and API.

``POST /upload`` (the page) and ``POST /predict`` (the API) both reach
:func:`classify_uploads` through ``app/web/classify.py``, which reads the
request (parameters, images) and the settings, and reports the outcome to the
metrics and the request log. This module sees no HTTP: it takes the uploads,
the parameters, the settings and the classifier as values and returns a
:class:`ClassifyOutcome`. Refusals are raised (``BadParameter``,
``ImageRejected``, ``InferenceError``, ``StorageQuotaExceeded``) and answered
by ``app/errors.py``, a page or JSON as the request asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.http.params import MAX_ID
from app.http.params import Decimal
from app.http.params import Integer
from app.http.params import Params
from app.http.params import Setting
from app.http.params import Switch
from app.http.uploads import Upload
from app.inference import Classifier
from app.models import User
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
# Its format only: app/web/classify.py checks that the batch is the user's.
BatchId = Integer(
    1, MAX_ID, "Add the images to this batch of yours (from `POST /api/batches`)."
)


class ClassifyParams(Params):
    """What a request asks of the classification besides its images: query or
    form fields, of the API and the upload page alike (and in /openapi.json).
    The view parses them (``app/web/classify.py``); bounds that are settings
    (``MAX_TOP_K``) are read from the app then."""

    top_k: TopK = None
    min_confidence: MinConfidence = None
    explain: Explain = False
    batch_id: BatchId = None


@dataclass(frozen=True)
class ClassifySettings:
    """The settings a classification follows (see the README's Configuration)."""

    result_cache: bool  # RESULT_CACHE
    shared_cache: bool  # RESULT_CACHE_SHARED
    max_stored_bytes: int  # MAX_STORED_BYTES_PER_USER; 0: no cap

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ClassifySettings:
        """Read from the app's settings (a mapping of setting names)."""
        return cls(
            result_cache=config["RESULT_CACHE"],
            shared_cache=config["RESULT_CACHE_SHARED"],
            max_stored_bytes=config["MAX_STORED_BYTES_PER_USER"],
        )


def classify_uploads(
    classifier: Classifier,
    user: User,
    uploads: list[Upload],
    params: ClassifyParams,
    settings: ClassifySettings,
) -> ClassifyOutcome:
    """Classify and store ``uploads`` for ``user``, as ``params`` ask."""
    return classify_and_store(
        classifier,
        user,
        uploads,
        params.top_k,
        use_cache=settings.result_cache,
        batch_id=params.batch_id,
        shared_cache=settings.shared_cache,
        max_stored_bytes=settings.max_stored_bytes,
    )
