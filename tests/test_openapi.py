"""The OpenAPI document matches the code: routes both ways, real responses
validate against it, and Schemathesis finds nothing wrong on a live server."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from app.api.openapi import flask_path
from app.api.openapi import openapi_spec
from tests.conftest import bearer
from tests.conftest import make_image_bytes

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def api_routes(app) -> set[tuple[str, str]]:
    """(Flask rule without converters, METHOD) for every route of the api blueprint."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] != "api":
            continue
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"<\1>", rule.rule)
        routes |= {(path, m) for m in rule.methods - IGNORED_METHODS}
    return routes


def documented_routes() -> set[tuple[str, str]]:
    return {
        (flask_path(path), method.upper())
        for path, operations in openapi_spec()["paths"].items()
        for method in operations
    }


def test_every_api_route_is_documented_and_nothing_else(app):
    code = api_routes(app)
    documented = documented_routes()
    assert code - documented == set(), "routes missing from app/api/openapi.py"
    assert documented - code == set(), "documented routes that do not exist"


def test_every_operation_has_an_id_summary_and_json_errors():
    spec = openapi_spec()
    ids = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            ids.append(operation["operationId"])
            assert operation["summary"], (method, path)
            for status, response in operation["responses"].items():
                # /readyz explains itself; a 414 comes from Gunicorn, not us.
                if status[0] in "45" and status != "414" and path != "/readyz":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}
    assert len(ids) == len(set(ids))


def test_component_schemas_are_valid_json_schema():
    for schema in openapi_spec()["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_openapi_json_is_served(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body = response.get_json()
    assert body["openapi"].startswith("3.1")
    assert set(body["paths"]) == set(openapi_spec()["paths"])


def test_api_docs_page_lists_every_operation_without_scripts(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for path, operations in openapi_spec()["paths"].items():
        for method in operations:
            assert f"{method.upper()} {path}" in html
    assert "<script" not in html and "style=" not in html
    assert "https://" not in html  # nothing from a CDN
    stylesheet = re.search(r'href="(/static/css/apidocs\.css[^"]*)"', html).group(1)
    with client.get(stylesheet) as css:
        assert css.status_code == 200


# --------------------------------------------------------------------------
# Real responses against the documented schemas


def check(response, path: str, method: str):
    """Assert the status is documented for the operation and the body validates."""
    spec = openapi_spec()
    responses = spec["paths"][path][method.lower()]["responses"]
    status = str(response.status_code)
    assert status in responses, f"{method} {path} answered undocumented {status}"
    documented = responses[status]
    content = documented.get("content")
    if content is None:
        assert response.data == b""
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


def test_predict_responses_match_the_schema(client, token):
    red = make_image_bytes("JPEG", color=(250, 0, 0))
    green = make_image_bytes("PNG", color=(0, 250, 0))
    response = client.post(
        "/predict",
        headers=bearer(token),
        **multipart(("r.jpg", red), ("g.png", green), top_k="3"),
    )
    body = check(response, "/predict", "POST")
    assert body["batch_size"] == 2
    response = client.post(
        "/predict?top_k=2&min_confidence=0.5&filename=raw.jpg",
        headers={**bearer(token), "Content-Type": "image/jpeg"},
        data=red,
    )
    body = check(response, "/predict", "POST")
    assert body["results"][0]["cached"] is True
    assert "uncertain" in body["results"][0]


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": {"x": "1"}, "content_type": "multipart/form-data"}, 400),
        ({"data": b"hello", "content_type": "text/plain"}, 415),
    ],
)
def test_predict_errors_match_the_schema(client, token, kwargs, status):
    response = client.post("/predict", headers=bearer(token), **kwargs)
    assert response.status_code == status
    check(response, "/predict", "POST")


def test_predict_refusals_match_the_schema(client, token, app):
    check(client.post("/predict"), "/predict", "POST")  # 401
    not_image = multipart(("x.jpg", b"not an image"))
    check(
        client.post("/predict", headers=bearer(token), **not_image), "/predict", "POST"
    )
    pdf = multipart(("x.jpg", b"%PDF-1.4\n%%EOF"))
    response = client.post("/predict", headers=bearer(token), **pdf)
    assert response.status_code == 415
    check(response, "/predict", "POST")
    app.config["MAX_CONTENT_LENGTH"] = 1024
    big = multipart(("big.jpg", make_image_bytes("JPEG", size=(800, 800))))
    response = client.post("/predict", headers=bearer(token), **big)
    assert response.status_code == 413
    check(response, "/predict", "POST")


def test_prediction_resources_match_the_schema(client, token):
    posted = client.post(
        "/predict",
        headers=bearer(token),
        **multipart(("a.jpg", make_image_bytes("JPEG", color=(3, 60, 90)))),
    ).get_json()
    prediction_id = posted["results"][0]["id"]
    item = "/api/predictions/{prediction_id}"
    listing = check(
        client.get("/api/predictions?per_page=5", headers=bearer(token)),
        "/api/predictions",
        "GET",
    )
    assert listing["items"][0]["id"] == prediction_id
    check(client.get("/api/predictions"), "/api/predictions", "GET")  # 401
    one = check(
        client.get(f"/api/predictions/{prediction_id}", headers=bearer(token)),
        item,
        "GET",
    )
    assert one["id"] == prediction_id
    check(client.get("/api/predictions/999999", headers=bearer(token)), item, "GET")
    response = client.delete(f"/api/predictions/{prediction_id}", headers=bearer(token))
    assert response.status_code == 204
    check(response, item, "DELETE")
    check(
        client.delete(f"/api/predictions/{prediction_id}", headers=bearer(token)),
        item,
        "DELETE",
    )


def test_explained_responses_match_the_schema(client, token):
    body = check(
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
    one = check(client.get(url + "?explain=1", headers=bearer(token)), item, "GET")
    assert one["explanation"] == result["explanation"]
    refused = client.get(url + "?explain=yes", headers=bearer(token))
    assert check(refused, item, "GET")["error"]["code"] == "invalid_explain"


def test_health_and_system_match_the_schema(client, token, app):
    check(client.get("/healthz"), "/healthz", "GET")
    check(client.get("/readyz"), "/readyz", "GET")
    check(client.get("/api/system", headers=bearer(token)), "/api/system", "GET")
    check(client.get("/api/system"), "/api/system", "GET")
    from app.inference import build_classifier
    from tests.conftest import model_service_for

    model_service_for(app).use(build_classifier("random"))  # never loaded
    response = client.get("/readyz")
    assert response.status_code == 503
    check(response, "/readyz", "GET")


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


def test_feedback_responses_match_the_schema(client, token):
    posted = client.post(
        "/predict",
        headers=bearer(token),
        **multipart(("f.jpg", make_image_bytes("JPEG", color=(9, 60, 90)))),
    ).get_json()
    path = f"/api/predictions/{posted['results'][0]['id']}/feedback"
    item = "/api/predictions/{prediction_id}/feedback"
    for body in ({"correct": True}, {"correct": False, "label": "tabby cat"}):
        one = check(client.put(path, json=body, headers=bearer(token)), item, "PUT")
        assert one["feedback"]["correct"] is body["correct"]
    check(client.put(path, json={"correct": 1}, headers=bearer(token)), item, "PUT")
    check(client.put(path, json={"correct": True}), item, "PUT")  # 401
    response = client.delete(path, headers=bearer(token))
    assert response.status_code == 204
    check(response, item, "DELETE")
    missing = "/api/predictions/999999/feedback"
    check(client.delete(missing, headers=bearer(token)), item, "DELETE")
