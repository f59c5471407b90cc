"""Forms of the sign-in, sign-up and password pages (Flask-WTF: every form
carries a CSRF token), and the text fields other areas' forms build on."""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import current_app
from flask_login import current_user
from wtforms import PasswordField
from wtforms import StringField
from wtforms import SubmitField
from wtforms.validators import DataRequired
from wtforms.validators import EqualTo
from wtforms.validators import ValidationError

from app.auth.passwords import password_problem
from app.extensions import db
from app.http.json_bodies import JsonObjectForm
from app.models import User

USERNAME_PATTERN = re.compile(r"^[a-z0-9_.-]{3,32}$")


def normalize_username(value: str | None) -> str:
    return (value or "").strip().lower()


class TextOnly:
    """A field that takes text only: Flask-WTF merges uploaded files (and JSON
    values of any type) into the form data, and code reading a name or a
    password expects a string, so anything else is a validation error."""

    def process_formdata(self, valuelist):
        if valuelist and not isinstance(valuelist[0], str):
            self.data = ""
            raise ValueError("Send this field as text.")
        super().process_formdata(valuelist)


class TextField(TextOnly, StringField):
    pass


class SecretField(TextOnly, PasswordField):
    pass


class LoginForm(JsonObjectForm):
    username = TextField("Username", validators=[DataRequired()])
    password = SecretField("Password", validators=[DataRequired()])
    submit = SubmitField("Sign in")


class RegistrationForm(JsonObjectForm):
    username = TextField(
        "Username",
        validators=[DataRequired()],
        description="3-32 characters: letters, digits, dot, dash or underscore.",
    )
    password = SecretField("Password", validators=[DataRequired()])
    confirm = SecretField(
        "Repeat password",
        validators=[DataRequired(), EqualTo("password", "The passwords do not match.")],
    )
    submit = SubmitField("Create account")

    def validate_username(self, field: StringField) -> None:
        username = normalize_username(field.data)
        if not USERNAME_PATTERN.match(username):
            raise ValidationError(
                "Use 3-32 characters: letters, digits, dot, dash or underscore."
            )
        if db.session.scalar(sa.select(User.id).where(User.username == username)):
            raise ValidationError("That username is taken.")

    def validate_password(self, field: PasswordField) -> None:
        check_new_password(field.data or "", normalize_username(self.username.data))


def check_new_password(password: str, username: str) -> None:
    problem = password_problem(
        password,
        username,
        current_app.config["PASSWORD_MIN_LENGTH"],
        current_app.config["PASSWORD_MAX_LENGTH"],
    )
    if problem:
        raise ValidationError(problem)


class ChangePasswordForm(JsonObjectForm):
    current_password = SecretField("Current password", validators=[DataRequired()])
    new_password = SecretField("New password", validators=[DataRequired()])
    confirm = SecretField(
        "Repeat new password",
        validators=[
            DataRequired(),
            EqualTo("new_password", "The passwords do not match."),
        ],
    )
    submit = SubmitField("Change password")

    def validate_new_password(self, field: PasswordField) -> None:
        check_new_password(field.data or "", current_user.username)


__all__ = [
    "ChangePasswordForm",
    "LoginForm",
    "RegistrationForm",
    "SecretField",
    "TextField",
    "normalize_username",
]
