"""Run the load: start the app (or use a running one), drive Locust, sample
the server's CPU and memory, read /api/system and measure the model ceiling.

Everything measured is written into the report folder (Locust's CSVs, one
request log and one resource log per phase, ``run.json``); ``stress.report``
turns the folder into the report and never needs the server.
"""

from __future__ import annotations

import csv
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is a folder of scripts, not a package
    sys.path.insert(0, str(ROOT))

from bench.bench import bench_server  # noqa: E402
from bench.bench import raw_ceiling  # noqa: E402

BIN = Path(sys.executable).parent
CORES = len(os.sched_getaffinity(0))
SAMPLE_INTERVAL_S = 1.0
RESOURCE_COLUMNS = (
    "elapsed_s",
    "server_cpu_cores",
    "server_rss_mb",
    "server_processes",
    "locust_cpu_cores",
    "machine_cpu_percent",
)


@dataclass
class Phase:
    """One Locust run: the profile, a no-wait saturation run or a step load."""

    name: str
    kind: str  # "profile", "saturation" or "step"
    users: int
    spawn_rate: float
    duration_s: int
    wait: str  # SNAPCLASS_WAIT: "between:1:5" or "none"
    tags: list[str] = field(default_factory=list)
    step: dict | None = None  # {"users", "seconds", "max_users"} for kind "step"
    started_at: float = 0.0
    wall_s: float = 0.0
    locust_exit_code: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Target:
    """Where the load goes, and what we know about the processes behind it."""

    url: str
    token: str | None
    started_here: bool
    server_pids: Callable[[], list[int]] = list


# --------------------------------------------------------------------------
# The server


def server_settings(args) -> dict[str, str]:
    """Environment for the Gunicorn we start, from the command line."""
    settings = {"RESULT_CACHE": "true" if args.result_cache == "on" else "false"}
    for option, name in (
        ("workers", "WEB_CONCURRENCY"),
        ("threads", "GUNICORN_THREADS"),
        ("intra_op_threads", "INTRA_OP_THREADS"),
        ("backend", "INFERENCE_BACKEND"),
    ):
        value = getattr(args, option)
        if value is not None:
            settings[name] = str(value)
    for item in args.server_env:
        name, _, value = item.partition("=")
        settings[name] = value
    return settings


def process_tree(pid: int) -> list[int]:
    """The Gunicorn master and all its children (the workers)."""
    import psutil

    try:
        master = psutil.Process(pid)
        return [pid, *(child.pid for child in master.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


@contextmanager
def target(args, folder: Path) -> Iterator[Target]:
    """The app at ``--host``, or a fresh Gunicorn (random weights) on 127.0.0.1
    with a user and token made by the CLI, as ``make bench`` does."""
    if args.host:
        yield Target(args.host.rstrip("/"), args.token, started_here=False)
        return
    workdir = Path(tempfile.mkdtemp(prefix="snapclass-stress-"))
    try:
        with bench_server(
            workdir, args.model_cache, 0, **server_settings(args)
        ) as server:
            pid = server.process.pid
            try:
                yield Target(
                    server.url,
                    server.token,
                    started_here=True,
                    server_pids=lambda: process_tree(pid),
                )
            finally:
                shutil.copy(server.log_path, folder / "server.log")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def system_under_test(url: str, token: str | None) -> dict:
    """``GET /api/system`` of the running app, or why it is unavailable."""
    import requests

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
    import psutil

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
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


# --------------------------------------------------------------------------
# Locust


def locust_command(phase: Phase, url: str, folder: Path, user_classes) -> list[str]:
    locustfiles = "locustfile.py"
    if phase.kind == "step":
        locustfiles += ",stress/step_shape.py"
    command = [
        str(BIN / "locust"),
        "-f",
        locustfiles,
        "--headless",
        "--host",
        url,
        "--csv",
        str(folder / f"locust-{phase.name}"),
        "--html",
        str(folder / f"locust-{phase.name}.html"),
        "--only-summary",
        "--stop-timeout",
        "10",
    ]
    if phase.kind != "step":
        command += ["-u", str(phase.users), "-r", str(phase.spawn_rate)]
        command += ["-t", f"{phase.duration_s}s"]
    if phase.tags:
        command += ["--tags", *phase.tags]
    return command + list(user_classes)


def locust_env(phase: Phase, folder: Path, args) -> dict[str, str]:
    env = {
        **os.environ,
        "SNAPCLASS_WAIT": phase.wait,
        "SNAPCLASS_REQUEST_LOG": str(folder / f"requests-{phase.name}.csv"),
        "SNAPCLASS_UNIQUE_IMAGES": "0" if args.repeat_images else "1",
        "SNAPCLASS_IMAGE_SIZE": args.image_size,
    }
    if args.images:
        env["SNAPCLASS_IMAGES"] = str(Path(args.images).resolve())
    if phase.step:
        env["SNAPCLASS_STEP_USERS"] = str(phase.step["users"])
        env["SNAPCLASS_STEP_SECONDS"] = str(phase.step["seconds"])
        env["SNAPCLASS_STEP_MAX"] = str(phase.step["max_users"])
    return env


class ResourceSampler:
    """CPU (in cores) and RSS of the server processes and of Locust, once per
    second; psutil's cpu_percent needs the same Process objects between calls."""

    def __init__(self, path: Path, server_pids: Callable[[], list[int]]) -> None:
        self.handle = path.open("w", newline="")
        self.writer = csv.writer(self.handle)
        self.writer.writerow(RESOURCE_COLUMNS)
        self.server_pids = server_pids
        self.processes: dict[int, object] = {}
        self.started = time.monotonic()
        import psutil

        psutil.cpu_percent()  # the first call only sets the baseline

    def _process(self, pid: int):
        import psutil

        if pid not in self.processes:
            process = psutil.Process(pid)
            process.cpu_percent()  # the first call only sets the baseline
            self.processes[pid] = process
        return self.processes[pid]

    def _usage(self, pids: list[int]) -> tuple[float, float, int]:
        import psutil

        cpu = rss = 0.0
        alive = 0
        for pid in pids:
            try:
                process = self._process(pid)
                cpu += process.cpu_percent() / 100
                rss += process.memory_info().rss / 2**20
                alive += 1
            except psutil.NoSuchProcess:
                continue
        return cpu, rss, alive

    def sample(self, locust_pid: int) -> None:
        import psutil

        server_cpu, server_rss, count = self._usage(self.server_pids())
        locust_cpu, _, _ = self._usage([locust_pid])
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


def run_phase(phase: Phase, target: Target, folder: Path, args) -> Phase:
    """Run Locust headless for one phase, sampling resources while it runs."""
    log = (folder / f"locust-{phase.name}.log").open("w")
    sampler = ResourceSampler(
        folder / f"resources-{phase.name}.csv", target.server_pids
    )
    phase.started_at = time.time()
    process = subprocess.Popen(
        locust_command(phase, target.url, folder, args.user_classes),
        cwd=ROOT,
        env=locust_env(phase, folder, args),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + phase.duration_s + 120
    try:
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.terminate()
                break
            time.sleep(SAMPLE_INTERVAL_S)
            sampler.sample(process.pid)
    finally:
        process.wait(timeout=60)
        sampler.close()
        log.close()
    phase.wall_s = time.time() - phase.started_at
    phase.locust_exit_code = process.returncode
    if not (folder / f"locust-{phase.name}_stats.csv").is_file():
        raise RuntimeError(
            f"Locust wrote no statistics; see {folder / f'locust-{phase.name}.log'}"
        )
    return phase
