"""The report's analysis and recommendations, written from measured facts.

Each recommendation is a rule that looks at the numbers and either says
something specific about this run or stays silent, so a report never carries
advice its data does not support.
"""

from __future__ import annotations

from collections.abc import Callable

from .analysis import Breakdown
from .analysis import Facts
from .analysis import ResourceUsage
from .analysis import best_step

# Thresholds of the rules, named so the tests and the docs can refer to them.
CACHE_HIT_RATE = 0.2  # above this the run measures the cache, not the model
INFERENCE_SHARE = 0.6  # of server time
DECODE_SHARE = 0.25
DB_SHARE = 0.2
OUTSIDE_SHARE = 0.4  # of the client's time: queueing outside the app
CEILING_CLOSE, CEILING_FAR = 0.8, 0.5
LOCUST_CORES = 0.3  # load generator CPU worth mentioning on the same machine
CPU_BOUND, CPU_IDLE = 0.85, 0.6  # server CPU as a share of the cores
THINK_TIME_BOUND = 0.8  # profile rate as a share of its think-time cap
LONG_TAIL = 3.0  # p99 / p50
MEMORY_FULL = 0.7  # server RSS as a share of the machine's memory
OTHER_LOAD = 0.25  # cores used by other processes, as a share of the cores
INFERENCE_GROWTH = 2.0  # saturation inference time / profile inference time


def pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def rate(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


# --------------------------------------------------------------------------
# Recommendations


def _failures(f: Facts) -> str | None:
    if not f.failures:
        return None
    return (
        f"{pct(f.failure_rate)} of requests failed ({f.failures}; most often "
        f"{f.top_error}). Fix these first: latency measured on a failing run "
        "is misleading."
    )


def _cache(f: Facts) -> str | None:
    hit_rate = f.busiest.cache_hit_rate if f.busiest else None
    if hit_rate is None or hit_rate <= CACHE_HIT_RATE:
        return None
    return (
        f"{pct(hit_rate)} of the posted images were answered from the result "
        "cache, so these numbers measure the cache, not the model. Run without "
        "--repeat-images (unique bytes per post) to measure inference."
    )


def _inference(f: Facts) -> str | None:
    b = f.busiest
    if not b or b.share_of_server("inference") < INFERENCE_SHARE:
        return None
    share = b.share_of_server("inference")
    faster = (
        "switch to INFERENCE_BACKEND=openvino (or a GPU)"
        if f.backend == "tensorflow"
        else "use a faster backend or a smaller model (a GPU, int8 weights)"
    )
    if f.workers and f.cores and f.workers < f.cores:
        scale = f"add workers up to one per core ({f.workers} on {f.cores} cores)"
    elif f.workers and f.cores:
        scale = (
            f"the {f.workers} workers already use the {f.cores} cores, so add "
            "cores or instances"
        )
    else:
        scale = "add workers (one per core), cores or instances"
    return (
        f"Inference is {pct(share)} of server time ({ms(b.stages_ms['inference'])}"
        f" of {ms(b.server_ms)} per request): capacity is inference throughput. "
        f"To serve more, {scale}, or {faster}; tuning the rest of the app can "
        f"win at most {pct(1 - share)}."
    )


def _inference_contention(f: Facts) -> str | None:
    low, high = f.breakdown, _capacity_breakdown(f)
    if not (low and high and low.stages_ms["inference"]):
        return None
    growth = high.stages_ms["inference"] / low.stages_ms["inference"]
    if growth < INFERENCE_GROWTH:
        return None
    users = f.capacity.users
    per_worker = (
        f" (up to {users / f.workers:g} concurrent requests per worker, and "
        f"{f.threads} threads let them all in)"
        if f.workers and f.threads and f.threads * f.workers >= users
        else ""
    )
    return (
        f"Under saturation one inference took {ms(high.stages_ms['inference'])}, "
        f"{growth:.1f}x the {ms(low.stages_ms['inference'])} of the profile: "
        f"requests share a worker's inference cores{per_worker}, so most of "
        "that time is waiting, not computing. The queue sits inside the app; "
        "latency under load falls only with fewer concurrent requests per core "
        "(more cores or instances, or admission control), not with more threads."
    )


def _decode(f: Facts) -> str | None:
    b = f.busiest
    if not b or b.share_of_server("decode") < DECODE_SHARE:
        return None
    return (
        f"Decoding the upload is {pct(b.share_of_server('decode'))} of server "
        f"time ({ms(b.stages_ms['decode'])} per image): the images are larger "
        "than the 224 px the model needs; have clients resize before upload "
        "(e.g. to 1024 px) to cut both decode time and upload size."
    )


def _database(f: Facts) -> str | None:
    b = f.busiest
    if not b or b.share_of_server("db") < DB_SHARE:
        return None
    hint = (
        "SQLite serialises writers across workers; use PostgreSQL (DATABASE_URL)"
        if f.database == "sqlite"
        else "check the database's latency and connection pool"
    )
    return (
        f"Storing the result takes {pct(b.share_of_server('db'))} of server "
        f"time ({ms(b.stages_ms['db'])} per request): {hint}."
    )


def _queueing(f: Facts) -> str | None:
    for label, b in (
        ("the profile", f.breakdown),
        ("saturation", _capacity_breakdown(f)),
    ):
        if b and b.share_of_client(b.outside_ms) >= OUTSIDE_SHARE:
            return (
                f"Under {label}, {pct(b.share_of_client(b.outside_ms))} of a "
                f"/predict request's time ({ms(b.outside_ms)} of "
                f"{ms(b.client_ms)}) passed outside the app, waiting for a free "
                "Gunicorn thread: the workers were all busy. More threads only "
                "lengthen that queue; more cores, workers on more machines or "
                "a faster model shorten it."
            )
    return None


def _capacity_breakdown(f: Facts) -> Breakdown | None:
    return f.capacity.breakdown if f.capacity else None


def _ceiling(f: Facts) -> str | None:
    ratio = f.ceiling_ratio
    if ratio is None or CEILING_FAR <= ratio < CEILING_CLOSE:
        return None
    served = f.capacity.predict_rps
    if ratio >= CEILING_CLOSE:
        above = (
            " (above 100%: single-threaded workers in parallel beat one "
            "process using every core)"
            if ratio > 1
            else ""
        )
        return (
            f"The server reached {pct(ratio)} of the raw model ceiling "
            f"({rate(served)} of {rate(f.ceiling_img_s)} images/s){above}: it "
            "is about as fast as the network on this machine. More throughput "
            "needs more cores or machines or a faster backend, not app changes."
        )
    return (
        f"The server reached only {pct(ratio)} of the raw model ceiling "
        f"({rate(served)} of {rate(f.ceiling_img_s)} images/s): the rest goes "
        "to HTTP, decoding, the database and, on this machine, Locust; the "
        "breakdown above shows which, and a layout with fewer threads per "
        "worker (less contention) may serve more."
    )


def _load_generator(f: Facts) -> str | None:
    usage = f.capacity.resources if f.capacity else f.resources
    if not (usage and f.cores) or usage.locust_cpu_avg < LOCUST_CORES:
        return None
    return (
        f"Locust itself used {usage.locust_cpu_avg:.2f} cores of this "
        f"{f.cores}-core machine under load, CPU the server did not get: for "
        "capacity numbers, run Locust on another machine (--host URL)."
    )


def _other_load(f: Facts) -> str | None:
    for label, usage in (
        ("profile", f.resources),
        ("saturation", _capacity_resources(f)),
    ):
        if usage and f.cores and usage.other_cpu_avg >= OTHER_LOAD * f.cores:
            return (
                f"Other processes kept {usage.other_cpu_avg:.2f} of the "
                f"{f.cores} cores busy during the {label} (machine "
                f"{usage.machine_cpu_avg:.0f}% busy; server "
                f"{usage.server_cpu_avg:.2f}, Locust {usage.locust_cpu_avg:.2f} "
                "cores): the server had less CPU than it would alone, so these "
                "numbers are pessimistic. Rerun on a quiet machine before "
                "comparing with a baseline."
            )
    return None


def _capacity_resources(f: Facts) -> ResourceUsage | None:
    return f.capacity.resources if f.capacity else None


def _server_cpu(f: Facts) -> str | None:
    usage = f.capacity.resources if f.capacity else None
    if not (usage and f.cores) or usage.other_cpu_avg >= OTHER_LOAD * f.cores:
        return None  # a starved server says nothing about its own limits
    share = usage.server_cpu_avg / f.cores
    if share >= CPU_BOUND:
        return (
            f"The server is CPU-bound: at saturation it kept "
            f"{usage.server_cpu_avg:.2f} of {f.cores} cores busy. Capacity "
            "scales with cores; add machines or cores, not threads."
        )
    if share < CPU_IDLE:
        return (
            f"At saturation the server used only {usage.server_cpu_avg:.2f} of "
            f"{f.cores} cores: it is waiting rather than computing. Try more "
            "workers (WEB_CONCURRENCY) or threads, and check the database."
        )
    return None


def _think_time(f: Facts) -> str | None:
    cap = f.think_time_cap
    if not cap or f.mix_rps < THINK_TIME_BOUND * cap:
        return None
    served = (
        f"the saturation phase shows the capacity: {rate(f.capacity.predict_rps)} "
        "images/s"
        if f.capacity
        else "run a saturation phase (--saturation-duration) to see the capacity"
    )
    return (
        f"The profile's rate was set by its think time, not by the server: "
        f"{f.users} users waiting {f.wait[0]:g}-{f.wait[1]:g} s ask for about "
        f"{rate(cap)} req/s and got {rate(f.mix_rps)}. To size the service, "
        f"{served}."
    )


def _tail(f: Facts) -> str | None:
    if not f.p50_ms or f.p99_ms / f.p50_ms < LONG_TAIL or not f.tail:
        return None
    t = f.tail
    what = (
        f"The slowest request ({t.names[0]}) came {t.first_s:.0f} s"
        if t.count == 1
        else f"The slowest {t.count} requests ({', '.join(t.names)}) came "
        f"between {t.first_s:.0f} and {t.last_s:.0f} s"
    )
    why = (
        f"during the ramp-up (users arrived over the first {t.ramp_s:.0f} s and "
        "signed up; password hashing competes for the CPU): a warm-up effect, "
        "not the steady state"
        if t.during_ramp_up
        else "after the ramp-up: bursts of users posting at once queue behind "
        "each other (the response-time chart shows when)"
    )
    return (
        f"The tail is long: p99 {ms(f.p99_ms)} is {f.p99_ms / f.p50_ms:.1f}x the "
        f"median {ms(f.p50_ms)}. {what} after the start, {why}."
    )


def _memory(f: Facts) -> str | None:
    usage = f.capacity.resources if f.capacity else f.resources
    if not (usage and f.memory_mb) or usage.server_rss_peak_mb < (
        MEMORY_FULL * f.memory_mb
    ):
        return None
    return (
        f"The server processes held {usage.server_rss_peak_mb:.0f} MB of "
        f"{f.memory_mb} MB: there is no room for more workers on this machine."
    )


def _objective(f: Facts) -> str | None:
    if not f.steps or not f.objective_ms:
        return None
    best = best_step(f.steps)
    if best is None:
        first = f.steps[0]
        return (
            f"Even the first step ({first.users} users, no wait) had p95 "
            f"{ms(first.p95_ms)}, over the {ms(f.objective_ms)} objective: the "
            "objective needs a faster server, not fewer users."
        )
    return (
        f"To keep p95 under {ms(f.objective_ms)}, keep the load under about "
        f"{rate(best.rps)} req/s per instance (reached with {best.users} users "
        "and no think time); scale out beyond that."
    )


RULES: tuple[Callable[[Facts], str | None], ...] = (
    _failures,
    _cache,
    _inference,
    _inference_contention,
    _decode,
    _database,
    _queueing,
    _ceiling,
    _other_load,
    _server_cpu,
    _load_generator,
    _memory,
    _objective,
    _think_time,
    _tail,
)


def recommendations(f: Facts) -> list[str]:
    """Every rule that has something to say about this run, most urgent first."""
    advice = [text for rule in RULES if (text := rule(f))]
    if advice:
        return advice
    return [
        f"Nothing stands out: no failures, p95 {ms(f.p95_ms)} at "
        f"{rate(f.rps)} req/s, and no stage or resource near a limit. Raise the "
        "load (--users, --step-load) to find where it bends."
    ]


# --------------------------------------------------------------------------
# Analysis


def _profile_text(f: Facts, duration_s: int) -> str:
    wait = (
        f"waiting {f.wait[0]:g}-{f.wait[1]:g} s between tasks"
        if f.wait
        else "with no think time"
    )
    text = (
        f"The profile ran {f.users} users {wait} for {duration_s} s: "
        f"{f.requests} requests, {f.failures} failed ({pct(f.failure_rate)}). "
        f"After signing up, the users made {f.mix_requests} requests at "
        f"{rate(f.mix_rps)} req/s: median {ms(f.p50_ms)}, p95 {ms(f.p95_ms)}, "
        f"p99 {ms(f.p99_ms)}."
    )
    cap = f.think_time_cap
    if cap:
        text += (
            f" Think time caps this profile at about {rate(cap)} req/s whatever "
            f"the server does ({f.users} users / (mean wait "
            f"{sum(f.wait) / 2:g} s + mean response {ms(f.average_ms)})); "
            f"it ran at {pct(f.mix_rps / cap)} of that cap."
        )
    return text


def _breakdown_text(b: Breakdown, label: str) -> str:
    stages = ", ".join(
        f"{name} {ms(b.stages_ms[stage])} ({pct(b.share_of_server(stage))})"
        for stage, name in (
            ("inference", "inference"),
            ("decode", "decode"),
            ("preprocess", "preprocess"),
            ("db", "database"),
        )
    )
    text = (
        f"{label}, a /predict request took {ms(b.client_ms)} on average as "
        f"Locust saw it; the app's own time was {ms(b.server_ms)}: {stages}, "
        f"other {ms(b.other_ms)} (shares of server time). "
        f"{ms(b.outside_ms)} ({pct(b.share_of_client(b.outside_ms))} of the "
        "total) passed outside the app: queueing for a Gunicorn thread, HTTP "
        "and the network."
    )
    if b.cache_hit_rate is not None:
        text += f" Cache hits: {pct(b.cache_hit_rate)} of images."
    return text


def _capacity_text(f: Facts, meta: dict) -> str:
    c = f.capacity
    users = next(p["users"] for p in meta["phases"] if p["kind"] == "saturation")
    text = (
        f"Without think time ({users} users posting images "
        f"only), the server answered {rate(c.predict_rps)} images/s with p95 "
        f"{ms(c.predict_p95_ms)}."
    )
    ceiling = meta.get("ceiling", {})
    if f.ceiling_img_s:
        text += (
            f" The raw model ceiling on this machine ({ceiling['backend']}, "
            f"batch 1, {ceiling['threads']} threads, one process, no HTTP) is "
            f"{rate(f.ceiling_img_s)} images/s ({ms(ceiling['batch1_ms'])} per "
            f"image): the server reached {pct(f.ceiling_ratio)} of it."
        )
    else:
        text += f" Raw model ceiling: {ceiling.get('unavailable', 'not measured')}."
    return text


def _resources_text(f: Facts, host: str) -> str:
    if not f.started_here or f.resources is None:
        return (
            f"Server CPU and memory: unavailable (the server at {host} was not "
            "started by this tool, so its processes cannot be sampled)."
        )
    r = f.resources
    text = (
        f"During the profile the {r.server_processes} server processes (master "
        f"and workers) used {r.server_cpu_avg:.2f} cores on average (peak "
        f"{r.server_cpu_peak:.2f}) of {f.cores}, and {r.server_rss_peak_mb:.0f} "
        f"MB RSS at peak; Locust used {r.locust_cpu_avg:.2f} cores and other "
        f"processes {r.other_cpu_avg:.2f}."
    )
    if f.capacity and f.capacity.resources:
        s = f.capacity.resources
        text += (
            f" At saturation: server {s.server_cpu_avg:.2f} cores (peak "
            f"{s.server_cpu_peak:.2f}), {s.server_rss_peak_mb:.0f} MB; Locust "
            f"{s.locust_cpu_avg:.2f} cores, other processes "
            f"{s.other_cpu_avg:.2f}."
        )
    return text


def _steps_text(f: Facts) -> str:
    best = best_step(f.steps)
    if best is None:
        return (
            f"Step load: no step kept p95 under {ms(f.objective_ms)} "
            f"(first step: p95 {ms(f.steps[0].p95_ms)})."
        )
    return (
        f"Step load: p95 stayed under {ms(f.objective_ms)} up to "
        f"{rate(best.rps)} req/s ({best.users} users, no wait)."
    )


def analysis(f: Facts, meta: dict) -> list[str]:
    """The analysis paragraphs, each one built from measured values."""
    profile = next(p for p in meta["phases"] if p["kind"] == "profile")
    paragraphs = [_profile_text(f, profile["duration_s"])]
    if f.breakdown:
        paragraphs.append(_breakdown_text(f.breakdown, "In the profile"))
    if f.capacity:
        if f.capacity.breakdown:
            paragraphs.append(_breakdown_text(f.capacity.breakdown, "At saturation"))
        paragraphs.append(_capacity_text(f, meta))
    paragraphs.append(_resources_text(f, meta["target"]))
    if f.steps:
        paragraphs.append(_steps_text(f))
    return paragraphs
