"""The OpenAPI 3.1 description of the JSON API, at ``/openapi.json``, and a
readable page made from it at ``/api/docs`` (``templates/docs/api.html``:
server-rendered, no CDN, no script).

spectree generates the description from the views' ``@api_spec.validate``
decorators and the pydantic models in ``app/api/schemas.py``: the models that
validate the views' query strings and JSON bodies, and describe their answers
(checked against every answer under TESTING). Limits that are settings are
filled in from the app that serves the description. ``tests/test_openapi.py``
checks that every route is described, that every documented parameter is
refused and accepted as documented, that real answers match, and runs
Schemathesis against a live server.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from flask import Blueprint
from flask import current_app
from flask import jsonify
from flask import render_template
from flask import request
from pydantic import BaseModel
from spectree import SpecTree
from spectree.models import SecurityScheme
from spectree.models import SecuritySchemeData
from spectree.plugins.base import Context
from spectree.plugins.flask_plugin import FlaskPlugin
from spectree.plugins.werkzeug_utils import werkzeug_parse_rule

from app.api import schemas
from app.api.schemas import Error
from app.http.json_bodies import INVALID_JSON_MESSAGE
from app.http.params import BadParameter
from app.http.uploads import RAW_IMAGE_TYPES
from app.version import __version__

bp = Blueprint("docs", __name__)


def json_body() -> object:
    """The request's JSON document; malformed JSON is a 400 ``invalid_json``."""
    if not request.is_json:
        raise BadParameter("json", "Send Content-Type: application/json.")
    body = request.get_json(silent=True)
    if body is None:
        raise BadParameter("json", INVALID_JSON_MESSAGE)
    return body


def component_name(model: type[BaseModel]) -> str:
    """A model's name in ``components/schemas``: its title, which is its class
    name unless the class sets another (``PredictionOut`` is ``Prediction``)."""
    return model.model_config.get("title") or model.__name__


def nested_component_name(child: str) -> str:
    """The same for a model inside another, which pydantic names by its class."""
    model = getattr(schemas, child, None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return component_name(model)
    return child


class SnapclassFlaskPlugin(FlaskPlugin):
    """spectree's Flask plugin, reading requests as the rest of the app does:
    the first value of a repeated query parameter (``request.args.get``), and
    JSON only with its Content-Type (``invalid_json`` otherwise, where spectree
    would validate ``{}``). Custom URL converters describe themselves with an
    ``openapi_schema`` attribute (``<id:...>``)."""

    def request_validation(self, request, query, json, form, headers, cookies):
        if form or headers or cookies:
            raise NotImplementedError("query and JSON models only")
        validate = self.model_adapter.validate_obj
        request.context = Context(
            validate(query, request.args.to_dict()) if query else None,
            validate(json, json_body()) if json else None,
            None,
            None,
            None,
        )

    def validate_response(self, resp, resp_model, skip_validation, force_serialize):
        # Where the tests run (TESTING), every answer of a decorated view is
        # checked against its model. Not in production: a stored row from an
        # older version must not turn the history into a 500, and the check
        # would cost time on every answer.
        if not current_app.testing:
            return resp, None  # what the view returned, as Flask takes it
        return super().validate_response(
            resp, resp_model, skip_validation, force_serialize
        )

    def parse_path(self, route, path_parameter_descriptions):
        path, parameters = super().parse_path(route, path_parameter_descriptions)
        converters = current_app.url_map.converters
        by_name = {p["name"]: p for p in parameters}
        for converter, _, variable in werkzeug_parse_rule(str(route)):
            schema = getattr(converters.get(converter), "openapi_schema", None)
            if schema is not None:
                by_name[variable]["schema"] = dict(schema)
        return path, parameters


def refuse_invalid(req, resp, error, instance, model_adapter) -> None:
    """A request pydantic refused by itself (our parsers raise BadParameter
    first): the same 400 ``invalid_<field>``, never spectree's 422."""
    if error is not None:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "json"
        raise BadParameter(name, f"{name}: {first['msg']}.")


def fail_invalid_response(req, resp, error, instance, model_adapter) -> None:
    """An answer that does not match its model (checked under TESTING) is our
    bug: the usual 500 with a request id, not spectree's list of errors."""
    if error is not None:
        raise error


api_spec = SpecTree(
    "flask",
    backend=SnapclassFlaskPlugin,
    mode="strict",  # only the decorated views: the api blueprint
    title="Snapclass API",
    version=__version__,
    description="Image classification (ResNet50, ImageNet labels) for programs. "
    "Authenticate with `Authorization: Bearer <token>` (create tokens on the "
    "Account page or with `flask create-token`); a browser session works too, "
    'with an `X-CSRFToken` header on POSTs. Errors are always `{"error": '
    '{"code", "message"}}`.',
    servers=[{"url": "/"}],
    security_schemes=[
        SecurityScheme(
            name="bearerAuth", data=SecuritySchemeData(type="http", scheme="bearer")
        ),
        # The cookie's name is the app's SESSION_COOKIE_NAME (openapi_spec).
        SecurityScheme(
            name="sessionCookie",
            data=SecuritySchemeData(type="apiKey", field_in="cookie", name="session"),
        ),
    ],
    security=[{"bearerAuth": []}, {"sessionCookie": []}],
    validation_error_status=400,
    validation_error_model=Error,
    # Components named as the models are published: Error, not Error.7c3a1b2.
    naming_strategy=component_name,
    nested_naming_strategy=lambda parent, child: nested_component_name(child),
    before=refuse_invalid,
    after=fail_invalid_response,
)

# What spectree does not describe: raw bodies, headers, non-JSON answers.
BINARY = {"type": "string", "contentMediaType": "application/octet-stream"}
RAW_BODY = {"schema": BINARY}
URI_TOO_LONG = {
    "description": "Request line over 4094 bytes: Gunicorn refuses it before the "
    "application sees it (an HTML page, not JSON).",
    "content": {"text/html": {"schema": {"type": "string"}}},
}
EXTRA: dict[str, dict] = {
    "predict": {
        "requestBody": {
            "description": "Images in the multipart field `image`, or one image as "
            "the raw body: any `image/*` type or `application/octet-stream`. "
            "JPEG, PNG, WebP, GIF and BMP are classified, told apart by their "
            "bytes; other formats are a 415 `unsupported_format`.",
            "content": {
                "image/*": RAW_BODY,
                **{
                    media: RAW_BODY
                    for media in sorted(RAW_IMAGE_TYPES)
                    if not media.startswith("image/")
                },
            },
        },
        "responses": {
            "200": {
                "headers": {
                    "Server-Timing": {
                        "description": "decode, preprocess, inference, db, total "
                        "(ms) and cache hits/images.",
                        "schema": {"type": "string"},
                    }
                }
            },
            "414": URI_TOO_LONG,
        },
    },
    "listPredictions": {"responses": {"414": URI_TOO_LONG}},
    "getThumbnail": {
        "responses": {
            "200": {
                "content": {
                    "image/jpeg": {"schema": {"type": "string", "format": "binary"}}
                }
            }
        }
    },
}


def openapi_spec() -> dict:
    """The OpenAPI document, with the current app's settings (a fresh copy)."""
    spec = copy.deepcopy(api_spec.spec)
    for operation in operations(spec):
        # spectree adds its validation error (here 400) to every operation;
        # keep it only where a view declares what its 400s are.
        if operation["responses"].get("400", {}).get("description") == "Bad Request":
            del operation["responses"]["400"]
        merge(operation, EXTRA.get(operation["operationId"], {}))
        # The summary is the first line of the view's docstring, a sentence.
        operation["summary"] = operation["summary"].rstrip(".")
    cookie = current_app.config.get("SESSION_COOKIE_NAME", "session")
    spec["components"]["securitySchemes"]["sessionCookie"]["name"] = cookie
    return fill_settings(spec, current_app.config)


def operations(spec: dict) -> list[dict]:
    return [op for methods in spec["paths"].values() for op in methods.values()]


def merge(target: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def fill_settings(value: Any, config) -> Any:
    """Each ``{"x-setting": NAME}`` (see ``schemas.Setting``) -> ``config[NAME]``."""
    if isinstance(value, dict):
        if value.keys() == {"x-setting"}:
            return config[value["x-setting"]]
        return {key: fill_settings(item, config) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_settings(item, config) for item in value]
    return value


def flask_path(openapi_path: str) -> str:
    """``/api/predictions/{prediction_id}`` -> ``/api/predictions/<prediction_id>``."""
    return re.sub(r"\{(\w+)\}", r"<\1>", openapi_path)


@bp.route("/openapi.json")
def openapi_json():
    """The OpenAPI 3.1 document of the JSON API."""
    return jsonify(openapi_spec())


@bp.route("/api/docs")
def api_docs():
    """The API reference as a page, made from the same document."""
    spec = openapi_spec()
    documented = [
        {
            **operation,
            "method": method.upper(),
            "path": path,
            "public": operation.get("security") == [],
        }
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    ]
    schemas = spec["components"]["schemas"]
    return render_template(
        "docs/api.html",
        spec=spec,
        operations=documented,
        schema_name=schema_name,
        resolve=lambda schema: schemas.get(schema_name(schema), schema),
    )


def schema_name(schema: dict | None) -> str:
    """A short readable type: ``PredictResponse``, ``array of Label``, ``integer``."""
    if not schema or schema.get("contentMediaType"):
        return "binary"
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema or "oneOf" in schema:
        return " or ".join(map(schema_name, schema.get("anyOf") or schema["oneOf"]))
    kind = schema.get("type", "object")
    if kind == "array":
        return f"array of {schema_name(schema.get('items'))}"
    if isinstance(kind, list):
        return " or ".join(kind)
    return kind
