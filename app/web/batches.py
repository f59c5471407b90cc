"""A batch's own page (label counts, the photos, export, delete); the work is
in app/services/batches.py."""

from __future__ import annotations

from flask import Blueprint
from flask import abort
from flask import flash
from flask import redirect
from flask import render_template
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_login import login_required

from app.model_service import model_service
from app.services.batches import PAGE_LIMIT
from app.services.batches import batch_rows
from app.services.batches import delete_batch
from app.services.batches import label_counts
from app.services.batches import owned_batch
from app.services.feedback import label_choices
from app.services.history import HistoryFilters
from app.web.forms import ConfirmForm
from app.web.preferences import current_min_confidence

bp = Blueprint("batches", __name__)


@bp.route("/batches/<id:batch_id>")
@login_required
def show(batch_id: int) -> ResponseReturnValue:
    """One batch: label counts, the photos ("not sure" first), export, delete."""
    batch = owned_batch(current_user, batch_id) or abort(404)
    min_confidence = current_min_confidence()
    rows = batch_rows(current_user, batch, min_confidence)
    counts = label_counts(current_user, batch)
    return render_template(
        "batches/show.html",
        batch=batch,
        rows=rows,
        counts=counts,
        total=sum(n for _, n in counts),
        unsure=sum(1 for row in rows if row.top_score < min_confidence),
        min_confidence=min_confidence,
        export_args=HistoryFilters(batch=batch.id).args(),
        delete_form=ConfirmForm(),
        page_limit=PAGE_LIMIT,
        label_choices=label_choices(model_service()),
    )


@bp.route("/batches/<id:batch_id>/delete", methods=["POST"])
@login_required
def delete(batch_id: int) -> ResponseReturnValue:
    """Delete a batch and every photo in it."""
    batch = owned_batch(current_user, batch_id) or abort(404)
    name = batch.name
    deleted = delete_batch(current_user, batch)
    flash(
        f"Deleted batch '{name}' and its {deleted} photo{'' if deleted == 1 else 's'}.",
        "info",
    )
    return redirect(url_for("web.history"))
