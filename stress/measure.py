"""Run the load and record it: start the app (or use ``--host``), run each
phase with ``devtools.locust``, sample the server's CPU and memory once a
second, read ``/api/system`` and measure the raw model ceiling.

Everything lands in the report folder (Locust's CSVs and HTML, one request log
and one resource log per phase, ``run.json``); ``stress.report`` builds the
report from the folder alone.
"""

from __future__ import annotations

import csv
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from bench.raw import raw_ceiling
from devtools import locust
from devtools.server import start_server

CORES = len(os.sched_getaffinity(0))
RESOURCE_COLUMNS = (
    "elapsed_s",
    "server_cpu_cores",
    "server_rss_mb",
    "server_processes",
    "locust_cpu_cores",
    "machine_cpu_percent",
)


@dataclass
class Target:
    """Where the load goes, and the processes behind it when we started them."""

    url: str
    token: str | None
    started_here: bool
    server_pids: Callable[[], list[int]] = list


def server_settings(args) -> dict[str, str]:
    """Environment for the Gunicorn we start, from the command line."""
    settings = {"RESULT_CACHE": "true" if args.result_cache == "on" else "false"}
    for option, name in (
        ("workers", "WEB_CONCURRENCY"),
        ("threads", "GUNICORN_THREADS"),
        ("intra_op_threads", "INTRA_OP_THREADS"),
        ("backend", "INFERENCE_BACKEND"),
    ):
        if getattr(args, option) is not None:
            settings[name] = str(getattr(args, option))
    for item in args.server_env:
        name, _, value = item.partition("=")
        settings[name] = value
    return settings


def process_tree(pid: int) -> list[int]:
    """The Gunicorn master and all its children (the workers)."""
    try:
        return [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


@contextmanager
def target(args, folder: Path) -> Iterator[Target]:
    """The app at ``--host``, or a fresh Gunicorn on 127.0.0.1 started as
    ``make bench`` starts it (random weights, fresh SQLite, one worker per
    core, f32), with a user and token made by the CLI."""
    if args.host:
        yield Target(args.host.rstrip("/"), args.token, started_here=False)
        return
    workdir = Path(tempfile.mkdtemp(prefix="snapclass-stress-"))
    server = None
    try:
        server = start_server(
            workdir,
            f"sqlite:///{workdir / 'stress.sqlite3'}",
            model_cache_dir=args.model_cache,
            reset=False,
            username="stress",
            **{
                "WEB_CONCURRENCY": str(CORES),
                "OPENVINO_PRECISION": "f32",
                **server_settings(args),  # the command line wins
            },
        )
        pid = server.pid
        yield Target(server.url, server.token, True, lambda: process_tree(pid))
    finally:
        if server is not None:
            server.stop()
            shutil.copy(server.log_path, folder / "server.log")
        shutil.rmtree(workdir, ignore_errors=True)


def system_under_test(url: str, token: str | None) -> dict:
    """``GET /api/system`` of the running app, or why it is unavailable."""
    if not token:
        return {"unavailable": "no API token (pass --token to read /api/system)"}
    try:
        response = requests.get(
            url + "/api/system",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()
    except (requests.RequestException, ValueError) as exc:
        return {"unavailable": f"GET /api/system failed: {exc}"}


def machine() -> dict:
    """This machine: where Locust ran (and the server, when we started it)."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": CORES,
        "memory_mb": round(psutil.virtual_memory().total / 2**20),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def model_ceiling(backend: str, cache: Path) -> dict:
    """bench's raw ceiling: the network alone, in one process on all cores."""
    try:
        result = raw_ceiling(backend, CORES, cache)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return {"unavailable": f"measuring the ceiling failed: {exc}"[:500]}
    best = max(result, key=lambda batch: result[batch]["img_s"])
    return {
        "backend": backend,
        "threads": CORES,
        "batch1_ms": result[1]["ms"],
        "batch1_img_s": result[1]["img_s"],
        "best_batch": best,
        "best_img_s": result[best]["img_s"],
    }


class ResourceSampler:
    """CPU (in cores) and RSS of the server processes and of Locust, written
    once a second; psutil's cpu_percent needs the same Process between calls."""

    def __init__(self, path: Path, server_pids: Callable[[], list[int]]) -> None:
        self.handle = path.open("w", newline="")
        self.writer = csv.writer(self.handle)
        self.writer.writerow(RESOURCE_COLUMNS)
        self.server_pids = server_pids
        self.processes: dict[int, psutil.Process] = {}
        self.started = time.monotonic()
        psutil.cpu_percent()  # the first call only sets the baseline

    def usage(self, pids: list[int]) -> tuple[float, float, int]:
        cpu = rss = 0.0
        alive = 0
        for pid in pids:
            try:
                if pid not in self.processes:
                    self.processes[pid] = psutil.Process(pid)
                    self.processes[pid].cpu_percent()  # sets the baseline
                cpu += self.processes[pid].cpu_percent() / 100
                rss += self.processes[pid].memory_info().rss / 2**20
                alive += 1
            except psutil.NoSuchProcess:
                continue
        return cpu, rss, alive

    def sample(self, locust_pid: int) -> None:
        server_cpu, server_rss, count = self.usage(self.server_pids())
        locust_cpu = self.usage([locust_pid])[0]
        self.writer.writerow(
            [
                f"{time.monotonic() - self.started:.1f}",
                f"{server_cpu:.2f}",
                f"{server_rss:.0f}",
                count,
                f"{locust_cpu:.2f}",
                f"{psutil.cpu_percent():.0f}",
            ]
        )

    def close(self) -> None:
        self.handle.close()


def run_phase(phase: dict, where: Target, folder: Path, args) -> dict:
    """Run one phase headless, sampling resources; return it with its timing."""
    name = phase["name"]
    profile = locust.Profile(
        phase["users"],
        phase["spawn_rate"],
        phase["duration_s"],
        phase["wait"],
        phase["tags"],
        list(args.user_classes),
    )
    env = {
        "SNAPCLASS_REQUEST_LOG": str(folder / f"requests-{name}.csv"),
        "SNAPCLASS_UNIQUE_IMAGES": "0" if args.repeat_images else "1",
        "SNAPCLASS_IMAGE_SIZE": args.image_size,
    }
    if args.images:
        env["SNAPCLASS_IMAGES"] = str(Path(args.images).resolve())
    sampler = ResourceSampler(folder / f"resources-{name}.csv", where.server_pids)
    started = time.time()
    try:
        result = locust.run(
            where.url,
            folder / f"locust-{name}",
            profile,
            env=env,
            html=True,
            every_second=sampler.sample,
        )
    finally:
        sampler.close()
    return {
        **phase,
        "started_at": started,
        "wall_s": result.wall_s,
        "locust_exit_code": result.exit_code,
    }
