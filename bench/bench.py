"""``make bench``: the model, the pipeline and the served app, measured in one run.

Prints one report with
  (a) the raw in-process ceiling of each backend (batch 1 and best batch), and
      OpenVINO f32 / bf16 / INT8 at batch 1, 4 and 8 (quantizing once if needed),
  (b) decode + preprocess time, naive vs ours, for small, medium and 12 MP JPEGs,
  (c) the served app (real Gunicorn, real HTTP, random weights) under Locust:
      the seed profile (10 users, spawn 2/s, wait 1-5 s) and saturation (no wait),
  (d) the in-process pipeline ceiling and the served/ceiling ratios,
  (e) worker RSS and start-up time, and a 12 MP photo through /predict at low load,
  (f) batching across requests in process, for several BATCH_MAX_SIZE / DELAY,
  (g) the class activation maps' extra time per image (with and without them).

The served app runs with the defaults and as before issue 15
(OPENVINO_PRECISION=f32 BATCH_MAX_SIZE=1), and with int8 when a model exists.

Usage: python -m bench.bench [--image PATH] [--duration 60] [--layouts] [--only-cam]
Everything runs on this machine; the server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from devtools import locust

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SHARED_IMAGES = ROOT.parent / "shared" / "images"
DEFAULT_IMAGE = SHARED_IMAGES / "bay-1365x1365.jpg"
PHONE_IMAGE = SHARED_IMAGES / "phone-4032x3024-exif-rotated.jpg"
CORES = len(os.sched_getaffinity(0))


# --------------------------------------------------------------------------
# Images


def generated_jpeg(width: int, height: int) -> bytes:
    """A photo-like JPEG, for machines without ../shared/images."""
    from PIL import Image

    image = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize((width, height)),
            Image.radial_gradient("L").resize((width, height)),
            Image.effect_noise((width, height), 40),
        ),
    )
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def load_image(path: Path | None, fallback: tuple[int, int]) -> tuple[str, bytes]:
    if path and path.is_file():
        return path.name, path.read_bytes()
    width, height = fallback
    return f"generated-{width}x{height}.jpg", generated_jpeg(width, height)


# --------------------------------------------------------------------------
# (a) raw model ceiling, one backend per child process (clean thread pools)


RAW_SCRIPT = """
import json, sys, time
import numpy as np
from app.inference import build_classifier
backend, threads, cache = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = build_classifier("random", backend=backend, intra_op_threads=threads,
                     inter_op_threads=1, model_cache_dir=cache)
c.load()
rng = np.random.default_rng(0)
out = {}
for batch in (1, 2, 4, 8):
    x = rng.uniform(-120, 150, size=(batch, 224, 224, 3)).astype("float32")
    c.runtime(x)
    runs = 40 if batch == 1 else max(6, 24 // batch)
    times = []
    for _ in range(runs):
        t = time.perf_counter(); c.runtime(x); times.append(time.perf_counter() - t)
    median = sorted(times)[len(times) // 2]
    out[batch] = {"ms": median * 1000, "img_s": batch / median}
print(json.dumps(out))
"""


def raw_ceiling(backend: str, threads: int, cache: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", RAW_SCRIPT, backend, str(threads), str(cache)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)},
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-1500:])
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return {int(k): v for k, v in data.items()}


# Each precision at batch 1, 4 and 8, interleaved in one process so that the
# machine's drift hits them alike; and how far each moves the softmax from f32.
PRECISIONS_SCRIPT = """
import json, sys, time
import numpy as np
from app.inference import OpenVINORuntime, parse_weights
from app.inference.images import decode_image, preprocess_batch
cache, path = sys.argv[1], sys.argv[2]
threads, rounds = int(sys.argv[3]), int(sys.argv[4])
precisions = sys.argv[5].split(",")
spec = parse_weights("random")
runtimes = {}
for precision in precisions:
    runtime = OpenVINORuntime(spec, cache, threads=threads, precision=precision)
    runtime.load()
    runtimes[precision] = runtime
photo = preprocess_batch([decode_image(open(path, "rb").read(), max_pixels=10**9)])
x = np.concatenate([photo] * 8)
times = {(p, b): [] for p in runtimes for b in (1, 4, 8)}
for (p, b) in times:
    runtimes[p](x[:b])
for _ in range(rounds):
    for (p, b) in times:
        t = time.perf_counter()
        runtimes[p](x[:b])
        times[(p, b)].append(time.perf_counter() - t)
median = {key: sorted(t)[len(t) // 2] for key, t in times.items()}
reference = runtimes["f32"](photo)[0]
print(json.dumps({
    p: {
        "ran": runtimes[p].variant,
        "max_diff": float(np.abs(runtimes[p](photo)[0] - reference).max()),
        **{str(b): b / median[(p, b)] for b in (1, 4, 8)},
    }
    for p in runtimes
}))
"""


def precision_ceilings(cache: Path, image: Path, precisions: list[str]) -> dict:
    """Images/s of each precision at batch 1, 4 and 8 (all cores), and the
    largest softmax difference from f32 on ``image``."""
    result = subprocess.run(
        [sys.executable, "-c", PRECISIONS_SCRIPT, str(cache), str(image)]
        + [str(CORES), "12", ",".join(precisions)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-1500:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def ensure_int8(cache: Path, workdir: Path) -> bool:
    """An INT8 model for the random weights (made once, from the shared photos
    or generated ones when those are missing); False if NNCF is missing."""
    from app.inference import find_quantized
    from app.inference import parse_weights
    from app.inference import quantize_model

    spec = parse_weights("random")
    if find_quantized(cache, spec) is not None:
        return True
    photos = [path.read_bytes() for path in sorted(SHARED_IMAGES.glob("*.jp*g"))]
    photos = photos or [generated_jpeg(640 + 32 * i, 480) for i in range(8)]
    try:
        quantize_model(spec, cache, photos)
    except ImportError:
        return False
    return True


# Batching across requests, in process: one classifier as one worker runs it
# (all cores' inference threads), ``clients`` threads each decoding and
# classifying the photo in a loop; each configuration in turn, several rounds.
BATCHING_SCRIPT = """
import json, sys, threading, time
from app.inference import build_classifier
cache, path, seconds, rounds, clients, threads = sys.argv[1:7]
configs = [tuple(map(int, c.split(":"))) for c in sys.argv[7].split(",")]
data = open(path, "rb").read()
models = {}
for size, delay in configs:
    c = build_classifier("random", backend="openvino", intra_op_threads=int(threads),
                         model_cache_dir=cache, batch_max_size=size,
                         batch_max_delay_ms=delay)
    c.load()
    models[(size, delay)] = c
results = {key: {"n": 0, "s": 0.0, "lat": [], "batch": []} for key in configs}
def run(key):
    c, stop, res = models[key], time.perf_counter() + float(seconds), results[key]
    def client():
        while time.perf_counter() < stop:
            t = time.perf_counter()
            r = c.classify([c.decode(data)])
            res["lat"].append(time.perf_counter() - t)
            res["batch"].append(r.batch_size)
    workers = [threading.Thread(target=client) for _ in range(int(clients))]
    started = time.perf_counter()
    for w in workers: w.start()
    for w in workers: w.join()
    res["s"] += time.perf_counter() - started
for _ in range(int(rounds)):
    for key in configs:
        run(key)
out = []
for (size, delay), r in results.items():
    lat = sorted(r["lat"])
    out.append({"size": size, "delay": delay, "img_s": len(lat) / r["s"],
                "p50": 1000 * lat[len(lat) // 2],
                "p95": 1000 * lat[int(0.95 * (len(lat) - 1))],
                "batch": sum(r["batch"]) / len(r["batch"]),
                "precision": models[(size, delay)].info.precision})
print(json.dumps(out))
"""

BATCHING_CONFIGS = "1:0,2:0,4:0,8:0,4:5,8:10"


def batching_in_process(
    cache: Path, image: Path, *, clients: int = 8, seconds: int = 8, rounds: int = 3
) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-c", BATCHING_SCRIPT, str(cache), str(image)]
        + [str(seconds), str(rounds), str(clients), str(CORES), BATCHING_CONFIGS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-1500:])
    return json.loads(result.stdout.strip().splitlines()[-1])


# Ceilings (a) and (d) under load: ``processes`` copies of the same loop,
# started together, each with ``threads`` inference threads. The served layout
# runs one model per core, one image at a time each (gunicorn.conf.py), and one
# single-threaded model per core gets more out of the cores than one model using
# them all, so a ceiling measured only with one process would flatter the
# served numbers.
PARALLEL_SCRIPT = """
import json, sys, time
import numpy as np
from app.inference import build_classifier
backend, threads, cache, work, path, seconds = sys.argv[1:7]
c = build_classifier("random", backend=backend, intra_op_threads=int(threads),
                     inter_op_threads=1, model_cache_dir=cache)
c.load()
if work == "model":
    x = np.random.default_rng(0).uniform(-120, 150, (1, 224, 224, 3)).astype("float32")
    step = lambda: c.runtime(x)
else:
    data = open(path, "rb").read()
    step = lambda: c.classify([c.decode(data)])
for _ in range(3):
    step()
print("ready", flush=True)
sys.stdin.readline()  # every process starts at the same moment
n, started = 0, time.perf_counter()
while time.perf_counter() - started < float(seconds):
    step()
    n += 1
print(json.dumps({"img_s": n / (time.perf_counter() - started)}), flush=True)
"""


def parallel_ceiling(
    backend: str,
    cache: Path,
    work: str,
    image: Path | None = None,
    *,
    processes: int = CORES,
    threads: int = 1,
    seconds: int = 10,
) -> float:
    """Images/s of ``work`` ("model": batch-1 inference, "pipeline": decode +
    preprocess + infer) summed over ``processes`` running at once; by default
    one single-threaded process per core."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", PARALLEL_SCRIPT, backend, str(threads)]
    command += [str(cache), work, str(image or ""), str(seconds)]
    children = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError(child.communicate(timeout=60)[1][-1500:])
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        total = 0.0
        for child in children:
            out, err = child.communicate(timeout=seconds + 120)
            if child.returncode != 0:
                raise RuntimeError(err[-1500:])
            total += json.loads(out.strip().splitlines()[-1])["img_s"]
        return total
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()


# Class activation maps: the served model with and without its second output
# (the last conv block), interleaved in one process so that the machine's drift
# hits both alike. "with" includes top-5 and the maps (numpy), as classify does.
CAM_SCRIPT = """
import json, sys, time
import numpy as np
from app.inference import OpenVINORuntime, parse_weights
from app.inference.cam import activation_maps
from app.inference.images import decode_image, preprocess_batch
cache, path, precision = sys.argv[1], sys.argv[2], sys.argv[5]
threads, rounds = int(sys.argv[3]), int(sys.argv[4])
spec = parse_weights("random")
runtimes = {
    name: OpenVINORuntime(spec, cache, threads=threads, precision=precision,
                          features=name == "with")
    for name in ("without", "with")
}
for runtime in runtimes.values():
    runtime.load()
photo = preprocess_batch([decode_image(open(path, "rb").read(), max_pixels=10**9)])
x = np.concatenate([photo] * 4)
def top5(p):
    return np.argsort(p, axis=1)[:, ::-1][:, :5]
def without(b):
    top5(runtimes["without"](x[:b]))
def with_maps(b):
    r = runtimes["with"]
    p, f = r.forward(x[:b])
    activation_maps(f, r.class_weights, top5(p))
_, features = runtimes["with"].forward(x)
ids = np.tile(np.arange(5), (4, 1))
def maps_only(b):
    activation_maps(features[:b], runtimes["with"].class_weights, ids[:b])
steps = {(name, b): (step, b) for b in (1, 4)
         for name, step in (("without", without), ("with", with_maps),
                            ("maps", maps_only))}
for step, b in steps.values():
    step(b)
times = {key: [] for key in steps}
for _ in range(rounds):
    for key, (step, b) in steps.items():
        t = time.perf_counter(); step(b); times[key].append(time.perf_counter() - t)
def median(values):
    return 1000 * sorted(values)[len(values) // 2]
ms = {f"{name}:{b}": median(t) for (name, b), t in times.items()}
# Paired: each round's with - without, so that drift between rounds cancels.
for b in (1, 4):
    pairs = zip(times[("with", b)], times[("without", b)])
    ms[f"extra:{b}"] = median([w - wo for w, wo in pairs])
print(json.dumps({"ran": runtimes["with"].variant, "ms": ms}))
"""


def cam_cost(cache: Path, image: Path, rounds: int = 100) -> dict:
    """Median ms per call with and without the maps' second output, batch 1
    and 4, at the served precision (OPENVINO_PRECISION, default auto)."""
    from app.inference import DEFAULT_PRECISION

    precision = os.environ.get("OPENVINO_PRECISION") or DEFAULT_PRECISION
    result = subprocess.run(
        [sys.executable, "-c", CAM_SCRIPT, str(cache), str(image)]
        + [str(CORES), str(rounds), precision],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-1500:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_cam_cost(cache: Path, image: Path) -> None:
    section(
        '(g) Class activation maps ("Why?"): extra time per image, served '
        f"precision, {CORES} threads, with and without the second output "
        "interleaved (median of 100 rounds)"
    )
    try:
        cost = cam_cost(cache, image)
    except RuntimeError as exc:  # informational: never stop the bench
        print(f"(the maps could not be measured: {exc})")
        return
    ms = cost["ms"]
    rows = []
    for b in (1, 4):
        without, with_maps, maps = ms[f"without:{b}"], ms[f"with:{b}"], ms[f"maps:{b}"]
        rows.append(
            [
                b,
                cost["ran"],
                f"{without:.1f}",
                f"{with_maps:.1f}",
                f"{ms[f'extra:{b}'] / b:+.2f}",
                f"{maps / b:.3f}",
            ]
        )
    headers = ["batch", "ran as", "without ms", "with maps ms"]
    headers += ["extra ms per image (median of paired rounds)"]
    headers += ["maps alone ms per image"]
    print(table(headers, rows))


# --------------------------------------------------------------------------
# (b) preprocessing, naive vs ours


def naive_preprocess(data: bytes):
    """What most tutorials do: full decode, orient, resize, float64 math."""
    import numpy as np
    from PIL import Image
    from PIL import ImageOps

    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    array = np.asarray(image.resize((224, 224), Image.Resampling.BILINEAR), "float64")
    return (array[..., ::-1] - [103.939, 116.779, 123.68])[None]


def our_preprocess(data: bytes):
    from app.inference.images import decode_image
    from app.inference.images import preprocess

    return preprocess(decode_image(data, max_pixels=40_000_000).pixels[None])


def median_ms(function, data: bytes, runs: int) -> float:
    function(data)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function(data)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


# --------------------------------------------------------------------------
# (c) the served app


@contextmanager
def bench_server(workdir: Path, cache: Path, index: int, **settings: str):
    """Gunicorn with gunicorn.conf.py, started the way the tests start it
    (devtools/server.py): random weights, a fresh SQLite database, every
    worker ready; the result cache off unless ``settings`` turn it on (bench
    measures the model, not the cache)."""
    from devtools.server import start_server

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
    from devtools.server import proc_status

    return [proc_status(pid)["VmRSS"] / 1024 for pid in pids]


def worker_load_seconds(log: str) -> list[float]:
    return [float(s) for s in re.findall(r"warmed in ([\d.]+) s", log)]


def server_cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


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
    locust.run(url, prefix, profile, env={"SNAPCLASS_IMAGES": str(images)})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    locust_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    server_cpu = server_cpu_seconds(server_pids) - server_before
    with open(f"{prefix}_stats.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == "/predict":
                return {
                    "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "rps": float(row["Requests/s"]),
                    "p50": float(row["50%"]),
                    "p95": float(row["95%"]),
                    "p99": float(row["99%"]),
                    "max": float(row["Max Response Time"]),
                    "avg": float(row["Average Response Time"]),
                    # CPU cores used on average, by the load generator and by
                    # the server's workers (both share this machine).
                    "locust_cores": locust_cpu / duration,
                    "server_cores": server_cpu / duration,
                }
    raise RuntimeError(f"no /predict row in {prefix}_stats.csv")


def sequential_latency(url: str, token: str, data: bytes, name: str, n: int = 20):
    """Median and max of n back-to-back /predict calls (low load)."""
    import requests

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
    return statistics.median(times), max(times), server[-1]


# --------------------------------------------------------------------------
# Report


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def section(title: str) -> None:
    print(f"\n## {title}\n", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--image",
        type=Path,
        default=None,
        help="photo to post (default: ../shared/images/bay-1365x1365.jpg "
        "or a generated 1365x1365 JPEG)",
    )
    parser.add_argument(
        "--duration",
        type=int,
        default=60,
        help="seconds per Locust profile (default 60)",
    )
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument(
        "--layouts",
        action="store_true",
        help="also measure saturation for several worker/thread layouts",
    )
    parser.add_argument(
        "--skip-served", action="store_true", help="only the in-process measurements"
    )
    parser.add_argument(
        "--only-cam",
        action="store_true",
        help="only (g): the class activation maps' extra time per image",
    )
    parser.add_argument(
        "--skip-precisions",
        action="store_true",
        help="no f32/bf16/int8 table (it quantizes the model once if needed)",
    )
    args = parser.parse_args()

    from app.inference import native_precision
    from app.inference.backends import openvino_available

    workdir = Path(tempfile.mkdtemp(prefix="snapclass-bench-"))
    cache = Path(os.environ.get("MODEL_CACHE_DIR") or ROOT / "instance" / "models")
    image_path = args.image or DEFAULT_IMAGE
    name, data = load_image(image_path, (1365, 1365))
    if not image_path.is_file():
        image_path = workdir / name
        image_path.write_bytes(data)

    machine = platform.processor() or platform.machine()
    print(
        f"# Snapclass benchmark\n\nMachine: {machine}, "
        f"{CORES} cores, Python {platform.python_version()}; image {name} "
        f"({len(data) / 1024:.0f} KiB); random weights."
    )

    if args.only_cam:
        print_cam_cost(cache, image_path)
        return 0

    section("(a) Raw model ceiling, in process, all cores")
    backends = ["tensorflow"] + (["openvino"] if openvino_available() else [])
    ceilings = {}
    rows = []
    for backend in backends:
        result = raw_ceiling(backend, CORES, cache)
        best_batch = max(result, key=lambda b: result[b]["img_s"])
        per_core = parallel_ceiling(backend, cache, "model")
        ceilings[backend] = max(result[1]["img_s"], per_core)
        rows.append(
            [
                backend,
                f"{result[1]['ms']:.1f}",
                f"{result[1]['img_s']:.1f}",
                f"{per_core:.1f}",
                best_batch,
                f"{result[best_batch]['img_s']:.1f}",
            ]
        )
    print(
        table(
            [
                "backend",
                "batch 1 ms",
                "batch 1 img/s",
                f"batch 1, {CORES} x 1 thread img/s",
                "best batch",
                "best img/s",
            ],
            rows,
        )
    )
    print(
        f"\n'{CORES} x 1 thread': one single-threaded model per core, all at once "
        "(like the served workers). The model ceiling below is the higher batch-1 "
        "figure."
    )
    best_backend = max(ceilings, key=ceilings.get)
    model_ceiling = ceilings[best_backend]
    if "openvino" in backends and not args.skip_precisions:
        section(
            f"(a2) OpenVINO precisions, in process, {CORES} threads, img/s "
            "(interleaved in one process)"
        )
        precisions = ["f32", "bf16"]
        if ensure_int8(cache, workdir):
            precisions.append("int8")
        try:
            ceilings_by_precision = precision_ceilings(cache, image_path, precisions)
        except RuntimeError as exc:  # informational: never stop the bench
            print(f"(precisions could not be measured: {exc})")
        else:
            f32_1 = ceilings_by_precision["f32"]["1"]
            print(
                table(
                    [
                        "precision",
                        "ran as",
                        "batch 1",
                        "batch 4",
                        "batch 8",
                        "batch 1 / f32 batch 1",
                        f"max softmax diff from f32 on {name}",
                    ],
                    [
                        [
                            precision,
                            r["ran"],
                            f"{r['1']:.1f}",
                            f"{r['4']:.1f}",
                            f"{r['8']:.1f}",
                            f"{r['1'] / f32_1:.2f}",
                            f"{r['max_diff']:.4f}",
                        ]
                        for precision, r in ceilings_by_precision.items()
                    ],
                )
            )
            print(
                f"\nauto (the default) runs {native_precision()} on this CPU. "
                "INT8: NNCF post-training quantization of the random weights."
            )

    section("(b) Decode + preprocess, median ms (naive: full decode, float64)")
    samples = [
        ("small", load_image(SHARED_IMAGES / "beach-275x183.jpg", (275, 183))),
        ("medium", (name, data)),
        ("12 MP", load_image(PHONE_IMAGE, (4032, 3024))),
    ]
    rows = []
    for label, (sample_name, sample) in samples:
        naive = median_ms(naive_preprocess, sample, 15)
        ours = median_ms(our_preprocess, sample, 15)
        rows.append(
            [
                f"{label} ({sample_name})",
                f"{naive:.1f}",
                f"{ours:.1f}",
                f"{naive / ours:.1f}x",
            ]
        )
    print(table(["image", "naive ms", "ours ms", "speed-up"], rows))

    section(
        f"(d) In-process pipeline ceiling ({best_backend}: decode + "
        "preprocess + infer of the same photo, no HTTP)"
    )
    pipeline_one = parallel_ceiling(
        best_backend, cache, "pipeline", image_path, processes=1, threads=CORES
    )
    pipeline_per_core = parallel_ceiling(best_backend, cache, "pipeline", image_path)
    print(
        table(
            ["layout", "images/s"],
            [
                [f"one process, {CORES} inference threads", f"{pipeline_one:.1f}"],
                [
                    f"{CORES} processes x 1 thread (one per core)",
                    f"{pipeline_per_core:.1f}",
                ],
            ],
        )
    )
    pipeline = max(pipeline_one, pipeline_per_core)

    if "openvino" in backends:
        section(
            "(f) Batching across requests, in process: one worker's classifier, "
            f"{CORES} inference threads, 8 client threads decoding and classifying "
            "the photo, configurations interleaved (3 rounds of 8 s)"
        )
        rows = []
        batching = batching_in_process(cache, image_path)
        unbatched = batching[0]["img_s"]
        for r in batching:
            rows.append(
                [
                    f"{r['size']} / {r['delay']} ms",
                    r["precision"],
                    f"{r['img_s']:.1f}",
                    f"{r['img_s'] / unbatched:.2f}",
                    f"{r['p50']:.0f}",
                    f"{r['p95']:.0f}",
                    f"{r['batch']:.2f}",
                ]
            )
        print(
            table(
                [
                    "BATCH_MAX_SIZE / BATCH_MAX_DELAY_MS",
                    "precision",
                    "img/s",
                    "vs size 1",
                    "p50 ms",
                    "p95 ms",
                    "mean batch",
                ],
                rows,
            )
        )

    if "openvino" in backends:
        print_cam_cost(cache, image_path)

    if args.skip_served:
        return 0

    # The defaults against what Snapclass served before issue 15, in one run.
    layouts = [
        ("defaults", {}, True),
        (
            "before: OPENVINO_PRECISION=f32 BATCH_MAX_SIZE=1",
            {"OPENVINO_PRECISION": "f32", "BATCH_MAX_SIZE": "1"},
            True,
        ),
    ]
    from app.inference import find_quantized
    from app.inference import parse_weights

    if find_quantized(cache, parse_weights("random")) is not None:
        layouts.append(
            ("OPENVINO_PRECISION=int8", {"OPENVINO_PRECISION": "int8"}, True)
        )
    if args.layouts:
        layouts += [
            (f"{workers} worker(s) x {threads} threads, intra {intra}", settings, False)
            for workers, threads, intra in (
                (2, 16, 1),
                (2, 16, 2),
                (1, 16, 2),
                (2, 2, 1),
                (3, 16, 1),
            )
            for settings in [
                {
                    "WEB_CONCURRENCY": str(workers),
                    "GUNICORN_THREADS": str(threads),
                    "INTRA_OP_THREADS": str(intra),
                }
            ]
        ]
    profile_rows, layout_rows, saturations = [], [], {}
    for index, (label, settings, profiles) in enumerate(layouts):
        with bench_server(workdir, cache, index, **settings) as server:
            token = server.token
            pids = server.workers()
            if profiles:
                seed = run_locust(
                    server.url,
                    image_path,
                    workdir,
                    users=args.users,
                    spawn=2,
                    duration=args.duration,
                    wait="between:1:5",
                    name="seed",
                    server_pids=pids,
                )
                profile_rows.append([f"{label}: seed (wait 1-5 s)", seed])
            saturation = run_locust(
                server.url,
                image_path,
                workdir,
                users=args.users,
                spawn=args.users,
                duration=args.duration,
                wait="none",
                name=f"sat-{index}",
                server_pids=pids,
            )
            saturations[label] = saturation["rps"]
            if profiles:
                profile_rows.append([f"{label}: saturation (no wait)", saturation])
            if index == 0:
                phone_name, phone = load_image(PHONE_IMAGE, (4032, 3024))
                phone_median, phone_max, phone_timing = sequential_latency(
                    server.url, token, phone, phone_name
                )
                medium_median, medium_max, medium_timing = sequential_latency(
                    server.url, token, data, name
                )
                rss = worker_rss_mb(pids)
                loads = worker_load_seconds(server.log())
                ready_s = server.started_s
            low_load, _, _ = sequential_latency(server.url, token, data, name)
            layout_rows.append(
                [
                    label,
                    f"{saturation['rps']:.1f}",
                    f"{saturation['p50']:.0f}",
                    f"{saturation['p95']:.0f}",
                    saturation["failures"],
                    f"{low_load:.0f}",
                ]
            )

    section(
        f"(c) Served app: Gunicorn + Locust, {args.users} users, "
        f"{args.duration} s per profile, POST /predict, result cache off"
    )
    print(
        table(
            [
                "profile",
                "requests",
                "failures",
                "req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "server CPU (cores)",
                "Locust CPU (cores)",
            ],
            [
                [
                    label,
                    r["requests"],
                    r["failures"],
                    f"{r['rps']:.2f}",
                    f"{r['p50']:.0f}",
                    f"{r['p95']:.0f}",
                    f"{r['p99']:.0f}",
                    f"{r['max']:.0f}",
                    f"{r['server_cores']:.2f}",
                    f"{r['locust_cores']:.2f}",
                ]
                for label, r in profile_rows
            ],
        )
    )
    print(
        f"\nSequential /predict, median of 20 at low load: {name} "
        f"{medium_median:.1f} ms (max {medium_max:.1f}); {phone_name} "
        f"{phone_median:.1f} ms (max {phone_max:.1f})."
    )
    print(f"Server-Timing, last 12 MP request: {phone_timing}")
    print(f"Server-Timing, last {name} request: {medium_timing}")

    # This machine's speed drifts; measuring the ceiling again after the served
    # runs and keeping the higher figure keeps a slow moment from flattering us.
    pipeline_after = parallel_ceiling(best_backend, cache, "pipeline", image_path)
    pipeline = max(pipeline, pipeline_after)

    section("Ratios")
    served = profile_rows[1][1]["rps"]
    before = saturations[layouts[1][0]]
    # Where the ratio to the pipeline goes: HTTP, auth, database, the web stack.
    served_ms = profile_rows[1][1]["server_cores"] / served * 1000
    pipeline_ms = CORES * 1000 / pipeline
    extra = served_ms - pipeline_ms
    print(
        table(
            ["measure", "value"],
            [
                [
                    f"model ceiling ({best_backend}, batch 1, best layout, img/s)",
                    f"{model_ceiling:.1f}",
                ],
                [
                    "pipeline ceiling (img/s, highest of before and after: "
                    f"{pipeline_after:.1f} after)",
                    f"{pipeline:.1f}",
                ],
                ["served saturation, defaults (req/s)", f"{served:.1f}"],
                [
                    "defaults / before (f32, BATCH_MAX_SIZE=1), saturation",
                    f"{served / before:.2f}",
                ],
                *[
                    [f"{label} / before, saturation", f"{rps / before:.2f}"]
                    for label, rps in saturations.items()
                    if "int8" in label
                ],
                ["served / model ceiling", f"{served / model_ceiling:.2f}"],
                ["served / pipeline ceiling", f"{served / pipeline:.2f}"],
                ["server CPU per request at saturation (core-ms)", f"{served_ms:.1f}"],
                [
                    f"pipeline CPU per image (core-ms: {CORES} cores at the ceiling)",
                    f"{pipeline_ms:.1f}",
                ],
                ["served beyond the pipeline (core-ms per request)", f"{extra:.1f}"],
            ],
        )
    )

    section("(e) Workers")
    print(
        f"Worker RSS after the run: {', '.join(f'{r:.0f} MB' for r in rss)}; "
        f"model load + warm-up per worker: "
        f"{', '.join(f'{s:.2f} s' for s in loads)}; server ready after "
        f"{ready_s:.1f} s (converted model cached)."
    )

    if args.layouts:
        section("Worker and thread layouts (saturation)")
        print(
            table(
                [
                    "layout",
                    "saturation req/s",
                    "p50 ms",
                    "p95 ms",
                    "failures",
                    "one request at a time, median ms",
                ],
                layout_rows,
            )
        )
    print(f"\n(raw files: {workdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
