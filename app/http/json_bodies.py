"""Reading JSON request bodies safely: one error for every malformed body.

Python's ``json`` parser recurses once per nesting level, so a body of a few
thousand ``[`` raises ``RecursionError``, which neither Werkzeug's
``get_json(silent=True)`` nor Flask-WTF's JSON form data catch: it was a 500
on every route that reads JSON, sign-in and sign-up included. Here it is a
malformed body like any other, and every malformed body is a 400
``invalid_json``.
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask.json.provider import DefaultJSONProvider
from flask_wtf import FlaskForm
from flask_wtf.form import _Auto
from flask_wtf.form import _is_submitted
from werkzeug.exceptions import BadRequest

INVALID_JSON_MESSAGE = "The request body is not valid JSON."


class InvalidJson(BadRequest):
    """A JSON body that does not parse (or nests too deeply to parse)."""

    code_name = "invalid_json"
    description = INVALID_JSON_MESSAGE


class SafeJSONProvider(DefaultJSONProvider):
    """Flask's JSON, with nesting too deep to parse reported as a ValueError,
    the error every JSON reader in Flask and Werkzeug already handles."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError as exc:
            raise ValueError("JSON nested too deeply") from exc


def json_loading_failed(error: ValueError | None) -> None:
    """What a request does when its JSON does not parse: ``invalid_json``.
    (``error`` is None when the body was not declared as JSON at all, which
    stays Werkzeug's 415.)"""
    if error is None:
        return
    raise InvalidJson() from error


class JsonObjectForm(FlaskForm):
    """A Flask-WTF form that also takes a JSON object as its fields.

    Flask-WTF hands any JSON body to ``MultiDict``, so an array, a string or a
    number was a 500; such a body is a 400 ``invalid_json`` instead.
    """

    class Meta:
        def wrap_formdata(self, form, formdata):
            if formdata is _Auto and _is_submitted() and request.is_json:
                if not (request.files or request.form):
                    body = request.get_json()
                    if not isinstance(body, dict):
                        raise InvalidJson("The JSON body must be an object.")
            return super().wrap_formdata(form, formdata)
