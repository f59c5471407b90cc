"""The JSON API: /predict, the user's predictions, health and readiness."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint
from flask import current_app
from flask import jsonify
from flask import request
from flask import url_for
from flask_login import current_user
from spectree import Response

from app.api.openapi import api_spec
from app.api.openapi import json_body
from app.api.schemas import BatchOut
from app.api.schemas import BatchRequest
from app.api.schemas import Error
from app.api.schemas import ExplainQuery
from app.api.schemas import FeedbackRequest
from app.api.schemas import Health
from app.api.schemas import ListQuery
from app.api.schemas import PredictForm
from app.api.schemas import PredictionOut
from app.api.schemas import PredictionPage
from app.api.schemas import PredictQuery
from app.api.schemas import PredictResponse
from app.api.schemas import Readiness
from app.api.schemas import SystemInfo
from app.auth import ratelimits
from app.auth.security import PROBE_ENDPOINTS
from app.database import schema_problem
from app.database import write_problem
from app.extensions import db
from app.http.headers import THUMBNAIL_CACHE_CONTROL
from app.http.headers import jpeg_response
from app.http.responses import error_response
from app.model_service import model_service
from app.services import feedback
from app.services.batches import create_batch
from app.services.history import delete_one
from app.services.predictions import history_query
from app.services.predictions import owned_prediction
from app.services.serialise import batch_json
from app.services.serialise import predict_result_json
from app.services.serialise import prediction_json
from app.services.system import system_info
from app.web.classify import classify_params
from app.web.classify import classify_request
from app.web.classify import server_timing_header

bp = Blueprint("api", __name__)


def require_user():
    """401 as JSON (never a redirect to the sign-in page) for API routes."""
    if not current_user.is_authenticated:
        return error_response(
            401,
            "unauthorized",
            "Sign in, or send 'Authorization: Bearer <token>' (create tokens on "
            "the account page).",
        )
    return None


@bp.before_request
def _authenticate():
    if request.endpoint in PROBE_ENDPOINTS:
        return None
    return require_user()


UNAUTHORIZED = (
    Error,
    "Not signed in (`unauthorized`), or the bearer token is malformed, unknown "
    "or revoked (`invalid_token`).",
)
NOT_FOUND = (Error, "No such prediction, or another user's (`not_found`).")
CSRF_FAILED = (Error, "`csrf_failed` (signed-in browsers send `X-CSRFToken`).")


def no_content(description: str) -> Response:
    """The answers of a change to one prediction that returns no body."""
    return Response(
        HTTP_204=(None, description),
        HTTP_400=CSRF_FAILED,
        HTTP_401=UNAUTHORIZED,
        HTTP_404=NOT_FOUND,
    )


@bp.route("/predict", methods=["POST"])
@api_spec.validate(
    query=PredictQuery,
    form=PredictForm,
    resp=Response(
        HTTP_200=(PredictResponse, "Every image classified and stored."),
        HTTP_400=(
            Error,
            "`no_file`, `invalid_image`, `invalid_top_k`, `invalid_min_confidence`, "
            "`too_many_files`, `csrf_failed`, `invalid_batch_id` (not a number, or "
            "not a batch of yours), `invalid_explain` (not true, false, 1 or 0).",
        ),
        HTTP_401=UNAUTHORIZED,
        HTTP_409=(
            Error,
            "`storage_quota_exceeded`: the account stores MAX_STORED_BYTES_PER_USER "
            "already; nothing was stored (delete history to upload more).",
        ),
        HTTP_413=(
            Error,
            "`payload_too_large` (body over MAX_UPLOAD_BYTES), `image_too_large` "
            "(over MAX_IMAGE_PIXELS, or its decode would need more memory than "
            "DECODE_MEMORY_BUDGET_MB) or `image_too_complex` (a JPEG of more than "
            "MAX_JPEG_SCANS scans, or a decode past DECODE_CPU_BUDGET_S of CPU).",
        ),
        HTTP_415=(Error, "`unsupported_format`, `unsupported_media_type`."),
        HTTP_429=(
            Error,
            "Rate limit exceeded (`too_many_requests`); see `Retry-After`.",
        ),
        HTTP_503=(
            Error,
            "`model_unavailable`, `database_unavailable` or `overloaded` (every "
            "slot taken, or the decode memory budget); see `Retry-After`.",
        ),
    ),
    operation_id="predict",
    # The hot path: spectree neither reads the request nor re-reads the answer.
    # classify_params validates with ClassifyParams (PredictQuery and
    # PredictForm above), read_uploads counts the images, and the tests check
    # the answers against PredictResponse.
    skip_validation=True,
)
@ratelimits.predict_limits
def predict():
    """Classify images.

    One or more images in the multipart field `image` (run as one batch), or
    one image as the raw body. Identical bytes classified before by the same
    model are answered from the result cache. All or nothing: if any image is
    refused, nothing is stored. Every answer carries a `Server-Timing` header.
    """
    params = classify_params(request.values, current_user)
    outcome = classify_request(request, current_user, params)
    results = [
        predict_result_json(
            row,
            total_ms=outcome.timing_ms["total"],
            url=url_for("web.result", prediction_id=row.id),
            min_confidence=params.min_confidence,
            explain=params.explain,
        )
        for row in outcome.rows
    ]
    response = jsonify(
        model=model_service().classifier.info.as_dict(),
        batch_size=outcome.images_run,
        results=results,
    )
    response.headers["Server-Timing"] = server_timing_header(outcome)
    return response


@bp.route("/api/predictions")
@api_spec.validate(
    resp=Response(
        HTTP_200=(PredictionPage, "One page of predictions."),
        HTTP_400=(
            Error,
            "`invalid_page`, `invalid_per_page`: not a whole number in ASCII "
            "digits, or 0.",
        ),
        HTTP_401=UNAUTHORIZED,
    ),
    operation_id="listPredictions",
)
def list_predictions(query: ListQuery):
    """Your predictions, newest first."""
    page = db.paginate(
        history_query(current_user),
        page=query.page,
        per_page=query.per_page,
        error_out=False,
    )
    return jsonify(
        items=[prediction_json(row) for row in page.items],
        page=page.page,
        per_page=page.per_page,
        total=page.total,
        pages=page.pages,
    )


@bp.route("/api/predictions/<id:prediction_id>")
@api_spec.validate(
    resp=Response(
        HTTP_200=(PredictionOut, "The prediction."),
        HTTP_400=(Error, "`invalid_explain` (not true, false, 1 or 0)."),
        HTTP_401=UNAUTHORIZED,
        HTTP_404=NOT_FOUND,
    ),
    operation_id="getPrediction",
)
def get_prediction(prediction_id: int, query: ExplainQuery):
    """One prediction."""
    prediction = owned_prediction(current_user, prediction_id)
    if prediction is None:
        return _not_found()
    return jsonify(prediction_json(prediction, explain=query.explain))


@bp.route("/api/predictions/<id:prediction_id>/thumbnail.jpg")
@api_spec.validate(
    resp=Response(
        HTTP_200=(
            None,
            "A JPEG re-encoded from the upload, at most 256 px on its longer side.",
        ),
        HTTP_401=UNAUTHORIZED,
        HTTP_404=NOT_FOUND,
    ),
    operation_id="getThumbnail",
)
def get_thumbnail(prediction_id: int):
    """The stored thumbnail of one prediction."""
    prediction = owned_prediction(current_user, prediction_id, thumbnail=True)
    if prediction is None:
        return _not_found()
    return jpeg_response(prediction.thumbnail.data, THUMBNAIL_CACHE_CONTROL)


@bp.route("/api/predictions/<id:prediction_id>", methods=["DELETE"])
@api_spec.validate(
    resp=no_content("Deleted."),
    operation_id="deletePrediction",
)
def delete_prediction(prediction_id: int):
    """Delete one prediction."""
    prediction = owned_prediction(current_user, prediction_id)
    if prediction is None:
        return _not_found()
    delete_one(prediction)
    return "", 204


@bp.route("/api/predictions/<id:prediction_id>/feedback", methods=["PUT"])
@api_spec.validate(
    resp=Response(
        HTTP_200=(PredictionOut, "The prediction, with its feedback."),
        HTTP_400=(
            Error,
            "Not a JSON object (`invalid_json`), `correct` not a boolean "
            "(`invalid_correct`), a missing, empty, too long or unexpected label "
            "(`invalid_label`), or `csrf_failed`.",
        ),
        HTTP_401=UNAUTHORIZED,
        HTTP_404=NOT_FOUND,
    ),
    operation_id="putFeedback",
    json=FeedbackRequest,
    # A missing prediction is a 404 whatever the body (as before, and as the
    # page's form): the view validates the body with FeedbackRequest itself.
    skip_validation=True,
)
def put_feedback(prediction_id: int):
    """Confirm or correct a prediction.

    `{"correct": true}` confirms the top label; `{"correct": false, "label":
    "tabby"}` corrects it. Sending again changes it; correcting to the predicted
    label is a confirmation. Signed-in browsers send `X-CSRFToken`.
    """
    prediction = owned_prediction(current_user, prediction_id)
    if prediction is None:
        return _not_found()
    body = FeedbackRequest.model_validate(json_body())
    feedback.apply(prediction, feedback.Verdict(body.correct, body.label))
    return jsonify(prediction_json(prediction))


@bp.route("/api/predictions/<id:prediction_id>/feedback", methods=["DELETE"])
@api_spec.validate(
    resp=no_content("Cleared: not reviewed again."),
    operation_id="deleteFeedback",
)
def delete_feedback(prediction_id: int):
    """Clear a prediction's feedback."""
    prediction = owned_prediction(current_user, prediction_id)
    if prediction is None:
        return _not_found()
    feedback.apply(prediction, feedback.CLEAR)
    return "", 204


@bp.route("/api/batches", methods=["POST"])
@api_spec.validate(
    resp=Response(
        HTTP_201=(BatchOut, "The new, empty batch."),
        HTTP_400=(
            Error,
            "Not a JSON object (`invalid_json`), a name that is not a string, too "
            "long or with control characters (`invalid_name`), or `csrf_failed`.",
        ),
        HTTP_401=UNAUTHORIZED,
        HTTP_409=(
            Error,
            "`too_many_empty_batches`: MAX_EMPTY_BATCHES of yours have no photos "
            "yet; fill one, or wait until they are cleared.",
        ),
        HTTP_429=(
            Error,
            "Over BATCH_RATE_LIMIT (`too_many_requests`); see `Retry-After`.",
        ),
    ),
    operation_id="createBatch",
)
@ratelimits.batch_limits
def post_batch(json: BatchRequest):
    """Start a named batch.

    A batch groups the images of one upload (a folder, say) under a name, with
    its own page. Send its `id` as `batch_id` with each `/predict`; only you can
    add to it.
    """
    config = current_app.config
    batch = create_batch(
        current_user,
        json.name,
        max_empty=config["MAX_EMPTY_BATCHES"],
        empty_ttl=config["EMPTY_BATCH_TTL"],
    )
    response = jsonify(batch_json(batch, url_for("batches.show", batch_id=batch.id)))
    return response, 201


def _not_found():
    return error_response(404, "not_found", "No such prediction.")


@bp.route("/api/system")
@api_spec.validate(
    resp=Response(
        HTTP_200=(SystemInfo, "Instance description."), HTTP_401=UNAUTHORIZED
    ),
    operation_id="system",
)
def system():
    """What this instance runs.

    The model, limits and result cache; for admins also versions, platform,
    worker layout and database kind (never URLs or secrets).
    """
    info = system_info(current_app.config, model_service(), admin=current_user.is_admin)
    return jsonify(info)


@bp.route("/healthz")
@api_spec.validate(
    resp=Response(HTTP_200=(Health, "Alive.")), security={}, operation_id="healthz"
)
def healthz():
    """Liveness.

    The process answers. No database, no authentication.
    """
    return jsonify(status="ok")


@bp.route("/readyz")
@api_spec.validate(
    resp=Response(
        HTTP_200=(Readiness, "Ready to serve."),
        HTTP_503=(Readiness, "Not ready; `checks` and `reasons` say what is missing."),
    ),
    security={},
    operation_id="readyz",
)
def readyz():
    """Readiness.

    The model is loaded and warmed, and the database answers, has its schema
    and takes writes (checked without writing anything).
    """
    problems = {"model": None if model_service().ready else "not loaded yet"}
    problems.update(database_problems())
    checks = {name: problem is None for name, problem in problems.items()}
    body = {"status": "ready" if all(checks.values()) else "not_ready"}
    body["checks"] = checks
    reasons = {name: problem for name, problem in problems.items() if problem}
    if reasons:
        body["reasons"] = reasons
    return jsonify(body), 200 if all(checks.values()) else 503


def database_problems() -> dict[str, str | None]:
    """``database``, ``schema`` and ``writable``: None when fine, else why."""
    min_free = current_app.config["READY_MIN_FREE_MB"] * 2**20
    try:
        connection = db.session.connection()
        schema = schema_problem(connection)
        writable = None if schema else write_problem(connection, min_free)
    except sa.exc.SQLAlchemyError as exc:
        db.session.rollback()
        reason = f"unreachable: {type(getattr(exc, 'orig', exc)).__name__}"
        return {"database": reason, "schema": None, "writable": None}
    finally:
        db.session.rollback()  # nothing was written; end the read transaction
    return {"database": None, "schema": schema, "writable": writable}
