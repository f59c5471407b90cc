"""The OpenAPI 3.1 description of the JSON API, at ``/openapi.json``, and a
readable page made from it at ``/api/docs`` (server-rendered, no CDN, no script).

``tests/test_openapi.py`` keeps this in step with the code: every route of the
``api`` blueprint is documented and nothing else is, real responses validate
against the schemas below, and Schemathesis fuzzes a live server with them.
"""

from __future__ import annotations

import copy
import re
from functools import cache

from flask import Blueprint
from flask import current_app
from flask import jsonify
from flask import render_template_string

from app import __version__

bp = Blueprint("docs", __name__)


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def error(description: str) -> dict:
    return {"description": description, "content": json_body(ref("Error"))}


def uri_too_long() -> dict:
    return {
        "description": "Request line over 4094 bytes: Gunicorn refuses it before "
        "the application sees it (an HTML page, not JSON).",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }


def rate_limited() -> dict:
    return {
        "description": "Rate limit exceeded (`too_many_requests`); see `Retry-After`.",
        "content": json_body(ref("Error")),
    }


UNAUTHORIZED = error(
    "Not signed in (`unauthorized`), or the bearer token is malformed, unknown "
    "or revoked (`invalid_token`)."
)
NOT_FOUND = error("No such prediction, or another user's (`not_found`).")
PREDICTION_ID = {
    "name": "prediction_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": 2147483647},
}

EXPLAIN = {
    "name": "explain",
    "in": "query",
    "description": "`true` (or `1`) adds each result's class activation maps "
    "(`explanation`); `false`, `0` or missing leaves them out.",
    "schema": {"type": "string", "enum": ["true", "false", "1", "0"]},
}

SCHEMAS: dict[str, dict] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "Machine-readable, e.g. `invalid_image`.",
                    },
                    "message": {"type": "string"},
                },
            }
        },
    },
    "Label": {
        "type": "object",
        "required": ["class_id", "wnid", "label", "score"],
        "properties": {
            "class_id": {"type": "integer", "minimum": 0, "maximum": 999},
            "wnid": {
                "type": ["string", "null"],
                "description": "WordNet id; null without a label file.",
            },
            "label": {"type": "string"},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
        },
    },
    "ModelInfo": {
        "type": "object",
        "required": ["name", "weights", "backend", "random_weights"],
        "properties": {
            "name": {"type": "string", "examples": ["resnet50"]},
            "weights": {"type": "string", "examples": ["imagenet"]},
            "backend": {"type": "string", "enum": ["openvino", "tensorflow"]},
            "random_weights": {
                "type": "boolean",
                "description": "True when the labels are meaningless (demo mode).",
            },
            "labels_available": {"type": "boolean"},
            "precision": {
                "type": "string",
                "description": "What the network computes in: f32, bf16 or "
                "int8 (OPENVINO_PRECISION; auto is bf16 where the CPU runs it "
                "natively). Results are cached per precision.",
                "examples": ["bf16"],
            },
        },
    },
    "Timing": {
        "type": "object",
        "description": "Milliseconds per stage; `inference` is the whole batch's.",
        "required": ["decode", "preprocess", "inference"],
        "properties": {
            "decode": {"type": "number", "minimum": 0},
            "preprocess": {"type": "number", "minimum": 0},
            "queue": {
                "type": "number",
                "minimum": 0,
                "description": "Wait for the batching loop (BATCH_MAX_SIZE).",
            },
            "inference": {"type": "number", "minimum": 0},
            "total": {"type": "number", "minimum": 0},
        },
    },
    "PredictResult": {
        "type": "object",
        "required": [
            "id",
            "filename",
            "sha256",
            "width",
            "height",
            "predictions",
            "cached",
            "timing_ms",
            "url",
        ],
        "properties": {
            "id": {"type": "integer"},
            "filename": {"type": "string"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "width": {"type": "integer", "minimum": 1},
            "height": {"type": "integer", "minimum": 1},
            "predictions": {
                "type": "array",
                "items": ref("Label"),
                "minItems": 1,
                "maxItems": 20,
                "description": "Highest score first.",
            },
            "cached": {
                "type": "boolean",
                "description": "Answered from an earlier upload of the same bytes.",
            },
            "timing_ms": ref("Timing"),
            "url": {"type": "string", "description": "The result page."},
            "uncertain": {
                "type": "boolean",
                "description": "Only with `min_confidence`: the top score is below it.",
            },
            "explanation": {
                "oneOf": [ref("Explanation"), {"type": "null"}],
                "description": "Only with `explain=true`; null when the model "
                "gave no maps.",
            },
        },
    },
    "PredictResponse": {
        "type": "object",
        "required": ["model", "batch_size", "results"],
        "properties": {
            "model": ref("ModelInfo"),
            "batch_size": {
                "type": "integer",
                "minimum": 0,
                "description": "Images that went through the network (cache "
                "hits excluded).",
            },
            "results": {
                "type": "array",
                "items": ref("PredictResult"),
                "description": "One per image, in upload order.",
            },
        },
    },
    "Prediction": {
        "type": "object",
        "required": [
            "id",
            "filename",
            "sha256",
            "mime_type",
            "size_bytes",
            "width",
            "height",
            "predictions",
            "model",
            "timing_ms",
            "cached",
            "created_at",
        ],
        "properties": {
            "id": {"type": "integer"},
            "filename": {"type": "string"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "mime_type": {"type": "string", "examples": ["image/jpeg"]},
            "size_bytes": {"type": "integer", "minimum": 0},
            "width": {"type": "integer", "minimum": 1},
            "height": {"type": "integer", "minimum": 1},
            "predictions": {"type": "array", "items": ref("Label")},
            "model": ref("ModelInfo"),
            "timing_ms": ref("Timing"),
            "cached": {"type": "boolean"},
            "created_at": {"type": "string", "format": "date-time"},
            "feedback": {"oneOf": [ref("Feedback"), {"type": "null"}]},
            "batch_id": {"type": ["integer", "null"]},
            "explanation": {
                "oneOf": [ref("Explanation"), {"type": "null"}],
                "description": "Only with `explain=true`; null for results "
                "stored without maps.",
            },
        },
    },
    "Explanation": {
        "type": "object",
        "description": "Why these labels: the class activation map of each "
        "label, a `size` grid (rows, then columns) over the whole photo as "
        "the network saw it (squeezed to a square), each cell from 0 (no "
        "evidence) to 1 (the strongest cell of that label). Exact for "
        "ResNet50: the mean of a raw map plus the class bias is its logit.",
        "required": ["size", "maps"],
        "properties": {
            "size": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1},
                "minItems": 2,
                "maxItems": 2,
                "examples": [[7, 7]],
            },
            "maps": {
                "type": "object",
                "description": "Label -> grid of `size[0]` rows of `size[1]` numbers.",
                "additionalProperties": {
                    "type": "array",
                    "items": {
                        "type": "array",
                        "items": {"type": "number", "minimum": 0, "maximum": 1},
                    },
                },
            },
        },
    },
    "Feedback": {
        "type": "object",
        "description": "What the owner said about the top label: right "
        "(`correct: true`, `label` is the predicted one) or corrected to `label`.",
        "required": ["correct", "label", "updated_at"],
        "properties": {
            "correct": {"type": "boolean"},
            "label": {"type": "string", "maxLength": 128},
            "updated_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "FeedbackRequest": {
        "type": "object",
        "required": ["correct"],
        "properties": {
            "correct": {"type": "boolean"},
            "label": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "description": "The right label when `correct` is false: an "
                "ImageNet name such as `tabby`, or free text. Blanks are "
                "collapsed; control characters are refused.",
            },
        },
        "examples": [{"correct": True}, {"correct": False, "label": "tabby"}],
    },
    "BatchRequest": {
        "type": "object",
        "properties": {
            "name": {
                "type": ["string", "null"],
                "maxLength": 100,
                "description": "Empty or missing: `Upload <date time> UTC`.",
            }
        },
        "examples": [{"name": "Holiday 2026"}],
    },
    "Batch": {
        "type": "object",
        "required": ["id", "name", "created_at", "url"],
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "created_at": {"type": "string", "format": "date-time"},
            "url": {"type": "string", "description": "The batch's page."},
        },
    },
    "PredictionPage": {
        "type": "object",
        "required": ["items", "page", "per_page", "total", "pages"],
        "properties": {
            "items": {"type": "array", "items": ref("Prediction")},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": 100},
            "total": {"type": "integer", "minimum": 0},
            "pages": {"type": "integer", "minimum": 0},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "const": "ok"}},
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "not_ready"]},
            "checks": {
                "type": "object",
                "required": ["model", "database"],
                "properties": {
                    "model": {"type": "boolean"},
                    "database": {"type": "boolean"},
                },
            },
        },
    },
    "SystemInfo": {
        "type": "object",
        "required": ["model", "max_upload_bytes"],
        "properties": {
            "python": {"type": "string"},
            "platform": {"type": "string"},
            "cpu_count": {"type": ["integer", "null"]},
            "packages": {
                "type": "object",
                "additionalProperties": {"type": "string"},
            },
            "model": {"type": "object"},
            "server": {"type": "object"},
            "database": {"type": "string", "examples": ["postgresql", "sqlite"]},
        },
    },
}

PATHS: dict[str, dict] = {
    "/predict": {
        "post": {
            "operationId": "predict",
            "summary": "Classify images",
            "description": "One or more images in the multipart field `image` "
            "(run as one batch), or one image as the raw body with an image "
            "Content-Type. Identical bytes classified before by the same model "
            "are answered from the result cache. All or nothing: if any image "
            "is refused, nothing is stored. Every answer carries a "
            "`Server-Timing` header.",
            "parameters": [
                {
                    "name": "top_k",
                    "in": "query",
                    "description": "Labels per image (also a form field).",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 20},
                },
                {
                    "name": "min_confidence",
                    "in": "query",
                    "description": "Mark results whose top score is below this "
                    "as `uncertain` (also a form field).",
                    "schema": {"type": "number", "minimum": 0, "maximum": 1},
                },
                {
                    "name": "batch_id",
                    "in": "query",
                    "description": "Add the images to this batch of yours "
                    "(from `POST /api/batches`; also a form field).",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 2147483647},
                },
                EXPLAIN,
                {
                    "name": "filename",
                    "in": "query",
                    "description": "Name to store for a raw-body upload.",
                    "schema": {"type": "string", "maxLength": 255},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["image"],
                            "properties": {
                                "image": {
                                    "type": "array",
                                    "items": {
                                        "type": "string",
                                        "contentMediaType": "application/octet-stream",
                                    },
                                    "minItems": 1,
                                    "maxItems": 16,
                                },
                                "top_k": {
                                    "type": "integer",
                                    "minimum": 1,
                                    "maximum": 20,
                                },
                                "min_confidence": {
                                    "type": "number",
                                    "minimum": 0,
                                    "maximum": 1,
                                },
                                "batch_id": {
                                    "type": "integer",
                                    "minimum": 1,
                                    "maximum": 2147483647,
                                },
                                "explain": {
                                    "type": "string",
                                    "enum": ["true", "false", "1", "0"],
                                },
                            },
                        }
                    },
                    "image/jpeg": {"schema": {}},
                    "image/png": {"schema": {}},
                    "image/webp": {"schema": {}},
                },
            },
            "responses": {
                "200": {
                    "description": "Every image classified and stored.",
                    "headers": {
                        "Server-Timing": {
                            "description": "decode, preprocess, inference, db, "
                            "total (ms) and cache hits/images.",
                            "schema": {"type": "string"},
                        }
                    },
                    "content": json_body(ref("PredictResponse")),
                },
                "400": error(
                    "`no_file`, `invalid_image`, `invalid_top_k`, "
                    "`invalid_min_confidence`, `too_many_files`, `csrf_failed`, "
                    "`invalid_batch_id` (not a number, or not a batch of yours), "
                    "`invalid_explain` (not true, false, 1 or 0)."
                ),
                "401": UNAUTHORIZED,
                "413": error(
                    "`payload_too_large` (body over MAX_UPLOAD_BYTES) or "
                    "`image_too_large` (over MAX_IMAGE_PIXELS)."
                ),
                "414": uri_too_long(),
                "415": error("`unsupported_format`, `unsupported_media_type`."),
                "429": rate_limited(),
                "503": error(
                    "`model_unavailable`, `database_unavailable` or `overloaded`; "
                    "see `Retry-After`."
                ),
            },
        }
    },
    "/api/predictions": {
        "get": {
            "operationId": "listPredictions",
            "summary": "Your predictions, newest first",
            "parameters": [
                {
                    "name": "page",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100000},
                },
                {
                    "name": "per_page",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                },
            ],
            "responses": {
                "200": {
                    "description": "One page of predictions.",
                    "content": json_body(ref("PredictionPage")),
                },
                "400": error(
                    "`invalid_page`, `invalid_per_page`: not a whole number in "
                    "ASCII digits, or 0 (a larger `per_page` is clamped to 100)."
                ),
                "401": UNAUTHORIZED,
                "414": uri_too_long(),
            },
        }
    },
    "/api/predictions/{prediction_id}": {
        "get": {
            "operationId": "getPrediction",
            "summary": "One prediction",
            "parameters": [PREDICTION_ID, EXPLAIN],
            "responses": {
                "200": {
                    "description": "The prediction.",
                    "content": json_body(ref("Prediction")),
                },
                "400": error("`invalid_explain` (not true, false, 1 or 0)."),
                "401": UNAUTHORIZED,
                "404": NOT_FOUND,
            },
        },
        "delete": {
            "operationId": "deletePrediction",
            "summary": "Delete one prediction",
            "parameters": [PREDICTION_ID],
            "responses": {
                "204": {"description": "Deleted."},
                "401": UNAUTHORIZED,
                "404": NOT_FOUND,
            },
        },
    },
    "/api/predictions/{prediction_id}/thumbnail.jpg": {
        "get": {
            "operationId": "getThumbnail",
            "summary": "The stored thumbnail of one prediction",
            "parameters": [PREDICTION_ID],
            "responses": {
                "200": {
                    "description": "A JPEG re-encoded from the upload, at most 256 "
                    "px on its longer side.",
                    "content": {
                        "image/jpeg": {"schema": {"type": "string", "format": "binary"}}
                    },
                },
                "401": UNAUTHORIZED,
                "404": NOT_FOUND,
            },
        }
    },
    "/api/predictions/{prediction_id}/feedback": {
        "put": {
            "operationId": "putFeedback",
            "summary": "Confirm or correct a prediction",
            "description": '`{"correct": true}` confirms the top label; '
            '`{"correct": false, "label": "tabby"}` corrects it. Sending '
            "again changes it; correcting to the predicted label is a "
            "confirmation. Signed-in browsers send `X-CSRFToken`.",
            "parameters": [PREDICTION_ID],
            "requestBody": {
                "required": True,
                "content": json_body(ref("FeedbackRequest")),
            },
            "responses": {
                "200": {
                    "description": "The prediction, with its feedback.",
                    "content": json_body(ref("Prediction")),
                },
                "400": error(
                    "Not a JSON object (`invalid_json`), `correct` not a boolean "
                    "(`invalid_correct`), a missing, empty, too long or "
                    "unexpected label (`invalid_label`), or `csrf_failed`."
                ),
                "401": UNAUTHORIZED,
                "404": NOT_FOUND,
            },
        },
        "delete": {
            "operationId": "deleteFeedback",
            "summary": "Clear a prediction's feedback",
            "parameters": [PREDICTION_ID],
            "responses": {
                "204": {"description": "Cleared: not reviewed again."},
                "400": error("`csrf_failed` (signed-in browsers)."),
                "401": UNAUTHORIZED,
                "404": NOT_FOUND,
            },
        },
    },
    "/api/batches": {
        "post": {
            "operationId": "createBatch",
            "summary": "Start a named batch",
            "description": "A batch groups the images of one upload (a folder, "
            "say) under a name, with its own page. Send its `id` as `batch_id` "
            "with each `/predict`; only you can add to it.",
            "requestBody": {
                "required": True,
                "content": json_body(ref("BatchRequest")),
            },
            "responses": {
                "201": {
                    "description": "The new, empty batch.",
                    "content": json_body(ref("Batch")),
                },
                "400": error(
                    "Not a JSON object (`invalid_json`), a name that is not a "
                    "string, too long or with control characters "
                    "(`invalid_name`), or `csrf_failed`."
                ),
                "401": UNAUTHORIZED,
            },
        }
    },
    "/api/system": {
        "get": {
            "operationId": "system",
            "summary": "What this instance runs",
            "description": "The model, limits and result cache; for admins "
            "also versions, platform, worker layout and database kind (never "
            "URLs or secrets).",
            "responses": {
                "200": {
                    "description": "Instance description.",
                    "content": json_body(ref("SystemInfo")),
                },
                "401": UNAUTHORIZED,
            },
        }
    },
    "/healthz": {
        "get": {
            "operationId": "healthz",
            "summary": "Liveness",
            "description": "The process answers. No database, no authentication.",
            "security": [],
            "responses": {
                "200": {"description": "Alive.", "content": json_body(ref("Health"))}
            },
        }
    },
    "/readyz": {
        "get": {
            "operationId": "readyz",
            "summary": "Readiness",
            "description": "Model loaded and warmed, database reachable.",
            "security": [],
            "responses": {
                "200": {
                    "description": "Ready to serve.",
                    "content": json_body(ref("Readiness")),
                },
                "503": {
                    "description": "Not ready; `checks` says what is missing.",
                    "content": json_body(ref("Readiness")),
                },
            },
        }
    },
}


@cache
def _spec() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Snapclass API",
            "version": __version__,
            "description": "Image classification (ResNet50, ImageNet labels) "
            "for programs. Authenticate with `Authorization: Bearer <token>` "
            "(create tokens on the Account page or with `flask create-token`); "
            "a browser session works too, with an `X-CSRFToken` header on "
            'POSTs. Errors are always `{"error": {"code", "message"}}`.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}, {"sessionCookie": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
            "schemas": SCHEMAS,
        },
    }


def openapi_spec() -> dict:
    """The OpenAPI document (a fresh copy each call: callers may change it)."""
    return copy.deepcopy(_spec())


def flask_path(openapi_path: str) -> str:
    """``/api/predictions/{prediction_id}`` -> ``/api/predictions/<prediction_id>``."""
    return re.sub(r"\{(\w+)\}", r"<\1>", openapi_path)


@bp.route("/openapi.json")
def openapi_json():
    """The OpenAPI 3.1 document of the JSON API."""
    spec = openapi_spec()
    cookie = current_app.config.get("SESSION_COOKIE_NAME", "session")
    spec["components"]["securitySchemes"]["sessionCookie"]["name"] = cookie
    return jsonify(spec)


@bp.route("/api/docs")
def api_docs():
    """The API reference as a page, made from the same document."""
    spec = openapi_spec()
    operations = [
        {
            "method": method.upper(),
            "path": path,
            "anchor": operation["operationId"],
            **operation,
            "public": operation.get("security") == [],
        }
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    ]
    return render_template_string(
        DOCS_TEMPLATE,
        spec=spec,
        operations=operations,
        schema_name=schema_name,
    )


def schema_name(schema: dict | None) -> str:
    """A short readable type: ``PredictResponse``, ``array of Label``, ``integer``."""
    if not schema:
        return "binary"
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    kind = schema.get("type", "object")
    if kind == "array":
        return f"array of {schema_name(schema.get('items'))}"
    if isinstance(kind, list):
        return " or ".join(kind)
    return kind


# A page like every other (base.html), no script and no inline style (CSP).
DOCS_TEMPLATE = """\
{% extends "base.html" %}
{% block title %}API{% endblock %}
{% block head %}
<link rel="stylesheet" href="{{ url_for('static', filename='css/apidocs.css') }}">
{% endblock %}
{% block content %}
<section aria-labelledby="api-heading" class="api-docs">
  <div class="page-head">
    <h1 id="api-heading">{{ spec.info.title }}
      <span class="tag tag-muted">{{ spec.info.version }}</span></h1>
    <p class="lead">{{ spec.info.description }}</p>
    <p><a href="{{ url_for('docs.openapi_json') }}">openapi.json</a>
      (OpenAPI {{ spec.openapi }})</p>
  </div>
  <nav class="panel" aria-label="Operations">
    <ul class="api-toc">
      {%- for op in operations %}
      <li><a href="#{{ op.anchor }}"><code>{{ op.method }} {{ op.path }}</code></a>
        {{ op.summary }}</li>
      {%- endfor %}
    </ul>
  </nav>
  {%- for op in operations %}
  <article class="panel api-operation" id="{{ op.anchor }}">
    <h2 class="section-title"><code>{{ op.method }} {{ op.path }}</code></h2>
    <p><strong>{{ op.summary }}</strong>
      {%- if op.public %} <span class="tag tag-success">no authentication</span>
      {%- endif %}</p>
    {%- if op.description %}<p>{{ op.description }}</p>{% endif %}
    {%- if op.parameters %}
    <h3>Parameters</h3>
    <div class="table-wrap"><table>
      <thead><tr><th scope="col">Name</th><th scope="col">In</th>
        <th scope="col">Type</th><th scope="col">Description</th></tr></thead>
      <tbody>
      {%- for p in op.parameters %}
        <tr><td><code>{{ p.name }}</code>
          {%- if p.required %} (required){% endif %}</td>
          <td>{{ p.in }}</td><td>{{ schema_name(p.schema) }}
          {%- if p.schema.minimum is defined -%}
          , {{ p.schema.minimum }}–{{ p.schema.maximum }}
          {%- endif %}</td>
          <td>{{ p.description or '' }}</td></tr>
      {%- endfor %}
      </tbody>
    </table></div>
    {%- endif %}
    {%- if op.requestBody %}
    <h3>Request body</h3>
    <ul>
      {%- for media, body in op.requestBody.content.items() %}
      <li><code>{{ media }}</code>
        {%- if body.schema.properties %}: fields
        {% for name, field in body.schema.properties.items() -%}
        <code>{{ name }}</code> ({{ schema_name(field) }}){{ ', ' if not loop.last }}
        {%- endfor %}{% endif %}</li>
      {%- endfor %}
    </ul>
    {%- endif %}
    <h3>Responses</h3>
    <div class="table-wrap"><table>
      <thead><tr><th scope="col">Status</th><th scope="col">Body</th>
        <th scope="col">Meaning</th></tr></thead>
      <tbody>
      {%- for status, response in op.responses.items() %}
        {%- set body = (response.content or {}).get('application/json') %}
        <tr><td>{{ status }}</td>
          <td>{% if body %}{% set name = schema_name(body.schema) %}
            <a href="#schema-{{ name }}">{{ name }}</a>{% else %}—{% endif %}</td>
          <td>{{ response.description }}</td></tr>
      {%- endfor %}
      </tbody>
    </table></div>
  </article>
  {%- endfor %}
  <h2>Schemas</h2>
  {%- for name, schema in spec.components.schemas.items() %}
  <article class="panel api-schema" id="schema-{{ name }}">
    <h3><code>{{ name }}</code></h3>
    {%- if schema.description %}<p>{{ schema.description }}</p>{% endif %}
    <div class="table-wrap"><table>
      <thead><tr><th scope="col">Field</th><th scope="col">Type</th>
        <th scope="col">Description</th></tr></thead>
      <tbody>
      {%- for field, prop in (schema.properties or {}).items() %}
        <tr><td><code>{{ field }}</code>
          {%- if field in (schema.required or []) %} (required){% endif %}</td>
          <td>{{ schema_name(prop) }}</td><td>{{ prop.description or '' }}</td></tr>
      {%- endfor %}
      </tbody>
    </table></div>
  </article>
  {%- endfor %}
</section>
{% endblock %}
"""
