"""Gunicorn settings for Snapclass: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Every value can be overridden by environment variable (names below).

Layout: one worker per core, each running one inference at a time (a lock in
the OpenVINO runtime, or the batcher's single loop) while its other threads
decode uploads and talk to the database. Giving each inference twice the
worker's share of the cores (2 threads on 2 cores) costs nothing under load
and makes a request that arrives alone faster. The same rule, unmeasured
beyond 2 cores, gives N workers with 2 intra-op threads each on N cores. In a
container with a CPU limit, set INTRA_OP_THREADS=1 (the quota would throttle
the extra threads). The 16 request threads are for fast 503s under overload
(app/http/overload.py) and cost little. The measurements that chose this,
on three CPUs, with and without batching: docs/performance.md, "Worker layout".
"""

import os
import re
import sys

from gunicorn import glogging

_CORES = (
    len(os.sched_getaffinity(0))
    if hasattr(os, "sched_getaffinity")
    else (os.cpu_count() or 1)
)

# Loopback by default: clients should reach Gunicorn through a buffering proxy
# (deploy/nginx/); HOST=0.0.0.0 exposes it (the container image sets that).
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", _CORES))
worker_class = "gthread"
# More threads than MAX_INFLIGHT_PER_WORKER (12): the spare ones answer the
# overflow with an immediate 503 instead of leaving it queued
# (app/http/overload.py).
threads = int(os.environ.get("GUNICORN_THREADS", 16))
# Never preload: TensorFlow must first be imported in the worker, after fork.
preload_app = False
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 60))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 30))
keepalive = 5
# Off by default: the app's JSON request log (REQUEST_LOG) has a line per request
# already. GUNICORN_ACCESS_LOG=- writes Gunicorn's as well, to stdout.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# A share link's path is its secret (/s/<token>): never write it to a log.
SHARE_SECRET = re.compile(r"(/s/)[^/?#\s]+")


def redact_secrets(text):
    return SHARE_SECRET.sub(r"\1<redacted>", text) if isinstance(text, str) else text


class RedactingLogger(glogging.Logger):
    """Gunicorn's logger, with share-link secrets taken out of the access log
    (request line, path and referrer)."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "f"):
            atoms[key] = redact_secrets(atoms.get(key))
        return atoms


logger_class = RedactingLogger
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
proc_name = "snapclass"

# Read by app.config / app.services.system in each worker; set before any worker starts.
os.environ["SNAPCLASS_WORKERS"] = str(workers)
os.environ["SNAPCLASS_THREADS"] = str(threads)
# Each worker runs one inference at a time (app/inference/openvino_runtime.py)
# on up to twice its share of the cores: alone, a request then has every core
# of a 2-core machine; under load, the extra threads cost no throughput.
os.environ.setdefault(
    "INTRA_OP_THREADS", str(min(_CORES, 2 * max(1, _CORES // max(1, workers))))
)
os.environ.setdefault("INTER_OP_THREADS", "1")
# Prometheus metrics: each worker writes its numbers to files here and a scrape
# sums them. One directory per bind address, so that servers sharing a host
# never mix (or wipe) each other's numbers.
os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    os.path.join(
        os.path.dirname(os.path.abspath(__file__)),
        "instance",
        "metrics",
        re.sub(r"[^A-Za-z0-9_.-]", "_", bind),
    ),
)


def on_starting(server):
    """In the master, before forking: fetch the ImageNet weights once (so workers
    do not race) and convert the model for OpenVINO once, or refuse to start.

    Both run TensorFlow in a child process: the master must never import it.
    """
    from pathlib import Path

    # The files of a previous run would be summed into this run's metrics.
    metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):
        stale.unlink()

    from app.config import Config
    from app.config import check_settings
    from app.config import settings_of
    from app.inference import WeightsUnavailable
    from app.inference import ensure_converted
    from app.inference import ensure_weights
    from app.inference import parse_precision
    from app.inference import parse_weights
    from app.inference import require_quantized
    from app.inference import resolve_backend

    try:
        # The settings as each worker's app will read them, checked by the
        # app's own validator before any worker starts.
        settings = settings_of(Config)
        check_settings(settings)
        spec = parse_weights(settings["MODEL_WEIGHTS"])
        ensure_weights(spec)
        backend = resolve_backend(settings["INFERENCE_BACKEND"])
        precision = parse_precision(settings["OPENVINO_PRECISION"])
        if backend == "openvino":
            cache = settings["MODEL_CACHE_DIR"] or Path(__file__).parent / (
                "instance/models"
            )
            path = ensure_converted(
                spec, Path(cache), timeout_s=settings["MODEL_CONVERT_TIMEOUT_S"]
            )
            # Workers create their app after this, so they read it (app/config.py).
            os.environ["SNAPCLASS_OPENVINO_MODEL"] = str(path)
            server.log.info("OpenVINO model: %s", path)
            if precision == "int8":
                server.log.info("INT8 model: %s", require_quantized(Path(cache), spec))
    except (WeightsUnavailable, ValueError) as exc:
        print(f"\nSnapclass cannot start.\n\n{exc}\n", file=sys.stderr)
        raise SystemExit(1) from None


def child_exit(server, worker):
    """In the master, when a worker exits: drop its live gauges (in-flight
    requests) and count the exit as a restart unless the server is stopping."""
    from app.observability.metrics import mark_worker_exit

    # The master empties LISTENERS before it stops its workers.
    mark_worker_exit(worker.pid, server_running=bool(server.LISTENERS))


def post_fork(server, worker):
    """In each worker, first thing, before any thread exists: heap settings
    that reuse upload-sized buffers without page faults and keep RSS bounded
    (app/memory.py)."""
    from app.memory import limit_heap_retention

    limit_heap_retention()


def post_worker_init(worker):
    """In each worker, after fork: load ResNet50 once and warm it."""
    import time

    started = time.perf_counter()
    try:
        worker.wsgi.extensions["snapclass.model"].load()
    except Exception as exc:
        worker.log.error("Snapclass worker could not load the model: %s", exc)
        sys.exit(3)  # gunicorn's WORKER_BOOT_ERROR: the master stops, no crash loop
    worker.log.info(
        "worker %s ready: model loaded and warmed in %.2f s",
        os.getpid(),
        time.perf_counter() - started,
    )
    from app.database import warn_if_no_schema

    warn_if_no_schema(worker.wsgi)


def worker_exit(server, worker):
    """In each worker, as it exits: the batching loop finishes what is queued."""
    app = getattr(worker, "wsgi", None)  # None if the worker never booted
    service = app.extensions.get("snapclass.model") if app is not None else None
    if service is not None:
        service.close()
