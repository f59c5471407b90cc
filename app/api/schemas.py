"""The JSON API's request and response models (pydantic), from which
``/openapi.json`` is generated (``app/api/openapi.py``).

Request models validate through ``app/http/params.py`` and the services'
own checks, which raise :class:`BadParameter`: pydantic lets that exception
through, so a bad value is today's 400 ``invalid_<name>``, never a 422. A bound
that is a setting (``MAX_TOP_K``...) is read from the app when a request is
validated, and written into the description when it is generated.

Response models check what the views answer (``extra="forbid"``: a field the
description does not know is a failure in the tests, not a silent addition).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from typing import Any
from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import WithJsonSchema
from pydantic import model_validator

from app.http.params import MAX_ID
from app.http.params import MAX_PAGE
from app.http.params import BadParameter
from app.http.params import Integer
from app.http.params import Params
from app.http.params import Setting
from app.http.params import described
from app.models import MAX_BATCH_NAME
from app.models import MAX_FEEDBACK_LABEL
from app.services import feedback
from app.services.batches import clean_name
from app.services.classification import ClassifyParams
from app.services.classification import Explain

# A larger per_page is clamped to this, not refused.
MAX_PER_PAGE = 100


def left_out_when_unset(schema: dict) -> None:
    """For a field that is absent rather than null: document only its type."""
    schema.update(schema.pop("anyOf")[0])
    schema.pop("default", None)


# --------------------------------------------------------------------------
# Requests


class ExplainQuery(Params):
    explain: Explain = False


Page = Integer(
    1,
    MAX_ID,
    "Pages past the end are empty; a larger one is clamped.",
    default=1,
    clamp=MAX_PAGE,
)
PerPage = Integer(
    1,
    MAX_ID,
    f"A larger one is clamped to {MAX_PER_PAGE}.",
    default=Setting("HISTORY_PAGE_SIZE"),
    clamp=MAX_PER_PAGE,
)


class ListQuery(Params):
    per_page: PerPage = None  # checked first, as before
    page: Page = None


class PredictQuery(ClassifyParams):
    filename: str | None = Field(
        None,
        description="Name to store for a raw-body upload (or `X-Filename`); "
        "cut to its last path component and 255 characters.",
        json_schema_extra=left_out_when_unset,
    )


IMAGES = {
    "type": "array",
    "items": {"type": "string", "contentMediaType": "application/octet-stream"},
    "minItems": 1,
    "maxItems": described(Setting("MAX_FILES_PER_REQUEST")),
    "description": "One or more images, run as one batch: JPEG, PNG, WebP, GIF "
    "or BMP (told apart by their bytes).",
}


class PredictForm(ClassifyParams):
    """The multipart body of ``/predict``: images in ``image``, the other fields
    as in the query."""

    image: Annotated[list[bytes], WithJsonSchema(IMAGES)]


class FeedbackRequest(BaseModel):
    """``{"correct": true}`` confirms the top label; ``{"correct": false,
    "label": "tabby"}`` corrects it."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [{"correct": True}, {"correct": False, "label": "tabby"}]
        },
    )
    correct: bool
    label: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_FEEDBACK_LABEL,
        description="The right label when `correct` is false: an ImageNet name "
        "such as `tabby`, or free text. Blanks are collapsed; control "
        "characters are refused.",
    )

    @model_validator(mode="before")
    @classmethod
    def checked(cls, body: Any) -> dict:
        verdict = feedback.verdict_from_json(body)
        return {"correct": verdict.correct, "label": verdict.label}


class BatchRequest(BaseModel):
    """A new batch's name."""

    model_config = ConfigDict(
        frozen=True, json_schema_extra={"examples": [{"name": "Holiday 2026"}]}
    )
    name: str | None = Field(
        None,
        max_length=MAX_BATCH_NAME,
        description="Empty or missing: `Upload <date time> UTC`.",
    )

    @model_validator(mode="before")
    @classmethod
    def checked(cls, body: Any) -> dict:
        if not isinstance(body, dict):
            raise BadParameter(
                "json", 'Send a JSON object such as {"name": "Holiday"}.'
            )
        return {"name": clean_name(body.get("name"))}


# --------------------------------------------------------------------------
# Responses


class Out(BaseModel):
    """An answer. Published under its title, which is the class name unless the
    class sets another: ``PredictionOut`` is the API's ``Prediction`` (the
    ORM model has that name here)."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(Out):
    code: str = Field(description="Machine-readable, e.g. `invalid_image`.")
    message: str


class Error(Out):
    """Every refusal: ``{"error": {"code", "message"}}``."""

    error: ErrorBody


class Label(Out):
    class_id: int = Field(ge=0, le=999)
    wnid: str | None = Field(description="WordNet id; null without a label file.")
    label: str
    score: float = Field(ge=0, le=1)


class ModelInfoOut(Out):
    model_config = ConfigDict(title="ModelInfo")

    name: str = Field(examples=["resnet50"])
    weights: str = Field(examples=["imagenet"])
    backend: Literal["openvino", "tensorflow"]
    random_weights: bool = Field(
        description="True when the labels are meaningless (demo mode)."
    )
    labels_available: bool | None = Field(None, json_schema_extra=left_out_when_unset)
    precision: str | None = Field(
        None,
        description="What the network computes in: f32, bf16 or int8 "
        "(OPENVINO_PRECISION; auto is bf16 where the CPU runs it natively). "
        "Results are cached per precision.",
        examples=["bf16"],
        json_schema_extra=left_out_when_unset,
    )


Milliseconds = Annotated[float, Field(ge=0)]


class Timing(Out):
    """Milliseconds per stage; ``inference`` is the whole batch's."""

    decode: Milliseconds
    preprocess: Milliseconds
    queue: Milliseconds | None = Field(
        None,
        description="Wait for the batching loop (BATCH_MAX_SIZE).",
        json_schema_extra=left_out_when_unset,
    )
    inference: Milliseconds
    total: Milliseconds | None = Field(None, json_schema_extra=left_out_when_unset)


class Explanation(Out):
    """Why these labels: the class activation map of each label, a ``size``
    grid (rows, then columns) over the whole photo as the network saw it
    (squeezed to a square), each cell from 0 (no evidence) to 1 (the strongest
    cell of that label). Exact for ResNet50: the mean of a raw map plus the
    class bias is its logit."""

    size: list[Annotated[int, Field(ge=1)]] = Field(
        min_length=2, max_length=2, examples=[[7, 7]]
    )
    maps: dict[str, list[list[Annotated[float, Field(ge=0, le=1)]]]] = Field(
        description="Label -> grid of `size[0]` rows of `size[1]` numbers."
    )


Sha256 = Annotated[str, Field(pattern="^[0-9a-f]{64}$")]
Pixels = Annotated[int, Field(ge=1)]


class PredictResult(Out):
    id: int
    filename: str
    sha256: Sha256
    width: Pixels
    height: Pixels
    predictions: list[Label] = Field(
        min_length=1,
        description="Highest score first.",
        json_schema_extra={"maxItems": described(Setting("MAX_TOP_K"))},
    )
    cached: bool = Field(
        description="Answered from an earlier upload of the same bytes."
    )
    timing_ms: Timing
    url: str = Field(description="The result page.")
    uncertain: bool | None = Field(
        None,
        description="Only with `min_confidence`: the top score is below it.",
        json_schema_extra=left_out_when_unset,
    )
    explanation: Explanation | None = Field(
        None, description="Only with `explain=true`; null when the model gave no maps."
    )


class PredictResponse(Out):
    model: ModelInfoOut
    batch_size: int = Field(
        ge=0, description="Images that went through the network (cache hits excluded)."
    )
    results: list[PredictResult] = Field(description="One per image, in upload order.")


class Feedback(Out):
    """What the owner said about the top label: right (``correct: true``,
    ``label`` is the predicted one) or corrected to ``label``."""

    correct: bool
    label: str = Field(max_length=MAX_FEEDBACK_LABEL)
    updated_at: datetime | None


class PredictionOut(Out):
    model_config = ConfigDict(title="Prediction")

    id: int
    filename: str
    sha256: Sha256
    mime_type: str = Field(examples=["image/jpeg"])
    size_bytes: int = Field(ge=0)
    width: Pixels
    height: Pixels
    predictions: list[Label]
    model: ModelInfoOut
    timing_ms: Timing
    cached: bool
    created_at: datetime
    feedback: Feedback | None = None
    batch_id: int | None = None
    explanation: Explanation | None = Field(
        None,
        description="Only with `explain=true`; null for results stored without maps.",
    )


class PredictionPage(Out):
    items: list[PredictionOut]
    page: int = Field(ge=1)
    per_page: int = Field(ge=1, le=MAX_PER_PAGE)
    total: int = Field(ge=0)
    pages: int = Field(ge=0)


class BatchOut(Out):
    model_config = ConfigDict(title="Batch")

    id: int = Field(ge=1)
    name: str = Field(min_length=1, max_length=MAX_BATCH_NAME)
    created_at: datetime
    url: str = Field(description="The batch's page.")


class Health(Out):
    status: Literal["ok"]


class ReadinessChecks(Out):
    model: bool
    database: bool
    schema_: bool = Field(alias="schema")
    writable: bool


class Readiness(Out):
    status: Literal["ready", "not_ready"]
    checks: ReadinessChecks
    reasons: dict[str, str] | None = Field(
        None,
        description="Why each failed check failed.",
        json_schema_extra=left_out_when_unset,
    )


class SystemInfo(Out):
    """The model, limits and result cache; for admins also versions, platform,
    worker layout and database kind (never URLs or secrets)."""

    model: dict[str, Any]
    result_cache: bool
    result_cache_shared: bool
    rate_limits: dict[str, Any]
    max_upload_bytes: int | None
    max_files_per_request: int
    python: str | None = Field(None, json_schema_extra=left_out_when_unset)
    platform: str | None = Field(None, json_schema_extra=left_out_when_unset)
    cpu_count: int | None = None
    packages: dict[str, str] | None = Field(None, json_schema_extra=left_out_when_unset)
    server: dict[str, Any] | None = Field(None, json_schema_extra=left_out_when_unset)
    database: str | None = Field(
        None, examples=["postgresql", "sqlite"], json_schema_extra=left_out_when_unset
    )
