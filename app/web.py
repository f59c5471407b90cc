"""Pages for people: upload, results, history, account and API tokens."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint
from flask import abort
from flask import current_app
from flask import flash
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user
from flask_login import login_required

from .errors import inference_error_parts
from .extensions import db
from .forms import ConfirmForm
from .forms import TokenForm
from .forms import UploadForm
from .inference import InferenceError
from .model_service import model_service
from .models import ApiToken
from .models import Prediction
from .models import utcnow
from .predictions import ImageRejected
from .predictions import classify_and_store
from .predictions import history_query
from .predictions import owned_prediction
from .uploads import UploadError
from .uploads import read_uploads

bp = Blueprint("web", __name__)


@bp.route("/")
def index():
    """The upload page (sign-in page for visitors)."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return render_template("web/index.html", form=UploadForm())


@bp.route("/upload", methods=["POST"])
@login_required
def upload():
    """Classify the uploaded images, then show the results (works without JS)."""
    form = UploadForm()
    try:
        uploads = read_uploads(request, current_app.config["MAX_FILES_PER_REQUEST"])
        classifier = model_service().ready_classifier()
        outcome = classify_and_store(
            classifier,
            current_user,
            uploads,
            current_app.config["DEFAULT_TOP_K"],
            use_cache=current_app.config["RESULT_CACHE"],
        )
    except (UploadError, ImageRejected, InferenceError) as exc:
        status, message = _upload_failure(exc)
        flash(message, "error")
        return render_template("web/index.html", form=form), status
    ids = [row.id for row in outcome.rows]
    if len(ids) == 1:
        return redirect(url_for("web.result", prediction_id=ids[0]))
    return redirect(url_for("web.results", ids=",".join(map(str, ids))))


def _upload_failure(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, UploadError):
        return exc.status, exc.message
    if isinstance(exc, ImageRejected):
        status, _, message = inference_error_parts(exc.error)
        return status, f"{exc.filename}: {message}"
    status, _, message = inference_error_parts(exc)
    return status, message


@bp.route("/predictions/<int:prediction_id>")
@login_required
def result(prediction_id: int):
    """One prediction: thumbnail, top-k bars, model and timing."""
    prediction = owned_prediction(current_user, prediction_id) or abort(404)
    return render_template(
        "web/result.html", prediction=prediction, delete_form=ConfirmForm()
    )


@bp.route("/results")
@login_required
def results():
    """Several predictions from one upload, in upload order."""
    try:
        ids = [int(part) for part in request.args.get("ids", "").split(",") if part]
    except ValueError:
        abort(404)
    ids = ids[: current_app.config["MAX_FILES_PER_REQUEST"]]
    rows = db.session.scalars(
        sa.select(Prediction).where(
            Prediction.id.in_(ids), Prediction.user_id == current_user.id
        )
    ).all()
    by_id = {row.id: row for row in rows}
    predictions = [by_id[i] for i in ids if i in by_id]
    if not predictions:
        abort(404)
    return render_template("web/results.html", predictions=predictions)


@bp.route("/predictions/<int:prediction_id>/thumbnail.jpg")
@login_required
def thumbnail(prediction_id: int):
    """The stored thumbnail (owner only)."""
    prediction = owned_prediction(current_user, prediction_id) or abort(404)
    response = make_response(prediction.thumbnail)
    response.headers["Content-Type"] = "image/jpeg"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, max-age=86400"
    return response


@bp.route("/predictions/<int:prediction_id>/delete", methods=["POST"])
@login_required
def delete(prediction_id: int):
    """Delete one prediction from the history."""
    prediction = owned_prediction(current_user, prediction_id) or abort(404)
    db.session.delete(prediction)
    db.session.commit()
    flash(f"Deleted {prediction.filename}.", "info")
    return redirect(url_for("web.history"))


@bp.route("/history")
@login_required
def history():
    """The user's predictions, newest first, paginated."""
    page = db.paginate(
        history_query(current_user),
        per_page=current_app.config["HISTORY_PAGE_SIZE"],
        max_per_page=100,
        error_out=False,
    )
    return render_template("web/history.html", page=page, delete_form=ConfirmForm())


@bp.route("/account", methods=["GET"])
@login_required
def account():
    """Account page: API tokens."""
    return _account_page(TokenForm())


def _account_page(form: TokenForm, new_token: str | None = None, status: int = 200):
    tokens = db.session.scalars(
        current_user.tokens.select().order_by(ApiToken.created_at.desc())
    ).all()
    return (
        render_template(
            "web/account.html",
            form=form,
            tokens=tokens,
            new_token=new_token,
            revoke_form=ConfirmForm(),
        ),
        status,
    )


@bp.route("/account/tokens", methods=["POST"])
@login_required
def create_token():
    """Create an API token and show it once (never stored in plain text)."""
    form = TokenForm()
    if not form.validate_on_submit():
        return _account_page(form, status=400)
    token, plain = ApiToken.issue(current_user, form.name.data.strip())
    db.session.add(token)
    db.session.commit()
    # Rendered directly (no redirect): the token must never sit in a cookie.
    response = make_response(_account_page(TokenForm(formdata=None), new_token=plain))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/account/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke_token(token_id: int):
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
