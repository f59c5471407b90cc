"""Prometheus metrics, the request log and request ids: in process, then on the
real Gunicorn server where several workers must add up."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import requests

from app import create_app
from app.config import TestingConfig
from app.extensions import db
from app.http.proxies import address_in
from app.http.proxies import parse_networks
from app.observability.request_log import request_id_from
from tests.helpers import ApiClient
from tests.helpers import AuthActions
from tests.helpers import issue_token
from tests.helpers import make_image_bytes
from tests.helpers import model_service_for
from tests.helpers import parse_exposition
from tests.helpers import scrape
from tests.helpers import value

HIDDEN = {"REMOTE_ADDR": "203.0.113.9"}


def test_requests_are_counted_by_url_rule_never_by_raw_path(app, client, api):
    (route,) = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint == "api.get_prediction"
    }
    assert route.startswith("/api/predictions/<") and route.endswith("prediction_id>")
    before = scrape(client)
    for prediction_id in (123456, 654321):
        response = api.get(f"/api/predictions/{prediction_id}")
        assert response.status_code == 404
    after = scrape(client)
    counted = value(
        after, "snapclass_http_requests_total", route=route, method="GET", status="404"
    ) - value(
        before, "snapclass_http_requests_total", route=route, method="GET", status="404"
    )
    assert counted == 2
    assert not any("123456" in str(key) for key in after)
    latency = value(
        after, "snapclass_http_request_duration_seconds_count", route=route
    ) - value(before, "snapclass_http_request_duration_seconds_count", route=route)
    assert latency == 2


def test_unknown_paths_share_one_label(client):
    before = scrape(client)
    assert client.get("/no/such/page/x1").status_code == 404
    assert client.get("/no/such/page/x2").status_code == 404
    after = scrape(client)
    name = "snapclass_http_requests_total"
    labels = {"route": "<unmatched>", "status": "404"}
    assert value(after, name, **labels) - value(before, name, **labels) == 2
    assert not any("x1" in str(key) for key in after)


def test_classification_counts_batches_inference_and_cache(client, api, app):
    backend = model_service_for(app).classifier.info.backend
    data = make_image_bytes("JPEG", size=(300, 200), color=(1, 99, 201))
    before = scrape(client)
    first = api.predict(data)
    again = api.predict(data)
    assert first.status_code == again.status_code == 200
    assert again.get_json()["results"][0]["cached"] is True
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("snapclass_result_cache_misses_total") == 1
    assert delta("snapclass_result_cache_hits_total") == 1
    assert delta("snapclass_inference_batch_size_count") == 1
    assert delta("snapclass_inference_batch_size_sum") == 1
    assert delta("snapclass_inference_duration_seconds_count", backend=backend) == 1
    assert delta("snapclass_inference_duration_seconds_sum", backend=backend) > 0
    # Queue wait: one observation per request that ran the network.
    assert delta("snapclass_inference_queue_seconds_count") == 1
    info = model_service_for(app).classifier.info
    assert (
        value(
            after,
            "snapclass_model_info",
            name=info.name,
            weights=info.weights,
            backend=info.backend,
            precision=info.precision,
        )
        == 1
    )


def test_a_batch_of_three_is_one_observation_of_size_three(client, api):
    before = scrape(client)
    files = [
        (make_image_bytes("PNG", color=(i * 40, 7, 9)), f"{i}.png") for i in range(3)
    ]
    response = api.predict(*files)
    assert response.status_code == 200
    after = scrape(client)
    name = "snapclass_inference_batch_size_bucket"
    assert value(after, name, le="2.0") - value(before, name, le="2.0") == 0
    assert value(after, name, le="4.0") - value(before, name, le="4.0") == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"just text", "invalid_image"), (b"%PDF-1.4\n%%EOF", "unsupported_format")],
)
def test_rejected_uploads_are_counted_by_error_code(client, api, data, reason):
    before = scrape(client)
    response = api.predict((data, "x.jpg"))
    assert response.get_json()["error"]["code"] == reason
    after = scrape(client)
    name = "snapclass_uploads_rejected_total"
    assert value(after, name, reason=reason) - value(before, name, reason=reason) == 1


def test_rate_limited_answers_are_counted(classifier, database_url):
    class Config(TestingConfig):
        SQLALCHEMY_DATABASE_URI = database_url
        PREDICT_RATE_LIMIT = "1 per minute"

    app = create_app(Config)
    model_service_for(app).use(classifier)
    with app.app_context():
        db.drop_all()
        db.create_all()
    try:
        client = app.test_client()
        AuthActions(client).register("mallory")
        mallory = ApiClient(client, issue_token(app, "mallory"))
        before = scrape(client)
        data = make_image_bytes("JPEG", color=(3, 3, 3))
        responses = [mallory.predict(data) for _ in range(2)]
        assert [r.status_code for r in responses] == [200, 429]
        code = responses[1].get_json()["error"]["code"]
        after = scrape(client)
        name = "snapclass_http_overload_responses_total"
        labels = {"status": "429", "code": code}
        assert value(after, name, **labels) - value(before, name, **labels) == 1
    finally:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def test_unavailable_model_503_is_counted(client, api, app):
    from app.inference import build_classifier

    model_service_for(app).use(build_classifier("random", backend="tensorflow"))

    def broken_load():
        raise RuntimeError("no model here")

    model_service_for(app).classifier.load = broken_load
    before = scrape(client)
    response = api.predict(make_image_bytes("JPEG"))
    assert response.status_code == 503
    code = response.get_json()["error"]["code"]
    after = scrape(client)
    name = "snapclass_http_overload_responses_total"
    labels = {"status": "503", "code": code}
    assert value(after, name, **labels) - value(before, name, **labels) == 1


def test_in_flight_returns_to_zero(client):
    client.get("/healthz")
    # /metrics is answered before Flask, so it is never in flight itself.
    assert value(scrape(client), "snapclass_http_requests_in_flight") == 0


def test_metrics_are_hidden_from_other_addresses(client):
    response = client.get("/metrics", environ_base=HIDDEN)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert client.get("/metrics").status_code == 200  # 127.0.0.1 by default


def test_metrics_token_opens_metrics_to_any_address(classifier, database_url):
    class Config(TestingConfig):
        SQLALCHEMY_DATABASE_URI = database_url
        METRICS_ALLOW = ""
        METRICS_TOKEN = "scrape-secret"

    app = create_app(Config)
    client = app.test_client()
    assert client.get("/metrics").status_code == 404  # no address is allowed
    wrong = {"Authorization": "Bearer nope"}
    assert client.get("/metrics", headers=wrong, environ_base=HIDDEN).status_code == 404
    right = {"Authorization": "Bearer scrape-secret"}
    response = client.get("/metrics", headers=right, environ_base=HIDDEN)
    assert response.status_code == 200
    assert b"snapclass_http_requests_total" in response.data


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.1.2.3", True),
        ("10.2.0.1", False),
        ("192.168.1.1", False),
        ("not-an-ip", False),
        (None, False),
    ],
)
def test_address_matching(address, allowed):
    networks = parse_networks("127.0.0.1/32, ::1, 10.1.0.0/16")
    assert address_in(address, networks) is allowed


def test_a_bad_metrics_allow_entry_stops_start_up(database_url):
    class Config(TestingConfig):
        SQLALCHEMY_DATABASE_URI = database_url
        METRICS_ALLOW = "127.0.0.1, not-a-network"

    with pytest.raises(ValueError, match="METRICS_ALLOW: 'not-a-network'"):
        create_app(Config)


# --------------------------------------------------------------------------
# Request ids and the JSON request log


def log_lines(capsys) -> list[dict]:
    return [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{")
    ]


def test_every_request_logs_one_json_line_with_its_id(api, capsys):
    capsys.readouterr()
    response = api.predict(make_image_bytes("JPEG", color=(9, 8, 7)))
    assert response.status_code == 200
    (line,) = [r for r in log_lines(capsys) if r["route"] == "/predict"]
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert line["status"] == 200 and line["method"] == "POST"
    assert line["endpoint"] == "api.predict"
    assert isinstance(line["user_id"], int) and line["auth"] == "token"
    assert line["duration_ms"] > 0
    assert {"decode", "inference", "total"} <= set(line["timing_ms"])


def test_log_lines_cannot_be_forged(classifier, database_url, capsys):
    class Config(TestingConfig):
        SQLALCHEMY_DATABASE_URI = database_url
        TRUSTED_PROXIES = "127.0.0.1"

    client = create_app(Config).test_client()
    capsys.readouterr()
    evil = 'x","user_id":1,"status":200,"y":"'
    response = client.get("/no-such-page", headers={"X-Request-ID": evil})
    assert response.headers["X-Request-ID"] != evil  # even from a trusted proxy
    client.get("/%0A%7B%22user_id%22:1%7D", headers={"User-Agent": evil})
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    records = [json.loads(line) for line in lines]
    assert len(records) == 2
    assert all(r["user_id"] is None and r["status"] == 404 for r in records)
    assert all(r["route"] == "<unmatched>" for r in records)
    assert not any('user_id":1' in line or evil in line for line in lines)


def test_logging_the_user_never_queries_the_database(app, signed_in):
    import sqlalchemy as sa
    from flask import g

    from app.models import User
    from app.observability.request_log import logged_user_id

    queries = []

    def count(*args):
        queries.append(args)

    with app.test_request_context("/"), app.app_context():
        user = db.session.scalar(sa.select(User))
        expected = user.id
        db.session.rollback()  # as the error handlers do: the row is expired
        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            g._login_user = user
            assert logged_user_id() == expected
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
    assert queries == []


def test_incoming_request_id_is_ignored_without_trusted_proxies(client):
    response = client.get("/healthz", headers={"X-Request-ID": "from-the-client"})
    assert response.headers["X-Request-ID"] != "from-the-client"
    assert len(response.headers["X-Request-ID"]) == 32


def test_trusted_proxy_request_id_is_echoed(classifier, database_url):
    class Config(TestingConfig):
        SQLALCHEMY_DATABASE_URI = database_url
        TRUSTED_PROXIES = "10.0.0.0/8"

    client = create_app(Config).test_client()
    proxy = {"REMOTE_ADDR": "10.0.0.5"}
    response = client.get(
        "/healthz", headers={"X-Request-ID": "nginx-abc123"}, environ_base=proxy
    )
    assert response.headers["X-Request-ID"] == "nginx-abc123"
    elsewhere = client.get(
        "/healthz", headers={"X-Request-ID": "nginx-abc123"}, environ_base=HIDDEN
    )
    assert elsewhere.headers["X-Request-ID"] != "nginx-abc123"


@pytest.mark.parametrize("header", ["", "a" * 129, "two words", "x\r\ny", "ü"])
def test_malformed_request_ids_are_replaced(header):
    trusted = parse_networks("127.0.0.1")
    environ = {"REMOTE_ADDR": "127.0.0.1"}
    assert request_id_from(environ, header, trusted) != header


# --------------------------------------------------------------------------
# The real server: several workers, one set of numbers


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory, model_cache_dir, classifier):
    """2 workers; the in-process classifier fixture has converted the model."""
    from devtools.database import database_for_test
    from devtools.server import start_server

    tmp = tmp_path_factory.mktemp("metrics-server")
    metrics_dir = tmp / "prometheus"
    server = start_server(
        tmp,
        database_for_test(tmp, "snapclass_metrics"),
        model_cache_dir=model_cache_dir,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        GUNICORN_THREADS="2",
    )
    server.extra["metrics_dir"] = metrics_dir
    yield server
    server.stop()


def live_metrics(url: str) -> dict[tuple, float]:
    response = requests.get(url + "/metrics", timeout=10)
    assert response.status_code == 200
    return parse_exposition(response.text)


@pytest.mark.server
def test_counters_add_up_across_gunicorn_workers(gunicorn):
    before = live_metrics(gunicorn.url)
    pids, sent = set(), 0
    # A new connection each time, until both workers have served some.
    while sent < 30 or (len(pids) < 2 and sent < 300):
        response = requests.get(
            gunicorn.url + "/api/system",
            headers={**gunicorn.headers, "Connection": "close"},
            timeout=10,
        )
        assert response.status_code == 200
        pids.add(response.json()["server"]["pid"])
        sent += 1
    after = live_metrics(gunicorn.url)
    assert len(pids) == 2, "one worker served every request"
    name = "snapclass_http_requests_total"
    labels = {"route": "/api/system", "status": "200"}
    assert value(after, name, **labels) - value(before, name, **labels) == sent
    assert any(p.suffix == ".db" for p in gunicorn.extra["metrics_dir"].iterdir())
    assert value(after, "snapclass_model_info", weights="random") == 1


@pytest.mark.server
def test_killed_worker_is_counted_as_a_restart_and_its_counts_stay(gunicorn):
    before = live_metrics(gunicorn.url)
    victim = gunicorn.workers()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        workers = gunicorn.workers()
        if victim not in workers and len(workers) == 2:
            break
        time.sleep(0.2)
    gunicorn.wait_workers(2)
    after = live_metrics(gunicorn.url)
    restarts = "snapclass_worker_restarts_total"
    assert value(after, restarts) - value(before, restarts) == 1
    # Counters of the dead worker are still part of the sums; its in-flight
    # gauge is not (the master dropped its live file).
    name = "snapclass_http_requests_total"
    assert value(after, name) >= value(before, name)
    assert value(after, "snapclass_http_requests_in_flight") == 0
    assert value(after, "snapclass_model_info") == 1


@pytest.mark.server
def test_live_server_logs_one_json_line_per_request(gunicorn):
    response = requests.get(
        gunicorn.url + "/api/predictions",
        headers={**gunicorn.headers, "X-Request-ID": "client-chosen"},
        timeout=10,
    )
    assert response.status_code == 200
    request_id = response.headers["X-Request-ID"]
    assert request_id != "client-chosen"  # no trusted proxies configured
    deadline = time.monotonic() + 10
    records = []
    while time.monotonic() < deadline and not records:
        records = [
            json.loads(line)
            for line in gunicorn.log().splitlines()
            if line.startswith("{") and request_id in line
        ]
        time.sleep(0.1)
    (record,) = records
    assert record["route"] == "/api/predictions" and record["status"] == 200
    assert record["user_id"] is not None
