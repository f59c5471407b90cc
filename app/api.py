"""The JSON API: /predict, the user's predictions, health and readiness."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint
from flask import current_app
from flask import jsonify
from flask import request
from flask import url_for
from flask_login import current_user

from . import metrics
from . import ratelimits
from .errors import error_response
from .extensions import db
from .extensions import limiter
from .model_service import model_service
from .predictions import classify_and_store
from .predictions import history_query
from .predictions import owned_prediction
from .predictions import server_timing_header
from .system import system_info
from .uploads import UploadError
from .uploads import parse_top_k
from .uploads import read_uploads

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
    if request.endpoint in ("api.healthz", "api.readyz"):
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
    config = current_app.config
    top_k = parse_top_k(
        request.values.get("top_k"),
        config["DEFAULT_TOP_K"],
        config["MAX_TOP_K"],
    )
    min_confidence = parse_min_confidence(request.values.get("min_confidence"))
    uploads = read_uploads(request, config["MAX_FILES_PER_REQUEST"])
    classifier = model_service().ready_classifier()
    outcome = classify_and_store(
        classifier, current_user, uploads, top_k, use_cache=config["RESULT_CACHE"]
    )
    metrics.observe_classification(outcome)
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
        if min_confidence is not None:
            results[-1]["uncertain"] = row.top_score < min_confidence
    response = jsonify(
        model=classifier.info.as_dict(), batch_size=outcome.batch_size, results=results
    )
    response.headers["Server-Timing"] = server_timing_header(outcome)
    return response


def parse_min_confidence(value: str | None) -> float | None:
    """``min_confidence``: a score from 0 to 1 below which a result is uncertain."""
    if value is None or value == "":
        return None
    try:
        threshold = float(value)
    except ValueError:
        threshold = -1.0
    if not 0.0 <= threshold <= 1.0:  # also refuses nan
        raise UploadError(
            400,
            "invalid_min_confidence",
            "min_confidence must be a number from 0 to 1, e.g. 0.5.",
        )
    return threshold


@bp.route("/api/predictions")
def list_predictions():
    """The user's predictions, newest first: ``?page=1&per_page=20``."""
    per_page = request.args.get(
        "per_page", default=current_app.config["HISTORY_PAGE_SIZE"], type=int
    )
    page_number = request.args.get("page", default=1, type=int)
    page = db.paginate(
        history_query(current_user),
        # Clamped: a page past any real history is just empty, never an error.
        page=min(max(page_number, 1), 1_000_000),
        per_page=min(max(per_page, 1), 100),
        error_out=False,
    )
    return jsonify(
        items=[row.as_dict() for row in page.items],
        page=page.page,
        per_page=page.per_page,
        total=page.total,
        pages=page.pages,
    )


@bp.route("/api/predictions/<int:prediction_id>")
def get_prediction(prediction_id: int):
    """One prediction; another user's id is a 404, like a missing one."""
    prediction = owned_prediction(current_user, prediction_id)
    if prediction is None:
        return _not_found()
    return jsonify(prediction.as_dict())


@bp.route("/api/predictions/<int:prediction_id>", methods=["DELETE"])
def delete_prediction(prediction_id: int):
    """Delete one prediction."""
    prediction = owned_prediction(current_user, prediction_id)
    if prediction is None:
        return _not_found()
    db.session.delete(prediction)
    db.session.commit()
    return "", 204


def _not_found():
    return error_response(404, "not_found", "No such prediction.")


@bp.route("/api/system")
def system():
    """What this instance runs: versions, model, server layout (for reports)."""
    return jsonify(system_info())


@bp.route("/healthz")
def healthz():
    """Liveness: the process answers. No database, no auth."""
    return jsonify(status="ok")


@bp.route("/readyz")
def readyz():
    """Readiness: model loaded and warmed, database reachable."""
    checks = {"model": model_service().ready, "database": _database_reachable()}
    status = 200 if all(checks.values()) else 503
    return jsonify(
        status="ready" if status == 200 else "not_ready", checks=checks
    ), status


def _database_reachable() -> bool:
    try:
        db.session.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        return False
