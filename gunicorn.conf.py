"""Gunicorn settings for Snapclass: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Every value can be overridden by environment variable (names below).

Layout on this 2-core machine (random weights, TensorFlow 2.21 compiled call,
one 224x224 image; see README "Performance" for the full table):

    intra-op threads   batch 1 latency   images/s per process
    2                  28 ms             35
    1                  41 ms             24 (x2 workers = 48 img/s total)

Two workers with one intra-op thread each give the most throughput: each
worker keeps one core busy and they never fight over cores. One worker with
two intra-op threads answers a single request faster but serves fewer per
second. So the defaults are: one worker per core, TensorFlow's thread pool
sized cores // workers, and 2 threads per worker so one request's decode and
database work overlaps another's inference.
"""

import os
import sys

_CORES = (
    len(os.sched_getaffinity(0))
    if hasattr(os, "sched_getaffinity")
    else (os.cpu_count() or 1)
)

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", _CORES))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 2))
# Never preload: TensorFlow must first be imported in the worker, after fork.
preload_app = False
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 60))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 30))
keepalive = 5
# "-" logs each request to stdout; set GUNICORN_ACCESS_LOG= (empty) to turn off.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
proc_name = "snapclass"

# Read by app.config in each worker; set here, before any worker imports it.
os.environ.setdefault("INTRA_OP_THREADS", str(max(1, _CORES // max(1, workers))))
os.environ.setdefault("INTER_OP_THREADS", "1")


def on_starting(server):
    """In the master, before forking: fetch the ImageNet weights once (so workers
    do not race) and convert the model for OpenVINO once, or refuse to start.

    Both run TensorFlow in a child process: the master must never import it.
    """
    from pathlib import Path

    from app.inference import WeightsUnavailable
    from app.inference import ensure_converted
    from app.inference import ensure_weights
    from app.inference import parse_weights
    from app.inference import resolve_backend

    try:
        spec = parse_weights(os.environ.get("MODEL_WEIGHTS", "imagenet"))
        ensure_weights(spec)
        backend = resolve_backend(os.environ.get("INFERENCE_BACKEND", "auto"))
        if backend == "openvino":
            cache = os.environ.get("MODEL_CACHE_DIR") or Path(__file__).parent / (
                "instance/models"
            )
            path = ensure_converted(spec, Path(cache))
            os.environ["SNAPCLASS_OPENVINO_MODEL"] = str(path)
            server.log.info("OpenVINO model: %s", path)
    except (WeightsUnavailable, ValueError) as exc:
        print(f"\nSnapclass cannot start.\n\n{exc}\n", file=sys.stderr)
        raise SystemExit(1) from None


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
