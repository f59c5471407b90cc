"""The JSON API: /predict, the user's predictions, health and readiness."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint
from flask import current_app
from flask import jsonify
from flask import request
from flask import url_for
from flask_login import current_user

from app.auth.security import PROBE_ENDPOINTS
from app.errors import error_response
from app.extensions import db
from app.extensions import limiter
from app.model_service import model_service
from app.plumbing import ratelimits
from app.plumbing.database import schema_problem
from app.plumbing.database import write_problem
from app.plumbing.http_security import THUMBNAIL_CACHE_CONTROL
from app.plumbing.http_security import jpeg_response
from app.plumbing.params import MAX_ID
from app.plumbing.params import BadParameter
from app.plumbing.params import parse_bool
from app.plumbing.params import parse_int
from app.plumbing.params import parse_page
from app.plumbing.system import system_info
from app.services import feedback
from app.services.batches import create_batch
from app.services.classification import classify_params
from app.services.classification import classify_request
from app.services.predictions import history_query
from app.services.predictions import owned_prediction
from app.services.predictions import server_timing_header

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


@bp.route("/predict", methods=["POST"])
@limiter.limit(
    ratelimits.predict_limit,
    key_func=ratelimits.predict_key,
    exempt_when=ratelimits.not_signed_in,
)
def predict():
    """Classify one or more images; several images run as one batch."""
    params = classify_params(request.values, current_user)
    outcome = classify_request(request, current_user, params)
    results = []
    for row in outcome.rows:
        results.append(
            {
                "id": row.id,
                "filename": row.filename,
                "sha256": row.sha256,
                "width": row.width,
                "height": row.height,
                "predictions": row.top_k,
                "cached": row.cached,
                "timing_ms": {
                    **row.timing_ms,
                    "total": round(outcome.timing_ms["total"], 2),
                },
                "url": url_for("web.result", prediction_id=row.id),
            }
        )
        if params.min_confidence is not None:
            results[-1]["uncertain"] = row.top_score < params.min_confidence
        if params.explain:
            results[-1]["explanation"] = row.explanation_dict()
    response = jsonify(
        model=model_service().classifier.info.as_dict(),
        batch_size=outcome.batch_size,
        results=results,
    )
    response.headers["Server-Timing"] = server_timing_header(outcome)
    return response


@bp.route("/api/predictions")
def list_predictions():
    """The user's predictions, newest first: ``?page=1&per_page=20``."""
    per_page = parse_int(
        request.args.get("per_page"),
        "per_page",
        default=current_app.config["HISTORY_PAGE_SIZE"],
        minimum=1,
        maximum=MAX_ID,
    )
    page = db.paginate(
        history_query(current_user),
        page=parse_page(request.args.get("page")),
        per_page=min(per_page, 100),  # more is clamped, as the docs say
        error_out=False,
    )
    return jsonify(
        items=[row.as_dict() for row in page.items],
        page=page.page,
        per_page=page.per_page,
        total=page.total,
        pages=page.pages,
    )


@bp.route("/api/predictions/<id:prediction_id>")
def get_prediction(prediction_id: int):
    """One prediction; another user's id is a 404, like a missing one.
    ``?explain=true`` adds the class activation maps."""
    explain = parse_bool(request.args.get("explain"), "explain")
    prediction = owned_prediction(current_user, prediction_id)
    if prediction is None:
        return _not_found()
    return jsonify(prediction.as_dict(explain=explain))


@bp.route("/api/predictions/<id:prediction_id>/thumbnail.jpg")
def get_thumbnail(prediction_id: int):
    """The stored thumbnail of one prediction (a JPEG, at most 256 px)."""
    prediction = owned_prediction(current_user, prediction_id)
    if prediction is None:
        return _not_found()
    return jpeg_response(prediction.thumbnail, THUMBNAIL_CACHE_CONTROL)


@bp.route("/api/predictions/<id:prediction_id>", methods=["DELETE"])
def delete_prediction(prediction_id: int):
    """Delete one prediction."""
    prediction = owned_prediction(current_user, prediction_id)
    if prediction is None:
        return _not_found()
    db.session.delete(prediction)
    db.session.commit()
    return "", 204


@bp.route("/api/predictions/<id:prediction_id>/feedback", methods=["PUT"])
def put_feedback(prediction_id: int):
    """Confirm or correct a prediction's label; answers the prediction."""
    prediction = owned_prediction(current_user, prediction_id)
    if prediction is None:
        return _not_found()
    verdict = feedback.verdict_from_json(json_body())
    feedback.apply(prediction, verdict)
    return jsonify(prediction.as_dict())


@bp.route("/api/predictions/<id:prediction_id>/feedback", methods=["DELETE"])
def delete_feedback(prediction_id: int):
    """Clear a prediction's feedback (not reviewed again)."""
    prediction = owned_prediction(current_user, prediction_id)
    if prediction is None:
        return _not_found()
    feedback.apply(prediction, feedback.CLEAR)
    return "", 204


@bp.route("/api/batches", methods=["POST"])
def post_batch():
    """Start a named batch; send its id as ``batch_id`` with each /predict."""
    body = json_body()
    if not isinstance(body, dict):
        raise BadParameter("json", 'Send a JSON object such as {"name": "Holiday"}.')
    batch = create_batch(current_user, body.get("name"))
    response = jsonify(
        {**batch.as_dict(), "url": url_for("batches.show", batch_id=batch.id)}
    )
    return response, 201


def json_body() -> object:
    """The request's JSON document; malformed JSON is a 400 ``invalid_json``."""
    if not request.is_json:
        raise BadParameter("json", "Send Content-Type: application/json.")
    body = request.get_json(silent=True)
    if body is None:
        raise BadParameter("json", "The request body is not valid JSON.")
    return body


def _not_found():
    return error_response(404, "not_found", "No such prediction.")


@bp.route("/api/system")
def system():
    """What this instance runs: the model and limits; for admins also versions
    and server layout (for reports)."""
    return jsonify(system_info(admin=current_user.is_admin))


@bp.route("/healthz")
def healthz():
    """Liveness: the process answers. No database, no auth."""
    return jsonify(status="ok")


@bp.route("/readyz")
def readyz():
    """Readiness: this instance can accept an upload. The model is loaded and
    warmed, the database answers, has its schema and takes writes (checked
    without writing anything)."""
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
