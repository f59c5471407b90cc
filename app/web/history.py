"""The history page: search, filters, sort and pages; bulk delete; exports."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

from flask import Response
from flask import abort
from flask import current_app
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import stream_with_context
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_login import login_required

from app.auth.security import safe_next_url
from app.extensions import db
from app.http.params import BadParameter
from app.http.params import parse_id_list
from app.http.params import parse_page
from app.services.batches import recent_batches
from app.services.history import DEFAULT_SORT
from app.services.history import HistoryFilters
from app.services.history import csv_export
from app.services.history import dataset_zip
from app.services.history import delete_owned
from app.services.history import filtered_query
from app.services.history import json_export
from app.services.history import retention_label
from app.web.blueprint import bp
from app.web.forms import HistoryFilterForm
from app.web.preferences import current_min_confidence

# The history page shows at most 100 rows; a bulk delete names no more.
MAX_BULK_DELETE = 1000


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
    return _download(body, EXPORT_TYPES[fmt], f"snapclass-history-{_today()}.{fmt}")


@bp.route("/history/dataset.zip")
@login_required
def export_dataset() -> ResponseReturnValue:
    """The (filtered) history's thumbnails and labels as a ZIP, streamed."""
    body = dataset_zip(filtered_query(current_user, _export_filters()))
    return _download(body, "application/zip", f"snapclass-dataset-{_today()}.zip")


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def _download(body, content_type: str, filename: str) -> Response:
    """A streamed attachment that no cache keeps and no browser sniffs."""
    response = Response(stream_with_context(body), content_type=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
