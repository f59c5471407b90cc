"""The one error shape: JSON for API clients, a page for browsers.

Views and hooks answer a refusal with :func:`error_response`; ``app/errors.py``
maps every exception to it.
"""

from __future__ import annotations

from flask import g
from flask import jsonify
from flask import render_template
from flask import request

# The JSON API: exact paths, and everything under /api/. (A prefix "/predict"
# would also take in the pages under /predictions/.)
API_PATHS = frozenset({"/predict", "/healthz", "/readyz"})
API_PREFIX = "/api/"


def is_api_path(path: str) -> bool:
    return path in API_PATHS or path.startswith(API_PREFIX)


def wants_json() -> bool:
    """API routes always get JSON; other routes follow the Accept header."""
    if is_api_path(request.path):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(status: int, code: str, message: str, headers=None):
    """The one error shape of the API: ``{"error": {"code", "message"}}``; a
    page for browsers. The code is kept in ``g`` for the metrics."""
    g.error_code = code
    if wants_json():
        response = jsonify(error={"code": code, "message": message})
    else:
        response = render_template(
            "errors/error.html", status=status, code=code, message=message
        )
    return response, status, headers or {}
