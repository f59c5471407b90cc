"""Error handling: each exception kind is mapped once, here, to a status and
the one error shape (``app/http/responses.py``: JSON for API clients, a page
for browsers).

Only the factory imports this module: it knows every layer's exceptions."""

from __future__ import annotations

import logging
import uuid

from flask import Flask
from flask import g
from flask import request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from app.database import NO_SCHEMA
from app.database import committed_in_request
from app.database import is_missing_schema
from app.extensions import db
from app.http.overload import Overloaded
from app.http.params import BadParameter
from app.http.responses import error_response
from app.http.uploads import UploadError
from app.inference import DecodeBusy
from app.inference import ImageTooComplex
from app.inference import ImageTooLarge
from app.inference import InferenceError
from app.inference import InvalidImage
from app.inference import ModelUnavailable
from app.inference import UnsupportedFormat
from app.services.batches import TooManyEmptyBatches
from app.services.predictions import ImageRejected
from app.services.storage import StorageQuotaExceeded

log = logging.getLogger(__name__)

INFERENCE_STATUS = {
    InvalidImage: 400,
    UnsupportedFormat: 415,
    ImageTooLarge: 413,
    ImageTooComplex: 413,
    ModelUnavailable: 503,
    DecodeBusy: 503,
}
HTTP_CODE_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


def handle_http_exception(exc: HTTPException):
    status = exc.code or 500
    code = getattr(exc, "code_name", None) or HTTP_CODE_NAMES.get(status, "error")
    headers = {}
    if status == 401 and request.headers.get("Authorization"):
        headers["WWW-Authenticate"] = 'Bearer realm="snapclass"'
    if status == 413:
        message = "The upload is too large."
    else:
        message = exc.description or exc.name
    return error_response(status, code, message, headers)


def handle_csrf_error(exc: CSRFError):
    log.warning(
        "CSRF check failed on %s %r from %s: %s",
        request.method,
        request.path,
        request.remote_addr,
        exc.description,
    )
    return error_response(
        400,
        "csrf_failed",
        "The form expired or its security token is missing. Reload the page and "
        "try again (API clients: send X-CSRFToken or use a bearer token).",
    )


def log_rejected_upload(code: str, filename: str | None = None) -> None:
    """Security event; %r keeps newlines in names from forging log lines."""
    log.warning(
        "rejected upload (%s) on %s from %s, file %r",
        code,
        request.path,
        request.remote_addr,
        (filename or "")[:120],
    )


def handle_upload_error(exc: UploadError):
    log_rejected_upload(exc.code)
    return error_response(exc.status, exc.code, exc.message)


def handle_bad_parameter(exc: BadParameter):
    return error_response(400, exc.code, exc.message)


def handle_image_rejected(exc: ImageRejected):
    status, code, message = inference_error_parts(exc.error)
    if status == 503:  # the decode was shed, not the file refused
        return error_response(status, code, message, retry_after(exc.error))
    log_rejected_upload(code, exc.filename)
    return error_response(status, code, f"{exc.filename}: {message}")


def handle_too_many_empty_batches(exc: TooManyEmptyBatches):
    return error_response(409, exc.code, str(exc))


def handle_storage_quota(exc: StorageQuotaExceeded):
    """409: the person can make room (delete history) and send it again."""
    log.warning("storage quota reached on %s", request.path)
    return error_response(
        409,
        "storage_quota_exceeded",
        f"Your account stores as much as it may ({exc.limit_bytes // 2**20} MiB). "
        "Nothing was saved: delete some of your history to upload more.",
    )


def handle_inference_error(exc: InferenceError):
    status, code, message = inference_error_parts(exc)
    headers = retry_after(exc) if status == 503 else None
    return error_response(status, code, message, headers)


def retry_after(exc: InferenceError) -> dict[str, str]:
    """A 503's header (and log line): soon after an overload, later otherwise."""
    log.warning("503 %s on %s %s", exc.code, request.method, request.path)
    return {"Retry-After": "1" if exc.code == "overloaded" else "5"}


def handle_overloaded(exc: Overloaded):
    """Every slot is taken: worth retrying at once (a slot frees in a moment)."""
    log.warning("503 %s on %s %s", exc.code, request.method, request.path)
    return error_response(503, exc.code, str(exc), {"Retry-After": "1"})


def inference_error_parts(exc: InferenceError) -> tuple[int, str, str]:
    status = next(
        (s for cls, s in INFERENCE_STATUS.items() if isinstance(exc, cls)), 503
    )
    return status, exc.code, str(exc)


def what_was_saved() -> str:
    """True whenever the failure came: the rollback undid everything only
    when the request had committed nothing before it."""
    if committed_in_request():
        return "If the request changed something, check it before retrying."
    return "Nothing was saved."


def handle_database_error(exc: DBAPIError):
    """A missing schema is a 500 that says what to run; an outage is a 503
    worth retrying; anything else is unexpected."""
    if is_missing_schema(exc):
        db.session.rollback()
        log.error("%s (%s)", NO_SCHEMA, exc.orig)
        return error_response(
            500,
            "database_schema_missing",
            f"The server's database is not set up yet. {what_was_saved()} The "
            "operator must run `flask db upgrade`.",
        )
    if isinstance(exc, OperationalError):
        return handle_database_unavailable(exc)
    return handle_unexpected(exc)


def handle_database_unavailable(exc: OperationalError):
    db.session.rollback()
    log.error("database unavailable: %s", exc.orig)
    return error_response(
        503,
        "database_unavailable",
        f"The database is unavailable right now. {what_was_saved()} Try again.",
        {"Retry-After": "5"},
    )


def handle_unexpected(exc: Exception):
    """Any other exception: a generic 500 with a request id to quote; the
    traceback goes to the log only."""
    db.session.rollback()
    request_id = getattr(g, "request_id", None) or uuid.uuid4().hex
    log.exception(
        "unhandled error %s on %s %r", request_id, request.method, request.path
    )
    return error_response(
        500,
        "internal_error",
        f"Something went wrong on our side. {what_was_saved()} "
        f"Quote request id {request_id} if you report this.",
    )


def register_errorhandlers(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(UploadError, handle_upload_error)
    app.register_error_handler(BadParameter, handle_bad_parameter)
    app.register_error_handler(ImageRejected, handle_image_rejected)
    app.register_error_handler(InferenceError, handle_inference_error)
    app.register_error_handler(Overloaded, handle_overloaded)
    app.register_error_handler(TooManyEmptyBatches, handle_too_many_empty_batches)
    app.register_error_handler(StorageQuotaExceeded, handle_storage_quota)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(Exception, handle_unexpected)
