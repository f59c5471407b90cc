"""The account page: API tokens, history retention, deleting the account."""

from __future__ import annotations

import sqlalchemy as sa
from flask import abort
from flask import current_app
from flask import flash
from flask import make_response
from flask import redirect
from flask import render_template
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_login import login_required

from app.auth import ratelimits
from app.auth.passwords import verify_password
from app.auth.security import CLEAR_SITE_DATA
from app.auth.security import end_user_session
from app.extensions import db
from app.models import ApiToken
from app.models import utcnow
from app.services.accounts import delete_account_data
from app.services.history import purge_expired
from app.services.history import retention_label
from app.services.tokens import TooManyTokens
from app.services.tokens import issue_token
from app.web.blueprint import bp
from app.web.forms import ConfirmForm
from app.web.forms import DeleteAccountForm
from app.web.forms import RetentionForm
from app.web.forms import TokenForm


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
