"""The upload page and what it leads to: results, their thumbnails, feedback,
the "not sure" threshold, deleting one result."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort
from flask import current_app
from flask import flash
from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_login import login_required

from app import explanations
from app.auth import ratelimits
from app.auth.security import safe_next_url
from app.extensions import db
from app.http.headers import THUMBNAIL_CACHE_CONTROL
from app.http.headers import jpeg_response
from app.http.params import BadParameter
from app.http.params import parse_id_list
from app.http.responses import wants_json
from app.model_service import model_service
from app.models import Prediction
from app.services import feedback
from app.services.history import delete_one
from app.services.predictions import owned_prediction
from app.services.serialise import feedback_json
from app.web.blueprint import PREDICTION
from app.web.blueprint import bp
from app.web.classify import classify_params
from app.web.classify import classify_request
from app.web.forms import ConfidenceForm
from app.web.forms import ConfirmForm
from app.web.forms import UploadForm
from app.web.preferences import MIN_CONFIDENCE_KEY
from app.web.preferences import current_min_confidence


@bp.app_template_global()
def why_maps(prediction: Prediction) -> list[dict]:
    """The "Why?" overlay's maps of a prediction: label, score, grid, words."""
    return explanations.page_maps(prediction.label_scores, prediction.explanation)


def confidence_form() -> ConfidenceForm:
    return ConfidenceForm(
        formdata=None,
        percent=round(current_min_confidence() * 100),
        next=request.full_path.rstrip("?"),
    )


@bp.route("/")
def index() -> ResponseReturnValue:
    """The upload page (sign-in page for visitors)."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return render_template("web/index.html", form=UploadForm())


@bp.route("/upload", methods=["POST"])
@login_required
@ratelimits.predict_limits
def upload() -> ResponseReturnValue:
    """Classify the uploaded images, then show the results.

    A plain form post gets a redirect (works without JavaScript); the upload
    script asks for JSON and gets ``{"redirect": url}`` or the API's error
    envelope, so it can show progress and errors without leaving the page.
    """
    params = classify_params(request.form, current_user)
    outcome = classify_request(request, current_user, params)
    ids = [row.id for row in outcome.rows]
    if len(ids) == 1:
        target = url_for("web.result", prediction_id=ids[0])
    else:
        target = url_for("web.results", ids=",".join(map(str, ids)))
    if wants_json():
        return jsonify(redirect=target, ids=ids)
    return redirect(target)


@bp.route(PREDICTION)
@login_required
def result(prediction_id: int) -> ResponseReturnValue:
    """One prediction: thumbnail, top-k bars, model and timing, sharing."""
    prediction = owned_prediction(current_user, prediction_id) or abort(404)
    share_url = (
        url_for("web.shared", token=prediction.share_token, _external=True)
        if prediction.share_token
        else None
    )
    return render_template(
        "web/result.html",
        prediction=prediction,
        delete_form=ConfirmForm(),
        share_url=share_url,
        min_confidence=current_min_confidence(),
        confidence_form=confidence_form(),
        label_choices=feedback.label_choices(model_service()),
    )


@bp.route("/results")
@login_required
def results() -> ResponseReturnValue:
    """Several predictions from one upload, in upload order."""
    ids = parse_id_list(
        request.args.get("ids", "").split(","),
        "ids",
        limit=current_app.config["MAX_FILES_PER_REQUEST"],
    )
    rows = db.session.scalars(
        sa.select(Prediction).where(
            Prediction.id.in_(ids), Prediction.user_id == current_user.id
        )
    ).all()
    by_id = {row.id: row for row in rows}
    predictions = [by_id[i] for i in ids if i in by_id]
    if not predictions:
        abort(404)
    return render_template(
        "web/results.html",
        predictions=predictions,
        min_confidence=current_min_confidence(),
        confidence_form=confidence_form(),
        label_choices=feedback.label_choices(model_service()),
    )


@bp.route("/preferences/confidence", methods=["POST"])
@login_required
def set_confidence() -> ResponseReturnValue:
    """Set the "not sure" threshold, then go back to the page it was set on."""
    form = ConfidenceForm()
    target = safe_next_url(form.next.data) or url_for("web.history")
    if form.validate_on_submit():
        session[MIN_CONFIDENCE_KEY] = form.percent.data / 100
        if form.percent.data:
            message = f"Results below {form.percent.data}% are now marked 'not sure'."
        else:
            message = "No result is marked 'not sure' now (threshold 0%)."
        flash(message, "info")
    else:
        flash("The threshold must be a whole number from 0 to 100.", "error")
    return redirect(target)


@bp.route(PREDICTION + "/thumbnail.jpg")
@login_required
def thumbnail(prediction_id: int) -> ResponseReturnValue:
    """The stored thumbnail (owner only)."""
    prediction = owned_prediction(current_user, prediction_id, thumbnail=True)
    prediction = prediction or abort(404)
    # The browser may keep it briefly, never a shared cache; sign-out clears it.
    return jpeg_response(prediction.thumbnail.data, THUMBNAIL_CACHE_CONTROL)


@bp.route(PREDICTION + "/delete", methods=["POST"])
@login_required
def delete(prediction_id: int) -> ResponseReturnValue:
    """Delete one prediction from the history."""
    prediction = owned_prediction(current_user, prediction_id) or abort(404)
    filename = prediction.filename
    delete_one(prediction)
    flash(f"Deleted {filename}.", "info")
    return redirect(safe_next_url(request.form.get("next")) or url_for("web.history"))


@bp.route(PREDICTION + "/feedback", methods=["POST"])
@login_required
def set_feedback(prediction_id: int) -> ResponseReturnValue:
    """Right, wrong (with the right label) or clear: a plain form post gets a
    redirect back; the page script asks for JSON and stays on the page."""
    prediction = owned_prediction(current_user, prediction_id) or abort(404)
    as_json = wants_json()
    target = safe_next_url(request.form.get("next"))
    target = target or url_for("web.result", prediction_id=prediction.id)
    try:
        verdict = feedback.verdict_from_form(request.form)
    except BadParameter as exc:
        if as_json:
            raise
        # A plain form post goes back to its page, with the reason.
        flash(exc.message, "error")
        return redirect(target), 303
    feedback.apply(prediction, verdict)
    message = feedback.describe(prediction)
    if as_json:
        return jsonify(feedback=feedback_json(prediction), message=message)
    flash(f"{prediction.filename}: {message}", "success")
    return redirect(target)
