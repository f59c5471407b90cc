"""Prometheus metrics, correct across Gunicorn workers, served at ``/metrics``.

Gunicorn runs several worker processes, so each keeps its numbers in files under
``PROMETHEUS_MULTIPROC_DIR`` (set and cleaned by ``gunicorn.conf.py``) and a
scrape sums them (prometheus-client's multiprocess mode). Without that variable
(``flask run``, tests) the numbers live in this process only.

``/metrics`` is a small WSGI layer in front of Flask: a scrape needs no session,
database, CSRF check or rate limit, and does not count as a request itself. It
answers only the addresses in ``METRICS_ALLOW`` or a bearer ``METRICS_TOKEN``;
everyone else gets the same 404 as for a page that does not exist.
"""

from __future__ import annotations

import hmac
import json
import os
import time
from collections.abc import Callable
from typing import Protocol

from flask import Flask
from flask import Response
from flask import g
from flask import request
from prometheus_client import REGISTRY
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram
from prometheus_client import generate_latest
from prometheus_client import multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from app.http.proxies import address_in
from app.http.proxies import parse_networks
from app.inference import ModelInfo

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
# Routes whose 4xx answers are refused uploads (counted by error code).
UPLOAD_ENDPOINTS = frozenset(("api.predict", "web.upload"))
UNMATCHED_ROUTE = "<unmatched>"
# For answers that carry no error code of their own (HTML pages, /readyz).
OVERLOAD_CODES = {429: "too_many_requests", 503: "unavailable"}

if os.environ.get(MULTIPROC_ENV):
    # Each metric opens its file when it is created, right below.
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)

REQUESTS = Counter(
    "snapclass_http_requests_total",
    "HTTP requests answered, by route (URL rule, never the raw path), method "
    "and status.",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "snapclass_http_request_duration_seconds",
    "Time from the first request hook to the response, by route, method and status.",
    ["route", "method", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
IN_FLIGHT = Gauge(
    "snapclass_http_requests_in_flight",
    "Requests being handled right now, summed over live workers.",
    multiprocess_mode="livesum",
)
INFERENCE_SECONDS = Histogram(
    "snapclass_inference_duration_seconds",
    "Time of one batch in the network, by backend.",
    ["backend"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
BATCH_SIZE = Histogram(
    "snapclass_inference_batch_size",
    "Images per batch that went through the network (cache hits excluded; with "
    "BATCH_MAX_SIZE > 1 a batch can hold several requests' images).",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32),
)
QUEUE_SECONDS = Histogram(
    "snapclass_inference_queue_seconds",
    "Time a request's images waited for the batching loop before their batch "
    "ran (0 with BATCH_MAX_SIZE=1).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CACHE_HITS = Counter(
    "snapclass_result_cache_hits_total",
    "Images answered from the result cache (identical bytes, same model).",
)
CACHE_MISSES = Counter(
    "snapclass_result_cache_misses_total",
    "Images that had to go through the network.",
)
UPLOADS_REJECTED = Counter(
    "snapclass_uploads_rejected_total",
    "Upload requests refused with a 4xx, by error code.",
    ["reason"],
)
OVERLOAD = Counter(
    "snapclass_http_overload_responses_total",
    "429 (rate limited) and 503 (model or database unavailable) answers, by "
    "status and error code.",
    ["status", "code"],
)
MODEL_INFO = Gauge(
    "snapclass_model_info",
    "The model this instance serves (value is always 1).",
    ["name", "weights", "backend", "precision"],
    multiprocess_mode="livemax",
)
WORKER_RESTARTS = Counter(
    "snapclass_worker_restarts_total",
    "Gunicorn workers that exited while the server kept running (crash, "
    "timeout, out of memory, max_requests); counted by the master.",
)

_model_info_set = False


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def render_latest() -> bytes:
    """All metrics in Prometheus' text format (summed over workers)."""
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


class MetricsEndpoint:
    """WSGI middleware answering ``GET /metrics`` before Flask sees the request.

    ``model_info`` says what model this worker serves, or None while it cannot
    be built (the factory hands in the model service's).
    """

    path = "/metrics"

    def __init__(
        self, wsgi_app, config, model_info: Callable[[], ModelInfo | None]
    ) -> None:
        self.wsgi_app = wsgi_app
        self.model_info = model_info
        self.allow = parse_networks(config["METRICS_ALLOW"])
        token = config.get("METRICS_TOKEN")
        self.token = token.encode() if token else None

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != self.path:
            return self.wsgi_app(environ, start_response)
        if not self.allowed(environ):
            body = json.dumps(
                {"error": {"code": "not_found", "message": "Not Found"}}
            ).encode()
            start_response(
                "404 NOT FOUND",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                ],
            )
            return [body]
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("405 METHOD NOT ALLOWED", [("Allow", "GET, HEAD")])
            return [b""]
        set_model_info(self.model_info)
        body = render_latest()
        start_response(
            "200 OK",
            [
                ("Content-Type", CONTENT_TYPE_LATEST),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [body]

    def allowed(self, environ: dict) -> bool:
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, value = header.partition(" ")
        if self.token and scheme.lower() == "bearer":
            return hmac.compare_digest(value.strip().encode(), self.token)
        # REMOTE_ADDR is the client as far as we can trust it: a trusted proxy's
        # X-Forwarded-For is already applied, so a scrape relayed by nginx is
        # judged by the client behind it, not by nginx's own address.
        return address_in(environ.get("REMOTE_ADDR"), self.allow)


def set_model_info(model_info: Callable[[], ModelInfo | None]) -> None:
    """Publish this worker's model name, weights and backend once."""
    global _model_info_set
    if _model_info_set:
        return
    info = model_info()
    if info is None:
        return
    MODEL_INFO.labels(info.name, info.weights, info.backend, info.precision).set(1)
    _model_info_set = True


class Classification(Protocol):
    """What the metrics and the request log read of a classified request: the
    ``ClassifyOutcome`` of ``app.services.predictions`` (plumbing does not
    import services)."""

    timing_ms: dict[str, float]
    batch_size: int  # this request's images that went through the network
    cache_hits: int
    network_batch_size: int  # images in the network batch that carried them


def observe_classification(outcome: Classification) -> None:
    """Count one classified request: cache hits/misses and queue wait.

    The view that classified calls this with the service's outcome, and hands
    the same outcome to the request log. Batches are counted where they run
    (``observe_batch``).
    """
    CACHE_HITS.inc(outcome.cache_hits)
    CACHE_MISSES.inc(outcome.images_run)
    if outcome.images_run:
        QUEUE_SECONDS.observe(outcome.timing_ms.get("queue", 0.0) / 1000.0)


def observe_batch(backend: str):
    """A callback for the classifier: one network batch of ``images`` ran."""

    def observe(images: int, inference_ms: float) -> None:
        BATCH_SIZE.observe(images)
        INFERENCE_SECONDS.labels(backend).observe(inference_ms / 1000.0)

    return observe


def route_label() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED_ROUTE


def method_label() -> str:
    return request.method if request.method in METHODS else "OTHER"


def error_code() -> str | None:
    """The error code ``app/errors.py`` answered with (kept in ``g``)."""
    code = g.get("error_code")
    return str(code)[:64] if code else None


def before_request() -> None:
    g.request_started = time.perf_counter()
    IN_FLIGHT.inc()
    g.in_flight_counted = True


def after_request(response: Response) -> Response:
    started = g.get("request_started")
    if started is None:
        return response
    elapsed = time.perf_counter() - started
    g.request_seconds = elapsed
    route, method, status = route_label(), method_label(), response.status_code
    REQUESTS.labels(route, method, str(status)).inc()
    REQUEST_SECONDS.labels(route, method, str(status)).observe(elapsed)
    if status in (429, 503):
        code = error_code() or OVERLOAD_CODES[status]
        OVERLOAD.labels(str(status), code).inc()
    elif (
        request.endpoint in UPLOAD_ENDPOINTS
        and 400 <= status < 500
        and status not in (401, 403, 404, 405)
    ):
        UPLOADS_REJECTED.labels(error_code() or f"http_{status}").inc()
    return response


def teardown_request(exc: BaseException | None) -> None:
    if g.pop("in_flight_counted", False):
        IN_FLIGHT.dec()


def init_app(app: Flask) -> None:
    """Count every request (``/metrics`` itself is MetricsEndpoint, a WSGI
    layer that ``create_app`` stacks)."""
    app.before_request(before_request)
    app.after_request(after_request)
    app.teardown_request(teardown_request)


def mark_worker_exit(worker_pid: int, server_running: bool) -> None:
    """Called by the Gunicorn master when a worker exits (``child_exit``)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(worker_pid)
    if server_running:
        WORKER_RESTARTS.inc()


def collect_samples() -> dict[str, list[tuple[dict, float]]]:
    """Every sample by name, as ``(labels, value)``, summed over workers."""
    registry = REGISTRY
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    samples: dict[str, list[tuple[dict, float]]] = {}
    for family in registry.collect():
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples
