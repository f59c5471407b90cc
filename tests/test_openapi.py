"""The OpenAPI document matches the code: routes both ways, limits from the
settings, every documented parameter refused and accepted as documented, real
responses validate against it, and Schemathesis finds nothing wrong on a live
server."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from app.api.openapi import api_spec
from app.api.openapi import flask_path
from tests.helpers import bearer
from tests.helpers import make_image_bytes

IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture
def spec(client):
    """The document as the app serves it."""
    return client.get("/openapi.json").get_json()


def api_routes(app) -> set[tuple[str, str]]:
    """(Flask rule without converters, METHOD) for every route of the api blueprint."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] != "api":
            continue
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"<\1>", rule.rule)
        routes |= {(path, m) for m in rule.methods - IGNORED_METHODS}
    return routes


def documented_routes(spec) -> set[tuple[str, str]]:
    return {
        (flask_path(path), method.upper())
        for path, operations in spec["paths"].items()
        for method in operations
    }


def operations(spec):
    """(path, method, operation) for every documented operation."""
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield path, method.upper(), operation


def test_every_api_route_is_documented_and_nothing_else(app, spec):
    code = api_routes(app)
    documented = documented_routes(spec)
    assert code - documented == set(), "routes without @api_spec.validate"
    assert documented - code == set(), "documented routes that do not exist"


def test_every_operation_has_an_id_summary_and_json_errors(spec):
    ids = []
    for path, method, operation in operations(spec):
        ids.append(operation["operationId"])
        assert operation["summary"], (method, path)
        for status, response in operation["responses"].items():
            # /readyz explains itself; a 414 comes from Gunicorn, not us.
            if status[0] in "45" and status != "414" and path != "/readyz":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}
        # spectree's own 422 never appears: refusals are our 400s.
        assert "422" not in operation["responses"], (method, path)
    assert len(ids) == len(set(ids))


def test_component_schemas_are_valid_json_schema(spec):
    for schema in spec["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_openapi_json_is_served(client, spec):
    assert spec["openapi"].startswith("3.1")
    assert "x-setting" not in json.dumps(spec)  # every setting filled in
    assert (
        spec["components"]["securitySchemes"]["sessionCookie"]["name"]
        == (client.application.config["SESSION_COOKIE_NAME"])
    )


def test_api_docs_page_lists_every_operation_without_scripts(client, spec):
    response = client.get("/api/docs")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for path, method, operation in operations(spec):
        assert f"{method} {path}" in html
        assert f'id="{operation["operationId"]}"' in html
    for name in spec["components"]["schemas"]:
        assert f'id="schema-{name}"' in html
    assert "<script" not in html and "style=" not in html
    assert "https://" not in html  # nothing from a CDN
    stylesheet = re.search(r'href="(/static/css/apidocs\.css[^"]*)"', html).group(1)
    with client.get(stylesheet) as css:
        assert css.status_code == 200


def test_limits_in_the_description_are_the_settings(make_app):
    """A deployment's settings are what its description says (and its page)."""
    app = make_app(
        MAX_FILES_PER_REQUEST=4, MAX_TOP_K=7, DEFAULT_TOP_K=3, HISTORY_PAGE_SIZE=11
    )
    client = app.test_client()
    spec = client.get("/openapi.json").get_json()
    predict = spec["paths"]["/predict"]["post"]
    form = predict["requestBody"]["content"]["multipart/form-data"]["schema"]
    form = spec["components"]["schemas"][form["$ref"].rsplit("/", 1)[-1]]
    assert form["properties"]["image"]["maxItems"] == 4
    assert form["properties"]["top_k"]["maximum"] == 7
    query = {p["name"]: p["schema"] for p in predict["parameters"]}
    assert (query["top_k"]["maximum"], query["top_k"]["default"]) == (7, 3)
    result = spec["components"]["schemas"]["PredictResult"]
    assert result["properties"]["predictions"]["maxItems"] == 7
    listing = spec["paths"]["/api/predictions"]["get"]["parameters"]
    assert {p["name"]: p["schema"] for p in listing}["per_page"]["default"] == 11
    assert "at most 4" in client.get("/api/docs").get_data(as_text=True)


def test_raw_bodies_are_documented_as_read_uploads_accepts_them(spec):
    """Any image/* type and application/octet-stream; the format is sniffed."""
    from app.http.uploads import RAW_IMAGE_TYPES

    body = spec["paths"]["/predict"]["post"]["requestBody"]
    raw = set(body["content"]) - {"multipart/form-data"}
    assert raw == {"image/*"} | {t for t in RAW_IMAGE_TYPES if "image/" not in t}
    for name in ("JPEG", "PNG", "WebP", "GIF", "BMP"):
        assert name in body["description"]


# --------------------------------------------------------------------------
# Every documented parameter behaves as documented (the drift test)


def parameter_probes(name: str, schema: dict):
    """(value, refused?) for one documented parameter: its bounds or values
    are accepted, just outside them and non-numbers are refused."""
    if "enum" in schema:
        yield from ((value, False) for value in schema["enum"])
        yield "yes", True
        return
    if schema.get("type") not in ("integer", "number"):
        return
    low, high = schema["minimum"], schema["maximum"]
    yield str(low), False
    yield str(high), False
    yield "x", True
    yield "1e3", True
    if schema["type"] == "integer":
        yield str(low - 1), True
        if "clamped" not in schema.get("description", ""):
            yield str(high + 1), True
    else:
        yield str(high + 0.5), True


def test_documented_parameters_are_the_ones_the_views_validate(client, token, spec):
    """Each documented query parameter (and /predict's form fields) is refused
    with its own ``invalid_<name>`` just outside the documented bounds and
    accepted at them: the description cannot promise another range than the
    view applies."""
    headers = bearer(token)
    batch = client.post("/api/batches", json={"name": "b"}, headers=headers)
    prediction_id = post_one(client, token)["id"]
    predict = spec["paths"]["/predict"]["post"]
    form = predict["requestBody"]["content"]["multipart/form-data"]["schema"]
    form = spec["components"]["schemas"][form["$ref"].rsplit("/", 1)[-1]]
    probes = []
    for path, method, operation in operations(spec):
        url = flask_path(path).replace("<prediction_id>", str(prediction_id))
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query":
                probes.append((method, url, "query", parameter))
    for name, schema in form["properties"].items():
        if name != "image":
            probes.append(
                ("POST", "/predict", "form", {"name": name, "schema": schema})
            )
    assert {p[3]["name"] for p in probes} >= {"page", "per_page", "top_k", "explain"}
    for method, url, where, parameter in probes:
        name = parameter["name"]
        for value, refused in parameter_probes(name, parameter["schema"]):
            if name == "batch_id" and not refused:
                value = str(batch.get_json()["id"])  # the format; and it is ours
            response = send(client, headers, method, url, where, name, value)
            if refused:
                assert response.status_code == 400, (url, name, value)
                assert response.get_json()["error"]["code"] == f"invalid_{name}"
            else:
                assert response.status_code < 300, (url, name, value, response.json)


def send(client, headers, method, url, where, name, value):
    if method == "POST" and url == "/predict":
        photo = (io.BytesIO(make_image_bytes("JPEG", color=(5, 6, 7))), "p.jpg")
        data = {"image": [photo]}
        if where == "form":
            data[name] = value
        else:
            url = f"{url}?{name}={value}"
        return client.post(url, data=data, headers=headers)
    return client.open(f"{url}?{name}={value}", method=method, headers=headers)


def post_one(client, token) -> dict:
    response = client.post(
        "/predict",
        headers=bearer(token),
        **multipart(("o.jpg", make_image_bytes("JPEG", color=(7, 6, 5)))),
    )
    assert response.status_code == 200
    return response.get_json()["results"][0]


def test_documented_request_examples_are_accepted_and_string_limits_hold(
    client, token, spec
):
    """Each documented JSON body example is accepted; a documented maxLength is
    the length the view refuses one past, with ``invalid_<field>``."""
    headers = bearer(token)
    prediction_id = post_one(client, token)["id"]
    for path, method, operation in operations(spec):
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" not in content:
            continue
        url = flask_path(path).replace("<prediction_id>", str(prediction_id))
        ref = content["application/json"]["schema"]["$ref"]
        schema = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        for example in schema["examples"]:
            response = client.open(url, method=method, json=example, headers=headers)
            assert response.status_code < 300, (url, example, response.json)
        for field, prop in schema["properties"].items():
            # An optional string is "a string or null": its string branch.
            prop = next((p for p in prop.get("anyOf", []) if "maxLength" in p), prop)
            if "maxLength" not in prop:
                continue
            example = next(e for e in schema["examples"] if field in e)
            longest = {**example, field: "a" * prop["maxLength"]}
            response = client.open(url, method=method, json=longest, headers=headers)
            assert response.status_code < 300, (url, field)
            too_long = {**example, field: "a" * (prop["maxLength"] + 1)}
            response = client.open(url, method=method, json=too_long, headers=headers)
            assert response.status_code == 400, (url, field)
            assert response.get_json()["error"]["code"] == f"invalid_{field}"


def test_views_validate_with_the_models_they_document(app, spec):
    """spectree validates each view's ``query`` or ``json`` argument with the
    model of its annotation and documents that model; /predict documents the
    fields classify_params validates (ClassifyParams) and nothing else. (The
    feedback view validates its body with its documented model itself; the
    probes below check it through the view.)"""
    from app.api.schemas import PredictForm
    from app.api.schemas import PredictQuery
    from app.services.classification import ClassifyParams

    documented = 0
    for endpoint, view in app.view_functions.items():
        metadata = api_spec.get_function_metadata(view)
        if metadata is None or metadata.resp is None:
            continue
        hints = typing.get_type_hints(view.__wrapped__)
        for kind in ("query", "json"):
            if kind in hints:
                assert getattr(metadata, kind) == hints[kind].__name__, endpoint
                documented += 1
    assert documented == 3  # list, get (explain), batches
    fields = set(ClassifyParams.model_fields)
    assert set(PredictQuery.model_fields) == fields | {"filename"}
    assert set(PredictForm.model_fields) == fields | {"image"}
    predict = spec["paths"]["/predict"]["post"]
    assert {p["name"] for p in predict["parameters"]} == fields | {"filename"}


def test_a_refusal_by_pydantic_itself_is_our_400_never_a_422():
    """Our parsers raise BadParameter first; should pydantic refuse something
    by itself, the answer is still invalid_<field>."""
    from pydantic import BaseModel
    from pydantic import ValidationError

    from app.api.openapi import refuse_invalid
    from app.http.params import BadParameter

    class Model(BaseModel):
        count: int

    with pytest.raises(ValidationError) as caught:
        Model.model_validate({"count": "many"})
    with pytest.raises(BadParameter) as refused:
        refuse_invalid(None, None, caught.value, None, None)
    assert refused.value.code == "invalid_count"


def test_an_answer_its_model_does_not_describe_fails_under_testing(
    client, token, monkeypatch
):
    """Under TESTING every answer of a validated view is checked against its
    model: an undocumented field is a 500 in the tests, not a silent drift."""
    from app.api import routes

    monkeypatch.setattr(routes, "system_info", lambda *_, **__: {"surprise": 1})
    response = client.get("/api/system", headers=bearer(token))
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"


# --------------------------------------------------------------------------
# Real responses against the documented schemas


def check(spec, response, path: str, method: str):
    """Assert the status is documented for the operation and the body validates
    against the served document ``spec``."""
    responses = spec["paths"][path][method.lower()]["responses"]
    status = str(response.status_code)
    assert status in responses, f"{method} {path} answered undocumented {status}"
    documented = responses[status]
    content = documented.get("content")
    if content is None:
        assert response.data == b""
        return None
    if "application/json" not in content:  # the thumbnail
        assert response.mimetype in content
        return None
    assert response.content_type == "application/json"
    schema = {
        **content["application/json"]["schema"],
        "components": spec["components"],
    }
    body = response.get_json()
    errors = sorted(
        Draft202012Validator(schema).iter_errors(body), key=lambda e: e.path
    )
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    for header in documented.get("headers", {}):
        assert header in response.headers
    return body


def multipart(*images, **fields):
    return {
        "data": {
            "image": [(io.BytesIO(data), name) for name, data in images],
            **fields,
        },
        "content_type": "multipart/form-data",
    }


def test_predict_responses_match_the_schema(client, token, spec):
    red = make_image_bytes("JPEG", color=(250, 0, 0))
    green = make_image_bytes("PNG", color=(0, 250, 0))
    response = client.post(
        "/predict",
        headers=bearer(token),
        **multipart(("r.jpg", red), ("g.png", green), top_k="3"),
    )
    body = check(spec, response, "/predict", "POST")
    assert body["batch_size"] == 2
    response = client.post(
        "/predict?top_k=2&min_confidence=0.5&filename=raw.jpg",
        headers={**bearer(token), "Content-Type": "image/jpeg"},
        data=red,
    )
    body = check(spec, response, "/predict", "POST")
    assert body["results"][0]["cached"] is True
    assert "uncertain" in body["results"][0]


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": {"x": "1"}, "content_type": "multipart/form-data"}, 400),
        ({"data": b"hello", "content_type": "text/plain"}, 415),
    ],
)
def test_predict_errors_match_the_schema(client, token, kwargs, status, spec):
    response = client.post("/predict", headers=bearer(token), **kwargs)
    assert response.status_code == status
    check(spec, response, "/predict", "POST")


def test_predict_refusals_match_the_schema(client, token, app, spec):
    check(spec, client.post("/predict"), "/predict", "POST")  # 401
    not_image = multipart(("x.jpg", b"not an image"))
    check(
        spec,
        client.post("/predict", headers=bearer(token), **not_image),
        "/predict",
        "POST",
    )
    pdf = multipart(("x.jpg", b"%PDF-1.4\n%%EOF"))
    response = client.post("/predict", headers=bearer(token), **pdf)
    assert response.status_code == 415
    check(spec, response, "/predict", "POST")
    app.config["MAX_CONTENT_LENGTH"] = 1024
    big = multipart(("big.jpg", make_image_bytes("JPEG", size=(800, 800))))
    response = client.post("/predict", headers=bearer(token), **big)
    assert response.status_code == 413
    check(spec, response, "/predict", "POST")


def test_prediction_resources_match_the_schema(client, token, spec):
    posted = client.post(
        "/predict",
        headers=bearer(token),
        **multipart(("a.jpg", make_image_bytes("JPEG", color=(3, 60, 90)))),
    ).get_json()
    prediction_id = posted["results"][0]["id"]
    item = "/api/predictions/{prediction_id}"
    listing = check(
        spec,
        client.get("/api/predictions?per_page=5", headers=bearer(token)),
        "/api/predictions",
        "GET",
    )
    assert listing["items"][0]["id"] == prediction_id
    check(spec, client.get("/api/predictions"), "/api/predictions", "GET")  # 401
    one = check(
        spec,
        client.get(f"/api/predictions/{prediction_id}", headers=bearer(token)),
        item,
        "GET",
    )
    assert one["id"] == prediction_id
    check(
        spec, client.get("/api/predictions/999999", headers=bearer(token)), item, "GET"
    )
    thumbnail = item + "/thumbnail.jpg"
    for url in (f"/api/predictions/{prediction_id}", "/api/predictions/999999"):
        response = client.get(url + "/thumbnail.jpg", headers=bearer(token))
        check(spec, response, thumbnail, "GET")
    for body in ({"name": "Trip"}, {"name": 5}, [1]):
        response = client.post("/api/batches", json=body, headers=bearer(token))
        check(spec, response, "/api/batches", "POST")
    response = client.delete(f"/api/predictions/{prediction_id}", headers=bearer(token))
    assert response.status_code == 204
    check(spec, response, item, "DELETE")
    check(
        spec,
        client.delete(f"/api/predictions/{prediction_id}", headers=bearer(token)),
        item,
        "DELETE",
    )


def test_explained_responses_match_the_schema(client, token, spec):
    body = check(
        spec,
        client.post(
            "/predict?explain=true",
            headers=bearer(token),
            **multipart(("e.jpg", make_image_bytes("JPEG", color=(90, 60, 3)))),
        ),
        "/predict",
        "POST",
    )
    result = body["results"][0]
    assert result["explanation"]["size"] == [7, 7]
    item = "/api/predictions/{prediction_id}"
    url = f"/api/predictions/{result['id']}"
    one = check(
        spec, client.get(url + "?explain=1", headers=bearer(token)), item, "GET"
    )
    assert one["explanation"] == result["explanation"]
    refused = client.get(url + "?explain=yes", headers=bearer(token))
    assert check(spec, refused, item, "GET")["error"]["code"] == "invalid_explain"


def test_health_and_system_match_the_schema(client, token, app, spec):
    check(spec, client.get("/healthz"), "/healthz", "GET")
    check(spec, client.get("/readyz"), "/readyz", "GET")
    check(spec, client.get("/api/system", headers=bearer(token)), "/api/system", "GET")
    check(spec, client.get("/api/system"), "/api/system", "GET")
    from app.inference import build_classifier
    from tests.helpers import model_service_for

    model_service_for(app).use(build_classifier("random"))  # never loaded
    response = client.get("/readyz")
    assert response.status_code == 503
    check(spec, response, "/readyz", "GET")


# --------------------------------------------------------------------------
# Schemathesis against the real server


@pytest.fixture(scope="module")
def api_server(tmp_path_factory, model_cache_dir, classifier):
    from devtools.database import database_for_test
    from devtools.server import start_server

    tmp = tmp_path_factory.mktemp("openapi-server")
    server = start_server(
        tmp,
        database_for_test(tmp, "snapclass_openapi"),
        model_cache_dir=model_cache_dir,
        username="fuzz",
    )
    yield server
    server.stop()


@pytest.mark.server
def test_schemathesis_finds_no_server_errors_or_schema_violations(api_server, tmp_path):
    import requests

    # Some data, so that item routes answer 200s as well as 404s.
    for color in ((1, 2, 3), (4, 5, 6)):
        requests.post(
            api_server.url + "/predict",
            headers=api_server.headers,
            files={"image": ("s.jpg", make_image_bytes("JPEG", color=color))},
            timeout=30,
        ).raise_for_status()
    binary = str(Path(sys.executable).parent / "schemathesis")
    result = subprocess.run(
        [
            binary,
            "run",
            api_server.url + "/openapi.json",
            "--header",
            f"Authorization: Bearer {api_server.token}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_headers_conformance,response_schema_conformance",
            "--max-examples",
            "20",
            "--seed",
            "20261127",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--no-shrink",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "NO_COLOR": "1"},
    )
    output = result.stdout + result.stderr
    report = "\n".join(failure_summary(output))
    assert result.returncode == 0, report
    assert re.search(r"\d+ generated, \d+ passed", output), output[-2000:]


def failure_summary(output: str) -> list[str]:
    """The lines of a Schemathesis report that say what failed and how to replay."""
    wanted = re.compile(r"_{5,} .* _{5,}|ST\d{3} |Received:|Documented:|curl |Seed:")
    return [line.strip()[:400] for line in output.splitlines() if wanted.search(line)]


def test_feedback_responses_match_the_schema(client, token, spec):
    posted = client.post(
        "/predict",
        headers=bearer(token),
        **multipart(("f.jpg", make_image_bytes("JPEG", color=(9, 60, 90)))),
    ).get_json()
    path = f"/api/predictions/{posted['results'][0]['id']}/feedback"
    item = "/api/predictions/{prediction_id}/feedback"
    for body in ({"correct": True}, {"correct": False, "label": "tabby cat"}):
        one = check(
            spec, client.put(path, json=body, headers=bearer(token)), item, "PUT"
        )
        assert one["feedback"]["correct"] is body["correct"]
    check(
        spec, client.put(path, json={"correct": 1}, headers=bearer(token)), item, "PUT"
    )
    check(spec, client.put(path, json={"correct": True}), item, "PUT")  # 401
    response = client.delete(path, headers=bearer(token))
    assert response.status_code == 204
    check(spec, response, item, "DELETE")
    missing = "/api/predictions/999999/feedback"
    check(spec, client.delete(missing, headers=bearer(token)), item, "DELETE")
