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
With ONEDNN_MAX_CPU_ISA=AVX2 in the environment it measures oneDNN's AVX2
kernels, where `auto` is f32: a stand-in for a CPU without AVX-512.
Everything runs on this machine; the server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from bench import program
from bench import served
from bench.batching import batching_in_process
from bench.cam import cam_cost
from bench.parallel import parallel_ceiling
from bench.precisions import ensure_int8
from bench.precisions import precision_ceilings
from bench.preprocessing import median_ms
from bench.preprocessing import naive_preprocess
from bench.preprocessing import our_preprocess
from bench.program import CORES
from bench.raw import raw_ceiling
from devtools.photos import photo_jpeg
from devtools.server import LiveServer
from devtools.tables import table

SHARED_IMAGES = program.ROOT.parent / "shared" / "images"
DEFAULT_IMAGE = SHARED_IMAGES / "bay-1365x1365.jpg"
PHONE_IMAGE = SHARED_IMAGES / "phone-4032x3024-exif-rotated.jpg"


def main(argv: list[str] | None = None) -> int:
    """Measure and print the report; this is its table of contents."""
    args = parse_args(argv)
    bench = prepare(args)
    print_header(bench)
    if args.only_cam:
        report_cam_cost(bench)  # (g)
        return 0
    model = report_model_ceiling(bench)  # (a)
    if bench.openvino and not args.skip_precisions:
        report_precisions(bench)  # (a2)
    report_preprocessing(bench)  # (b)
    pipeline = report_pipeline_ceiling(bench, model.backend)  # (d)
    if bench.openvino:
        report_batching(bench)  # (f)
        report_cam_cost(bench)  # (g)
    if args.skip_served:
        return 0
    runs, defaults = serve(bench, layouts_to_serve(bench))
    report_served(bench, runs, defaults)  # (c)
    # This machine's speed drifts; measuring the ceiling again after the served
    # runs and keeping the higher figure keeps a slow moment from flattering us.
    pipeline_after = parallel_ceiling(
        model.backend, bench.cache, "pipeline", bench.image
    )
    report_ratios(model, max(pipeline, pipeline_after), pipeline_after, runs)
    report_workers(defaults)  # (e)
    if args.layouts:
        report_layouts(runs)
    print(f"\n(raw files: {bench.workdir})")
    return 0


# --------------------------------------------------------------------------
# The run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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
    return parser.parse_args(argv)


@dataclass
class Bench:
    """What every step reads: the options, the folders and the photo."""

    args: argparse.Namespace
    workdir: Path  # raw files: Locust's CSVs, the servers' logs
    cache: Path  # converted models
    image: Path  # the photo, as a file
    name: str
    data: bytes
    backends: list[str]

    @property
    def openvino(self) -> bool:
        return "openvino" in self.backends


def load_image(path: Path | None, fallback: tuple[int, int]) -> tuple[str, bytes]:
    """The photo at ``path``, or a generated one of size ``fallback``."""
    if path and path.is_file():
        return path.name, path.read_bytes()
    width, height = fallback
    return f"generated-{width}x{height}.jpg", photo_jpeg(fallback)


def prepare(args: argparse.Namespace) -> Bench:
    """A folder for the raw files, the model cache and the photo on disk."""
    from app.inference.backends import openvino_available

    workdir = Path(tempfile.mkdtemp(prefix="snapclass-bench-"))
    image = args.image or DEFAULT_IMAGE
    name, data = load_image(image, (1365, 1365))
    if not image.is_file():
        image = workdir / name
        image.write_bytes(data)
    backends = ["tensorflow"] + (["openvino"] if openvino_available() else [])
    return Bench(args, workdir, program.model_cache(), image, name, data, backends)


def section(title: str) -> None:
    print(f"\n## {title}\n", flush=True)


def print_header(bench: Bench) -> None:
    machine = platform.processor() or platform.machine()
    print(
        f"# Snapclass benchmark\n\nMachine: {machine}, "
        f"{CORES} cores, Python {platform.python_version()}; image {bench.name} "
        f"({len(bench.data) / 1024:.0f} KiB); random weights."
    )
    from app.inference.openvino_runtime import onednn_isa_cap

    cap = onednn_isa_cap()
    if cap:
        print(
            f"\noneDNN is capped at {cap} (ONEDNN_MAX_CPU_ISA) in every process "
            "of this run: its kernels are those of a CPU with that instruction "
            "set, on this CPU's cores and caches."
        )


# --------------------------------------------------------------------------
# In process: (a), (a2), (b), (d), (f), (g)


@dataclass
class Ceiling:
    """The model ceiling: the best backend's batch-1 images/s."""

    backend: str
    img_s: float


def report_model_ceiling(bench: Bench) -> Ceiling:
    """(a) Each backend alone at batch 1 and its best batch, all cores in one
    process and one single-threaded process per core."""
    section("(a) Raw model ceiling, in process, all cores")
    ceilings = {}
    rows = []
    for backend in bench.backends:
        result = raw_ceiling(backend, CORES, bench.cache)
        best_batch = max(result, key=lambda batch: result[batch]["img_s"])
        per_core = parallel_ceiling(backend, bench.cache, "model")
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
    headers = ["backend", "batch 1 ms", "batch 1 img/s"]
    headers += [f"batch 1, {CORES} x 1 thread img/s", "best batch", "best img/s"]
    print(table(headers, rows))
    print(
        f"\n'{CORES} x 1 thread': one single-threaded model per core, all at once "
        "(like the served workers). The model ceiling below is the higher batch-1 "
        "figure."
    )
    best = max(ceilings, key=ceilings.get)
    return Ceiling(best, ceilings[best])


def calibration_photos() -> list[bytes]:
    """The shared photos, or generated ones where they are missing."""
    photos = [path.read_bytes() for path in sorted(SHARED_IMAGES.glob("*.jp*g"))]
    return photos or [photo_jpeg((640 + 32 * i, 480)) for i in range(8)]


def report_precisions(bench: Bench) -> None:
    """(a2) OpenVINO f32, bf16 and INT8 (quantized once if needed), interleaved."""
    from app.inference import native_precision

    section(
        f"(a2) OpenVINO precisions, in process, {CORES} threads, img/s "
        "(interleaved in one process)"
    )
    # Below a oneDNN ISA cap (ONEDNN_MAX_CPU_ISA=AVX2) bf16 does not compile.
    precisions = ["f32"] + (["bf16"] if native_precision() == "bf16" else [])
    if ensure_int8(bench.cache, calibration_photos()):
        precisions.append("int8")
    try:
        ceilings = precision_ceilings(bench.cache, bench.image, precisions)
    except RuntimeError as exc:  # informational: never stop the bench
        print(f"(precisions could not be measured: {exc})")
        return
    f32_1 = ceilings["f32"]["1"]
    rows = [
        [
            precision,
            r["ran"],
            f"{r['1']:.1f}",
            f"{r['4']:.1f}",
            f"{r['8']:.1f}",
            f"{r['1'] / f32_1:.2f}",
            f"{r['max_diff']:.4f}",
        ]
        for precision, r in ceilings.items()
    ]
    headers = ["precision", "ran as", "batch 1", "batch 4", "batch 8"]
    headers += ["batch 1 / f32 batch 1", f"max softmax diff from f32 on {bench.name}"]
    print(table(headers, rows))
    print(
        f"\nauto (the default) runs {native_precision()} on this CPU. "
        "INT8: NNCF post-training quantization of the random weights."
    )


def report_preprocessing(bench: Bench) -> None:
    """(b) Decode + preprocess of a small, a medium and a 12 MP photo."""
    section("(b) Decode + preprocess, median ms (naive: full decode, float64)")
    samples = [
        ("small", load_image(SHARED_IMAGES / "beach-275x183.jpg", (275, 183))),
        ("medium", (bench.name, bench.data)),
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


def report_pipeline_ceiling(bench: Bench, backend: str) -> float:
    """(d) Decode + preprocess + infer of the photo, no HTTP: one process on
    all cores and one process per core; returns the higher."""
    section(
        f"(d) In-process pipeline ceiling ({backend}: decode + "
        "preprocess + infer of the same photo, no HTTP)"
    )
    one = parallel_ceiling(
        backend, bench.cache, "pipeline", bench.image, processes=1, threads=CORES
    )
    per_core = parallel_ceiling(backend, bench.cache, "pipeline", bench.image)
    rows = [
        [f"one process, {CORES} inference threads", f"{one:.1f}"],
        [f"{CORES} processes x 1 thread (one per core)", f"{per_core:.1f}"],
    ]
    print(table(["layout", "images/s"], rows))
    return max(one, per_core)


def report_batching(bench: Bench) -> None:
    """(f) Batching across requests in one worker's classifier."""
    section(
        "(f) Batching across requests, in process: one worker's classifier, "
        f"{CORES} inference threads, 8 client threads decoding and classifying "
        "the photo, configurations interleaved (3 rounds of 8 s)"
    )
    batching = batching_in_process(bench.cache, bench.image)
    unbatched = batching[0]["img_s"]
    rows = [
        [
            f"{r['size']} / {r['delay']} ms",
            r["precision"],
            f"{r['img_s']:.1f}",
            f"{r['img_s'] / unbatched:.2f}",
            f"{r['p50']:.0f}",
            f"{r['p95']:.0f}",
            f"{r['batch']:.2f}",
        ]
        for r in batching
    ]
    headers = ["BATCH_MAX_SIZE / BATCH_MAX_DELAY_MS", "precision", "img/s"]
    headers += ["vs size 1", "p50 ms", "p95 ms", "mean batch"]
    print(table(headers, rows))


def report_cam_cost(bench: Bench) -> None:
    """(g) The class activation maps' extra time per image."""
    section(
        '(g) Class activation maps ("Why?"): extra time per image, served '
        f"precision, {CORES} threads, with and without the second output "
        "interleaved (median of 100 rounds)"
    )
    try:
        cost = cam_cost(bench.cache, bench.image)
    except RuntimeError as exc:  # informational: never stop the bench
        print(f"(the maps could not be measured: {exc})")
        return
    ms = cost["ms"]
    rows = [
        [
            b,
            cost["ran"],
            f"{ms[f'without:{b}']:.1f}",
            f"{ms[f'with:{b}']:.1f}",
            f"{ms[f'extra:{b}'] / b:+.2f}",
            f"{ms[f'maps:{b}'] / b:.3f}",
        ]
        for b in (1, 4)
    ]
    headers = ["batch", "ran as", "without ms", "with maps ms"]
    headers += ["extra ms per image (median of paired rounds)"]
    headers += ["maps alone ms per image"]
    print(table(headers, rows))


# --------------------------------------------------------------------------
# Served: (c), ratios, (e), layouts


def layouts_to_serve(bench: Bench) -> list[served.Layout]:
    """The layouts to serve: the defaults, as before issue 15, INT8 when a
    model exists, and more with --layouts."""
    from app.inference import find_quantized
    from app.inference import parse_weights

    int8 = find_quantized(bench.cache, parse_weights("random")) is not None
    return served.served_layouts(int8, more=bench.args.layouts)


@dataclass
class ServedRun:
    """One layout's Locust profiles and its latency one request at a time."""

    layout: served.Layout
    saturation: dict
    low_load_ms: float
    seed: dict | None = None
    rss_mb: list[float] = field(default_factory=list)  # workers, after the runs


@dataclass
class Defaults:
    """What (c) and (e) report of the first layout, the defaults, only."""

    medium: served.Latency
    phone_name: str
    phone: served.Latency
    rss_mb: list[float]
    load_s: list[float]
    ready_s: float


def serve(
    bench: Bench, layouts: list[served.Layout]
) -> tuple[list[ServedRun], Defaults]:
    """Each layout on a fresh Gunicorn in turn: Locust's seed profile (where
    (c) shows it) and saturation, then photos one at a time; of the first
    layout, the defaults, also a 12 MP photo and the workers."""
    runs, defaults = [], None
    for index, layout in enumerate(layouts):
        with served.bench_server(
            bench.workdir, bench.cache, index, **layout.settings
        ) as server:
            pids = server.workers()
            seed = None
            if layout.profiles:
                seed = locust_profile(
                    bench, server, pids, f"seed-{index}", spawn=2, wait="between:1:5"
                )
            saturation = locust_profile(
                bench, server, pids, f"sat-{index}", spawn=bench.args.users, wait="none"
            )
            if index == 0:
                defaults = measure_defaults(bench, server, pids)
            low_load = served.sequential_latency(
                server.url, server.token, bench.data, bench.name
            )
            rss = served.worker_rss_mb(server.workers())
            runs.append(ServedRun(layout, saturation, low_load.median_ms, seed, rss))
    return runs, defaults


def locust_profile(
    bench: Bench,
    server: LiveServer,
    pids: list[int],
    name: str,
    *,
    spawn: float,
    wait: str,
) -> dict:
    """Locust's /predict figures against ``server`` with the run's users and
    duration; ``wait`` is the think time (``between:1:5`` or ``none``)."""
    return served.run_locust(
        server.url,
        bench.image,
        bench.workdir,
        users=bench.args.users,
        spawn=spawn,
        duration=bench.args.duration,
        wait=wait,
        name=name,
        server_pids=pids,
    )


def measure_defaults(bench: Bench, server: LiveServer, pids: list[int]) -> Defaults:
    """A 12 MP photo and the medium one at low load, and the workers' memory
    and start-up, on the server with the defaults."""
    phone_name, phone = load_image(PHONE_IMAGE, (4032, 3024))
    return Defaults(
        phone_name=phone_name,
        phone=served.sequential_latency(server.url, server.token, phone, phone_name),
        medium=served.sequential_latency(
            server.url, server.token, bench.data, bench.name
        ),
        rss_mb=served.worker_rss_mb(pids),
        load_s=served.worker_load_seconds(server.log()),
        ready_s=server.started_s,
    )


def report_served(bench: Bench, runs: list[ServedRun], defaults: Defaults) -> None:
    """(c) Locust's figures of each profile, and one request at a time."""
    args = bench.args
    section(
        f"(c) Served app: Gunicorn + Locust, {args.users} users, "
        f"{args.duration} s per profile, POST /predict, result cache off"
    )
    profiles = []
    for run in runs:
        if run.layout.profiles:
            profiles.append((f"{run.layout.label}: seed (wait 1-5 s)", run.seed))
            profiles.append(
                (f"{run.layout.label}: saturation (no wait)", run.saturation)
            )
    rows = [
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
        for label, r in profiles
    ]
    headers = ["profile", "requests", "failures", "req/s", "p50 ms", "p95 ms"]
    headers += ["p99 ms", "max ms", "server CPU (cores)", "Locust CPU (cores)"]
    print(table(headers, rows))
    medium, phone = defaults.medium, defaults.phone
    print(
        f"\nSequential /predict, median of 20 at low load: {bench.name} "
        f"{medium.median_ms:.1f} ms (max {medium.max_ms:.1f}); {defaults.phone_name} "
        f"{phone.median_ms:.1f} ms (max {phone.max_ms:.1f})."
    )
    print(f"Server-Timing, last 12 MP request: {phone.server_timing}")
    print(f"Server-Timing, last {bench.name} request: {medium.server_timing}")
    for run in runs:
        if run.layout.profiles and run.rss_mb:
            rss = " / ".join(f"{mb:.0f}" for mb in run.rss_mb)
            print(f"Worker RSS after {run.layout.label}: {rss} MB.")


def report_ratios(
    model: Ceiling, pipeline: float, pipeline_after: float, runs: list[ServedRun]
) -> None:
    """The served app against the ceilings, and where its CPU goes beyond
    the pipeline (HTTP, auth, database, the web stack)."""
    section("Ratios")
    saturation, before = runs[0].saturation, runs[1].saturation["rps"]
    served_rps = saturation["rps"]
    served_ms = saturation["server_cores"] / served_rps * 1000
    pipeline_ms = CORES * 1000 / pipeline
    rows = [
        [
            f"model ceiling ({model.backend}, batch 1, best layout, img/s)",
            f"{model.img_s:.1f}",
        ],
        [
            "pipeline ceiling (img/s, highest of before and after: "
            f"{pipeline_after:.1f} after)",
            f"{pipeline:.1f}",
        ],
        ["served saturation, defaults (req/s)", f"{served_rps:.1f}"],
        [
            "defaults / before (f32, BATCH_MAX_SIZE=1), saturation",
            f"{served_rps / before:.2f}",
        ],
        *[
            [
                f"{run.layout.label} / before, saturation",
                f"{run.saturation['rps'] / before:.2f}",
            ]
            for run in runs
            if "int8" in run.layout.label
        ],
        ["served / model ceiling", f"{served_rps / model.img_s:.2f}"],
        ["served / pipeline ceiling", f"{served_rps / pipeline:.2f}"],
        ["server CPU per request at saturation (core-ms)", f"{served_ms:.1f}"],
        [
            f"pipeline CPU per image (core-ms: {CORES} cores at the ceiling)",
            f"{pipeline_ms:.1f}",
        ],
        [
            "served beyond the pipeline (core-ms per request)",
            f"{served_ms - pipeline_ms:.1f}",
        ],
    ]
    print(table(["measure", "value"], rows))


def report_workers(defaults: Defaults) -> None:
    """(e) The workers' memory and start-up, with the defaults."""
    section("(e) Workers")
    rss = ", ".join(f"{r:.0f} MB" for r in defaults.rss_mb)
    loads = ", ".join(f"{s:.2f} s" for s in defaults.load_s)
    print(
        f"Worker RSS after the run: {rss}; model load + warm-up per worker: "
        f"{loads}; server ready after {defaults.ready_s:.1f} s (converted model "
        "cached)."
    )


def report_layouts(runs: list[ServedRun]) -> None:
    """Saturation of every layout served, --layouts ones included."""
    section("Worker and thread layouts (saturation)")
    rows = [
        [
            run.layout.label,
            f"{run.saturation['rps']:.1f}",
            f"{run.saturation['p50']:.0f}",
            f"{run.saturation['p95']:.0f}",
            run.saturation["failures"],
            f"{run.low_load_ms:.0f}",
        ]
        for run in runs
    ]
    headers = ["layout", "saturation req/s", "p50 ms", "p95 ms", "failures"]
    headers += ["one request at a time, median ms"]
    print(table(headers, rows))


if __name__ == "__main__":
    sys.exit(main())
