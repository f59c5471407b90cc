"""Pages for people: upload, results, history, sharing, account and API tokens."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

import sqlalchemy as sa
from flask import Blueprint
from flask import Response
from flask import abort
from flask import current_app
from flask import flash
from flask import jsonify
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import stream_with_context
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_login import login_required

from app import explanations
from app.auth import ratelimits
from app.auth.passwords import verify_password
from app.auth.security import CLEAR_SITE_DATA
from app.auth.security import end_user_session
from app.auth.security import safe_next_url
from app.extensions import db
from app.http.headers import THUMBNAIL_CACHE_CONTROL
from app.http.headers import jpeg_response
from app.http.params import BadParameter
from app.http.params import parse_id_list
from app.http.params import parse_page
from app.http.responses import wants_json
from app.model_service import model_service
from app.models import ApiToken
from app.models import Prediction
from app.models import utcnow
from app.services import feedback
from app.services.accounts import delete_account_data
from app.services.batches import recent_batches
from app.services.history import DEFAULT_SORT
from app.services.history import HistoryFilters
from app.services.history import csv_export
from app.services.history import dataset_zip
from app.services.history import delete_one
from app.services.history import delete_owned
from app.services.history import filtered_query
from app.services.history import json_export
from app.services.history import purge_expired
from app.services.history import retention_label
from app.services.predictions import owned_prediction
from app.services.sharing import share as share_prediction
from app.services.sharing import shared_prediction
from app.services.sharing import unshare as unshare_prediction
from app.services.tokens import TooManyTokens
from app.services.tokens import issue_token
from app.web.classify import classify_params
from app.web.classify import classify_request
from app.web.forms import ConfidenceForm
from app.web.forms import ConfirmForm
from app.web.forms import DeleteAccountForm
from app.web.forms import HistoryFilterForm
from app.web.forms import RetentionForm
from app.web.forms import TokenForm
from app.web.forms import UploadForm
from app.web.preferences import DEFAULT_MIN_CONFIDENCE
from app.web.preferences import MIN_CONFIDENCE_KEY
from app.web.preferences import current_min_confidence

bp = Blueprint("web", __name__)

# <id:...> matches 1 to 2**31-1 in ASCII digits (app/http/params.py): anything else
# is a 404, never a query that overflows the database's 32-bit ids.
PREDICTION = "/predictions/<id:prediction_id>"

# The history page shows at most 100 rows; a bulk delete names no more.
MAX_BULK_DELETE = 1000


@bp.app_template_global()
def why_maps(prediction: Prediction) -> list[dict]:
    """The "Why?" overlay's maps of a prediction: label, score, grid, words."""
    return explanations.page_maps(prediction.top_k, prediction.explanation)


def confidence_form() -> ConfidenceForm:
    return ConfidenceForm(
        formdata=None,
        percent=round(current_min_confidence() * 100),
        next=request.full_path.rstrip("?"),
    )


# --------------------------------------------------------------------------
# Upload and results


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
        return jsonify(feedback=prediction.feedback_dict(), message=message)
    flash(f"{prediction.filename}: {message}", "success")
    return redirect(target)


# --------------------------------------------------------------------------
# History


def _history_filters() -> tuple[HistoryFilterForm, HistoryFilters, bool]:
    """The filter form from the query string and the filters it asks for.

    An invalid field is reported on the form and left out of the filters.
    """
    form = HistoryFilterForm(formdata=request.args)
    valid = form.validate()
    filters = HistoryFilters(
        q=(form.q.data or "").strip() if not form.q.errors else "",
        start=form.start.data if not form.start.errors else None,
        end=form.end.data if not (form.end.errors or form.start.errors) else None,
        sort=form.sort.data if not form.sort.errors else DEFAULT_SORT,
        review=form.review.data if not form.review.errors else "",
        batch=form.batch.data if not form.batch.errors else None,
    )
    return form, filters, valid


def _export_filters() -> HistoryFilters:
    """The filters of a download, every one valid: a filtered download must be
    what was asked for, or nothing (400 ``invalid_filter``)."""
    form, filters, valid = _history_filters()
    if not valid:
        raise BadParameter("filter", next(iter(form.errors.values()))[0])
    return filters


@bp.route("/history")
@login_required
def history() -> ResponseReturnValue:
    """The user's predictions: label search, date range, sort, pages."""
    form, filters, valid = _history_filters()
    page = db.paginate(
        filtered_query(current_user, filters),
        page=parse_page(request.args.get("page")),
        per_page=current_app.config["HISTORY_PAGE_SIZE"],
        max_per_page=100,
        error_out=False,
    )
    html = render_template(
        "web/history.html",
        page=page,
        form=form,
        filters=filters,
        min_confidence=current_min_confidence(),
        retention=retention_label(current_user.history_retention_days),
        batches=recent_batches(current_user),
    )
    return html, 200 if valid else 400


@bp.route("/history/delete", methods=["POST"])
@login_required
def delete_many() -> ResponseReturnValue:
    """Delete the selected predictions (other users' ids are ignored)."""
    ids = parse_id_list(request.form.getlist("ids"), "ids", limit=MAX_BULK_DELETE)
    deleted = delete_owned(current_user, ids)
    if deleted:
        flash(f"Deleted {deleted} prediction{'' if deleted == 1 else 's'}.", "info")
    else:
        flash("Select the predictions to delete first.", "error")
    return redirect(safe_next_url(request.form.get("next")) or url_for("web.history"))


EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


@bp.route("/history/export.<fmt>")
@login_required
def export_history(fmt: str) -> ResponseReturnValue:
    """Download the (filtered) history as CSV or JSON."""
    if fmt not in EXPORT_TYPES:
        abort(404)
    query = filtered_query(current_user, _export_filters())
    if fmt == "csv":
        body = csv_export(query)
    else:
        body = json_export(query, current_user.username)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    response = Response(stream_with_context(body), content_type=EXPORT_TYPES[fmt])
    response.headers["Content-Disposition"] = (
        f'attachment; filename="snapclass-history-{stamp}.{fmt}"'
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.route("/history/dataset.zip")
@login_required
def export_dataset() -> ResponseReturnValue:
    """The (filtered) history's thumbnails and labels as a ZIP, streamed."""
    body = dataset_zip(filtered_query(current_user, _export_filters()))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    response = Response(stream_with_context(body), content_type="application/zip")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="snapclass-dataset-{stamp}.zip"'
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# --------------------------------------------------------------------------
# Sharing


@bp.route(PREDICTION + "/share", methods=["POST"])
@login_required
def share(prediction_id: int) -> ResponseReturnValue:
    """Make one result public through an unguessable link."""
    prediction = owned_prediction(current_user, prediction_id) or abort(404)
    share_prediction(prediction)
    flash("Anyone with the link can now see this result.", "success")
    return redirect(url_for("web.result", prediction_id=prediction.id))


@bp.route(PREDICTION + "/unshare", methods=["POST"])
@login_required
def unshare(prediction_id: int) -> ResponseReturnValue:
    """Revoke the public link of one result."""
    prediction = owned_prediction(current_user, prediction_id) or abort(404)
    unshare_prediction(prediction)
    flash("The public link is revoked; it no longer works.", "info")
    return redirect(url_for("web.result", prediction_id=prediction.id))


def _public(response: Response) -> Response:
    # Revocation must bite at once, and the link must not leak onwards.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


@bp.route("/s/<token>")
def shared(token: str) -> ResponseReturnValue:
    """A shared result for anyone with the link: nothing else of its owner."""
    prediction = shared_prediction(token) or abort(404)
    html = render_template(
        "web/shared.html",
        prediction=prediction,
        min_confidence=DEFAULT_MIN_CONFIDENCE,
    )
    return _public(make_response(html))


@bp.route("/s/<token>/thumbnail.jpg")
def shared_thumbnail(token: str) -> ResponseReturnValue:
    """The thumbnail of a shared result."""
    prediction = shared_prediction(token, thumbnail=True) or abort(404)
    return _public(jpeg_response(prediction.thumbnail.data, "no-store"))


# --------------------------------------------------------------------------
# Account


@bp.route("/account", methods=["GET"])
@login_required
def account() -> ResponseReturnValue:
    """Account page: password, history retention, API tokens, deletion."""
    return _account_page(TokenForm())


def _account_page(
    form: TokenForm,
    status: int = 200,
    new_token: str | None = None,
    delete_account_form: DeleteAccountForm | None = None,
) -> tuple[str, int]:
    tokens = db.session.scalars(
        current_user.tokens.select().order_by(ApiToken.created_at.desc())
    ).all()
    retention_form = RetentionForm(
        formdata=None, days=current_user.history_retention_days or 0
    )
    return (
        render_template(
            "web/account.html",
            form=form,
            tokens=tokens,
            new_token=new_token,
            revoke_form=ConfirmForm(),
            retention_form=retention_form,
            delete_account_form=delete_account_form or DeleteAccountForm(formdata=None),
        ),
        status,
    )


@bp.route("/account/tokens", methods=["POST"])
@login_required
def create_token() -> ResponseReturnValue:
    """Create an API token and show it once (never stored in plain text)."""
    form = TokenForm()
    if not form.validate_on_submit():
        return _account_page(form, status=400)
    try:
        plain = issue_token(
            current_user,
            form.name.data.strip(),
            current_app.config["MAX_TOKENS_PER_USER"],
        )
    except TooManyTokens as exc:
        form.name.errors.append(str(exc))
        return _account_page(form, status=400)
    # Rendered directly (no redirect): the token must never sit in a cookie.
    response = make_response(_account_page(TokenForm(formdata=None), new_token=plain))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/account/tokens/<id:token_id>/revoke", methods=["POST"])
@login_required
def revoke_token(token_id: int) -> ResponseReturnValue:
    """Revoke one of the user's tokens."""
    token = db.session.scalar(
        sa.select(ApiToken).where(
            ApiToken.id == token_id, ApiToken.user_id == current_user.id
        )
    ) or abort(404)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        db.session.commit()
    flash(f"Token '{token.name}' revoked.", "info")
    return redirect(url_for("web.account"))


@bp.route("/account/retention", methods=["POST"])
@login_required
def set_retention() -> ResponseReturnValue:
    """Choose how long history is kept; older predictions go at once."""
    form = RetentionForm()
    if not form.validate_on_submit():
        flash("Choose one of the offered retention periods.", "error")
        return _account_page(TokenForm(formdata=None), 400)
    current_user.history_retention_days = form.days.data or None
    db.session.commit()
    deleted = purge_expired(current_user)
    period = retention_label(form.days.data)
    message = f"History is now kept {'' if period == 'forever' else 'for '}{period}."
    if deleted:
        message += f" {deleted} older prediction{'' if deleted == 1 else 's'} deleted."
    flash(message, "success")
    return redirect(url_for("web.account"))


@bp.route("/account/delete", methods=["POST"])
@login_required
@ratelimits.password_check_limits
def delete_account() -> ResponseReturnValue:
    """Delete the account and everything in it, after the password is confirmed."""
    form = DeleteAccountForm()
    if not form.validate_on_submit():
        return _account_page(TokenForm(formdata=None), 400, delete_account_form=form)
    if not verify_password(current_user.password_hash, form.password.data):
        ratelimits.count_failed_password_check()
        form.password.errors.append("The password is wrong.")
        return _account_page(TokenForm(formdata=None), 400, delete_account_form=form)
    delete_account_data(current_user.id)
    end_user_session()
    flash("Your account and all its data are deleted.", "info")
    response = redirect(url_for("auth.login"))
    response.headers["Clear-Site-Data"] = CLEAR_SITE_DATA
    return response
