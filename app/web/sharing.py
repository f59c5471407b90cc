"""Sharing one result through an unguessable link, and the public page it opens."""

from __future__ import annotations

from flask import Response
from flask import abort
from flask import flash
from flask import make_response
from flask import redirect
from flask import render_template
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_login import login_required

from app.http.headers import jpeg_response
from app.services.predictions import owned_prediction
from app.services.sharing import share as share_prediction
from app.services.sharing import shared_prediction
from app.services.sharing import unshare as unshare_prediction
from app.web.blueprint import PREDICTION
from app.web.blueprint import bp
from app.web.preferences import DEFAULT_MIN_CONFIDENCE


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
