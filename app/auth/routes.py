"""Accounts: register, sign in, sign out."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Blueprint
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user
from flask_login import login_required

from app.auth import ratelimits
from app.auth.forms import ChangePasswordForm
from app.auth.forms import LoginForm
from app.auth.forms import RegistrationForm
from app.auth.forms import normalize_username
from app.auth.passwords import burn_verification_time
from app.auth.passwords import hash_password
from app.auth.passwords import needs_rehash
from app.auth.passwords import verify_password
from app.auth.security import CLEAR_SITE_DATA
from app.auth.security import end_other_sessions
from app.auth.security import end_user_session
from app.auth.security import safe_next_url
from app.auth.security import start_user_session
from app.extensions import db
from app.models import User

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)

LOGIN_FAILED = "Unknown username or wrong password."


@bp.route("/register", methods=["GET", "POST"])
@ratelimits.register_limits
def register():
    """Create an account and sign in."""
    if current_user.is_authenticated:
        return redirect(url_for("web.index"))
    form = RegistrationForm()
    if form.validate_on_submit():
        user = User(
            username=normalize_username(form.username.data),
            password_hash=hash_password(form.password.data),
        )
        db.session.add(user)
        try:
            db.session.commit()
        except sa.exc.IntegrityError:
            # Two sign-ups raced for the same name; the check above lost.
            db.session.rollback()
            form.username.errors.append("That username is taken.")
            return render_template("auth/register.html", form=form), 400
        start_user_session(user)
        flash("Welcome! Your account is ready.", "success")
        return redirect(url_for("web.index"))
    status = 400 if form.is_submitted() else 200
    return render_template("auth/register.html", form=form), status


@bp.route("/login", methods=["GET", "POST"])
@ratelimits.password_check_limits
def login():
    """Sign in with username and password; same error for either being wrong."""
    next_url = safe_next_url(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("web.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.scalar(
            sa.select(User).where(
                User.username == normalize_username(form.username.data)
            )
        )
        if user is None:
            burn_verification_time(form.password.data)
        elif verify_password(user.password_hash, form.password.data):
            if needs_rehash(user.password_hash):
                user.password_hash = hash_password(form.password.data)
                db.session.commit()
            start_user_session(user)
            return redirect(next_url or url_for("web.index"))
        ratelimits.count_failed_password_check()
        log.warning("failed sign-in for username %r", form.username.data[:64])
        form.password.errors.append(LOGIN_FAILED)
        return render_template("auth/login.html", form=form), 401
    status = 400 if form.is_submitted() else 200
    return render_template("auth/login.html", form=form), status


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
@ratelimits.password_check_limits
def change_password():
    """Change the password; every other signed-in browser is signed out."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        if not verify_password(current_user.password_hash, form.current_password.data):
            ratelimits.count_failed_password_check()
            form.current_password.errors.append("The current password is wrong.")
            return render_template("auth/change_password.html", form=form), 400
        current_user.password_hash = hash_password(form.new_password.data)
        db.session.commit()
        ended = end_other_sessions(current_user)
        log.info(
            "user %s changed password; %d other sessions ended", current_user.id, ended
        )
        flash(
            f"Password changed. {ended} other signed-in session(s) ended; your API "
            "tokens still work (revoke them below if they may be exposed).",
            "success",
        )
        return redirect(url_for("web.account"))
    status = 400 if form.is_submitted() else 200
    return render_template("auth/change_password.html", form=form), status


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Sign out (POST only, with CSRF, so a link cannot sign anyone out)."""
    end_user_session()
    flash("You are signed out.", "info")
    response = redirect(url_for("auth.login"))
    response.headers["Clear-Site-Data"] = CLEAR_SITE_DATA
    return response
