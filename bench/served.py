"""Served: (c), the ratios, (e) and the layouts, on a real Gunicorn under Locust.

Each layout is served in turn by a fresh server (``bench.live``); the sections
print what it measured against the in-process ceilings.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

from bench import live
from bench.context import PHONE_IMAGE
from bench.context import Bench
from bench.context import load_image
from bench.context import section
from bench.in_process import Ceiling
from bench.program import CORES
from devtools.server import LiveServer
from devtools.tables import table


@dataclass
class Layout:
    """One way to serve the app: its settings, and whether (c) shows its two
    Locust profiles (seed and saturation) or only the ratios use it."""

    label: str
    settings: dict[str, str] = field(default_factory=dict)
    profiles: bool = True


def served_layouts(int8: bool, more: bool) -> list[Layout]:
    """The defaults first, then what Snapclass served before issue 15 (the
    ratios divide by these two), INT8 when a model exists, and with ``more``
    (``--layouts``) several worker and thread layouts."""
    layouts = [
        Layout("defaults"),
        Layout(
            "before: OPENVINO_PRECISION=f32 BATCH_MAX_SIZE=1",
            {"OPENVINO_PRECISION": "f32", "BATCH_MAX_SIZE": "1"},
        ),
    ]
    if int8:
        layouts.append(
            Layout("OPENVINO_PRECISION=int8", {"OPENVINO_PRECISION": "int8"})
        )
    if more:
        layouts += [
            Layout(
                f"{workers} worker(s) x {threads} threads, intra {intra}",
                {
                    "WEB_CONCURRENCY": str(workers),
                    "GUNICORN_THREADS": str(threads),
                    "INTRA_OP_THREADS": str(intra),
                },
                profiles=False,
            )
            for workers, threads, intra in (
                (2, 16, 1),
                (2, 16, 2),
                (1, 16, 2),
                (2, 2, 1),
                (3, 16, 1),
            )
        ]
    return layouts


def layouts_to_serve(bench: Bench) -> list[Layout]:
    """The layouts to serve: the defaults, as before issue 15, INT8 when a
    model exists, and more with --layouts."""
    from app.inference import find_quantized
    from app.inference import parse_weights

    int8 = find_quantized(bench.cache, parse_weights("random")) is not None
    return served_layouts(int8, more=bench.args.layouts)


@dataclass
class ServedRun:
    """One layout's Locust profiles and its latency one request at a time."""

    layout: Layout
    saturation: dict
    low_load_ms: float
    seed: dict | None = None
    rss_mb: list[float] = field(default_factory=list)  # workers, after the runs


@dataclass
class Defaults:
    """What (c) and (e) report of the first layout, the defaults, only."""

    medium: live.Latency
    phone_name: str
    phone: live.Latency
    rss_mb: list[float]
    load_s: list[float]
    ready_s: float


def serve(bench: Bench, layouts: list[Layout]) -> tuple[list[ServedRun], Defaults]:
    """Each layout on a fresh Gunicorn in turn: Locust's seed profile (where
    (c) shows it) and saturation, then photos one at a time; of the first
    layout, the defaults, also a 12 MP photo and the workers."""
    runs, defaults = [], None
    for index, layout in enumerate(layouts):
        with live.bench_server(
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
            low_load = live.sequential_latency(
                server.url, server.token, bench.data, bench.name
            )
            rss = live.worker_rss_mb(server.workers())
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
    return live.run_locust(
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
        phone=live.sequential_latency(server.url, server.token, phone, phone_name),
        medium=live.sequential_latency(
            server.url, server.token, bench.data, bench.name
        ),
        rss_mb=live.worker_rss_mb(pids),
        load_s=live.worker_load_seconds(server.log()),
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
