"""A live server to measure: a real Gunicorn under Locust, through devtools.

:func:`bench_server` starts Gunicorn as the tests do (``devtools.server``),
:func:`run_locust` runs Locust headless against /predict (``devtools.locust``)
and :func:`sequential_latency` posts one photo at a time.
"""

from __future__ import annotations

import re
import resource
import shutil
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import psutil
import requests

from bench.program import CORES
from devtools import locust
from devtools.server import LiveServer
from devtools.server import proc_status
from devtools.server import start_server


@contextmanager
def bench_server(
    workdir: Path, cache: Path, index: int, **settings: str
) -> Iterator[LiveServer]:
    """Gunicorn with gunicorn.conf.py, started the way the tests start it
    (devtools.server): random weights, a fresh SQLite database, every
    worker ready; the result cache off unless ``settings`` turn it on (bench
    measures the model, not the cache)."""
    folder = workdir / f"server-{index}"
    server = start_server(
        folder,
        f"sqlite:///{folder / 'bench.sqlite3'}",
        model_cache_dir=cache,
        reset=False,
        username="bench",
        **{
            "WEB_CONCURRENCY": str(CORES),
            "RESULT_CACHE": "false",
            # The defaults, whatever the shell says, unless a run names them.
            "OPENVINO_PRECISION": "auto",
            "BATCH_MAX_SIZE": "",
            "BATCH_MAX_DELAY_MS": "",
            **settings,
        },
    )
    try:
        yield server
    finally:
        server.stop()


def worker_rss_mb(pids: list[int]) -> list[float]:
    return [proc_status(pid)["VmRSS"] / 1024 for pid in pids]


def worker_load_seconds(log: str) -> list[float]:
    """Each worker's model load and warm-up, as its 'ready' line says."""
    return [float(s) for s in re.findall(r"warmed in ([\d.]+) s", log)]


def server_cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds of ``pids`` so far (the gone ones left out)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def predict_row(row: dict[str, str], duration_s: int, cpu: dict[str, float]):
    """Locust's /predict row of ``_stats.csv`` as the report's figures; ``cpu``
    holds the CPU seconds the server and Locust used over ``duration_s``."""
    return {
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "rps": float(row["Requests/s"]),
        "p50": float(row["50%"]),
        "p95": float(row["95%"]),
        "p99": float(row["99%"]),
        "max": float(row["Max Response Time"]),
        "avg": float(row["Average Response Time"]),
        # CPU cores used on average, by the load generator and by the
        # server's workers (both share this machine).
        "locust_cores": cpu["locust"] / duration_s,
        "server_cores": cpu["server"] / duration_s,
    }


def run_locust(
    url: str,
    image: Path,
    workdir: Path,
    *,
    users: int,
    spawn: float,
    duration: int,
    wait: str,
    name: str,
    server_pids: list[int],
) -> dict:
    """Locust headless against /predict only; returns the /predict row."""
    images = workdir / f"images-{name}"
    images.mkdir(exist_ok=True)
    shutil.copy(image, images / image.name)
    prefix = workdir / f"locust-{name}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = server_cpu_seconds(server_pids)
    profile = locust.Profile(users, spawn, duration, wait, ["predict"], ["BrowserUser"])
    result = locust.run(url, prefix, profile, env={"SNAPCLASS_IMAGES": str(images)})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {
        "locust": (after.ru_utime - before.ru_utime)
        + (after.ru_stime - before.ru_stime),
        "server": server_cpu_seconds(server_pids) - server_before,
    }
    row = result.stats().get("/predict")
    if row is None:
        raise RuntimeError(f"no /predict row in {prefix}_stats.csv")
    return predict_row(row, duration, cpu)


class Latency(NamedTuple):
    """Back-to-back /predict calls at low load."""

    median_ms: float
    max_ms: float
    server_timing: str  # the last response's Server-Timing header


def sequential_latency(
    url: str, token: str, data: bytes, name: str, n: int = 20
) -> Latency:
    """Median and max of ``n`` back-to-back /predict calls (after two)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    times, server = [], []
    for _ in range(n + 2):
        started = time.perf_counter()
        response = session.post(
            url + "/predict", files={"image": (name, data)}, timeout=30
        )
        response.raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
        server.append(response.headers["Server-Timing"])
    times = times[2:]
    return Latency(statistics.median(times), max(times), server[-1])
