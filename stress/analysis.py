"""Numbers derived from a run: where a request's time goes (Server-Timing),
what the server processes used, the step-load capacity and the facts the
analysis and recommendations are written from."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from dataclasses import field

import numpy as np

from .data import PERCENTILES
from .data import SETUP_NAMES
from .data import STAGES
from .data import EndpointStats
from .data import PhaseData
from .data import RequestRow
from .data import ResourceSample
from .data import RunData

PREDICT = "/predict"
MEASURED = "all but sign-ups"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


# --------------------------------------------------------------------------
# Server-side breakdown


@dataclass
class Breakdown:
    """Mean and p95 per stage of the successful /predict requests (ms)."""

    requests: int
    client_ms: float  # response time as Locust saw it
    server_ms: float  # Server-Timing total: the app's own time
    stages_ms: dict[str, float]
    p95_ms: dict[str, float]
    cache_hits: int
    cache_images: int

    @property
    def other_ms(self) -> float:
        """App time outside the named stages (hashing, cache lookup, JSON)."""
        return max(0.0, self.server_ms - sum(self.stages_ms.values()))

    @property
    def outside_ms(self) -> float:
        """Time the client waited beyond the app's own time: the queue for a
        free Gunicorn thread, HTTP parsing, the network and Locust itself."""
        return max(0.0, self.client_ms - self.server_ms)

    def share_of_server(self, stage: str) -> float:
        value = self.other_ms if stage == "other" else self.stages_ms[stage]
        return value / self.server_ms if self.server_ms else 0.0

    def share_of_client(self, value_ms: float) -> float:
        return value_ms / self.client_ms if self.client_ms else 0.0

    @property
    def cache_hit_rate(self) -> float | None:
        return self.cache_hits / self.cache_images if self.cache_images else None


def breakdown(rows: list[RequestRow]) -> Breakdown | None:
    """From the request log's successful /predict rows that carry Server-Timing."""
    timed = [r for r in rows if r.name == PREDICT and r.ok and "total" in r.timing]
    if not timed:
        return None

    def values(stage: str) -> list[float]:
        return [r.timing.get(stage, 0.0) for r in timed]

    client = [r.response_ms for r in timed]
    return Breakdown(
        requests=len(timed),
        client_ms=mean(client),
        server_ms=mean(values("total")),
        stages_ms={stage: mean(values(stage)) for stage in STAGES},
        p95_ms={
            **{stage: percentile(values(stage), 95) for stage in (*STAGES, "total")},
            "client": percentile(client, 95),
        },
        cache_hits=sum(r.cache_hits or 0 for r in timed),
        cache_images=sum(r.cache_images or 0 for r in timed),
    )


# --------------------------------------------------------------------------
# Over time


@dataclass
class TimeSeries:
    """Per-bucket numbers by completion time, seconds after the test start."""

    seconds: list[float]
    rps: list[float]
    failures_per_s: list[float]
    p50_ms: list[float]
    p95_ms: list[float]
    p99_ms: list[float]


def time_series(
    rows: list[RequestRow], window_s: float = 5.0, step_s: float = 1.0
) -> TimeSeries:
    """Rate and percentiles of the requests finished in the last ``window_s``,
    every ``step_s``, exactly, from the request log (Locust's history uses a
    10 s window and rounded buckets, which hides a short phase's shape).
    Sign-ups count towards the rate but not towards the percentiles."""
    finished = sorted(
        ((r.elapsed_s + r.response_ms / 1000, r) for r in rows), key=lambda f: f[0]
    )
    end = finished[-1][0] if finished else 0.0
    series = TimeSeries([], [], [], [], [], [])
    t = step_s
    while t < end + step_s:
        window = [r for done, r in finished if t - window_s < done <= t]
        span = min(window_s, t)
        times = [r.response_ms for r in window if r.name not in SETUP_NAMES]
        series.seconds.append(t)
        series.rps.append(len(window) / span)
        series.failures_per_s.append(sum(not r.ok for r in window) / span)
        for q, values in (
            (50, series.p50_ms),
            (95, series.p95_ms),
            (99, series.p99_ms),
        ):
            values.append(percentile(times, q) if times else float("nan"))
        t += step_s
    return series


def phase_start(rows: list[RequestRow]) -> float | None:
    """Unix time of the phase's test_start, from the request log."""
    return rows[0].started_at - rows[0].elapsed_s if rows else None


# --------------------------------------------------------------------------
# Server resources


@dataclass
class ResourceUsage:
    """CPU in cores (1.0 = one core busy) and memory in MB, over a phase."""

    server_cpu_avg: float
    server_cpu_peak: float
    server_rss_peak_mb: float
    server_processes: int
    locust_cpu_avg: float
    machine_cpu_avg: float  # percent of all cores
    other_cpu_avg: float  # cores busy with neither the server nor Locust


def resource_usage(samples: list[ResourceSample], cores: int) -> ResourceUsage | None:
    # Samples without server processes come from a run against --host.
    samples = [s for s in samples if s.server_processes]
    if not samples:
        return None
    other = [
        s.machine_cpu_percent / 100 * cores - s.server_cpu_cores - s.locust_cpu_cores
        for s in samples
    ]
    return ResourceUsage(
        server_cpu_avg=mean([s.server_cpu_cores for s in samples]),
        server_cpu_peak=max(s.server_cpu_cores for s in samples),
        server_rss_peak_mb=max(s.server_rss_mb for s in samples),
        server_processes=max(s.server_processes for s in samples),
        locust_cpu_avg=mean([s.locust_cpu_cores for s in samples]),
        machine_cpu_avg=mean([s.machine_cpu_percent for s in samples]),
        other_cpu_avg=max(0.0, mean(other)),
    )


# --------------------------------------------------------------------------
# Step load


@dataclass
class StepResult:
    users: int
    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    failures: int
    within_objective: bool


def step_results(
    phase: PhaseData, objective_ms: float, max_failure_rate: float = 0.01
) -> list[StepResult]:
    """Each step's rate and p95 from the request log (requests by start time;
    the once-per-user sign-up requests are left out)."""
    step = phase.config["step"]
    seconds, per_step = float(step["seconds"]), int(step["users"])
    count = int(step["max_users"]) // per_step
    buckets: list[list[RequestRow]] = [[] for _ in range(count)]
    for row in phase.requests:
        index = int(row.elapsed_s // seconds)
        if row.name not in SETUP_NAMES and 0 <= index < count:
            buckets[index].append(row)
    results = []
    for index, rows in enumerate(buckets):
        times = [r.response_ms for r in rows]
        failures = sum(not r.ok for r in rows)
        p95 = percentile(times, 95)
        results.append(
            StepResult(
                users=per_step * (index + 1),
                requests=len(rows),
                rps=len(rows) / seconds,
                p50_ms=percentile(times, 50),
                p95_ms=p95,
                failures=failures,
                within_objective=bool(rows)
                and p95 <= objective_ms
                and failures <= max_failure_rate * len(rows),
            )
        )
    return results


def best_step(steps: list[StepResult]) -> StepResult | None:
    """The highest request rate among the steps that met the objective."""
    good = [s for s in steps if s.within_objective]
    return max(good, key=lambda s: s.rps) if good else None


# --------------------------------------------------------------------------
# Facts: what the analysis and the recommendations are written from


@dataclass
class Capacity:
    """A no-wait phase: images per second and the latency they came with."""

    phase: str
    users: int
    predict_rps: float
    predict_p95_ms: float
    breakdown: Breakdown | None
    resources: ResourceUsage | None


@dataclass
class Facts:
    cores: int | None
    memory_mb: int | None
    backend: str | None
    database: str | None
    started_here: bool
    users: int
    wait: tuple[float, float] | None  # think time of the profile, seconds
    requests: int
    rps: float  # every request, as Locust counts them
    # Latency and rate of the measured mix, sign-ups left out (see measured()).
    mix_requests: int
    mix_rps: float
    average_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    failure_rate: float
    failures: int
    top_error: str | None
    breakdown: Breakdown | None  # the profile's /predict requests
    resources: ResourceUsage | None  # during the profile
    capacity: Capacity | None  # the saturation phase, if run
    ceiling_img_s: float | None
    workers: int | None = None  # from /api/system
    threads: int | None = None
    tail: Tail | None = None
    steps: list[StepResult] = field(default_factory=list)
    objective_ms: float | None = None

    @property
    def think_time_cap(self) -> float | None:
        """The most req/s the profile can ask for: users / (mean wait + the
        mean response time), whatever the server does."""
        if not self.wait:
            return None
        cycle = sum(self.wait) / 2 + self.average_ms / 1000
        return self.users / cycle if cycle else None

    @property
    def ceiling_ratio(self) -> float | None:
        if not (self.capacity and self.ceiling_img_s):
            return None
        return self.capacity.predict_rps / self.ceiling_img_s

    @property
    def busiest(self) -> Breakdown | None:
        """The breakdown under the heaviest load we have."""
        if self.capacity and self.capacity.breakdown:
            return self.capacity.breakdown
        return self.breakdown


@dataclass
class Tail:
    """When the slowest 1 % of the profile's requests happened."""

    count: int
    names: list[str]  # most frequent first
    first_s: float  # seconds after the start
    last_s: float
    ramp_s: float  # how long spawning all users took

    @property
    def during_ramp_up(self) -> bool:
        # A little slack: a request started in the ramp-up may end after it.
        return self.last_s <= self.ramp_s + 2


def tail(phase: PhaseData, p99_ms: float) -> Tail | None:
    """The requests at or above p99 (sign-ups left out)."""
    slow = [
        r
        for r in phase.requests
        if r.name not in SETUP_NAMES and r.response_ms >= p99_ms
    ]
    if not slow:
        return None
    names = Counter(r.name for r in slow)
    config = phase.config
    return Tail(
        count=len(slow),
        names=[name for name, _ in names.most_common()],
        first_s=min(r.elapsed_s for r in slow),
        last_s=max(r.elapsed_s for r in slow),
        ramp_s=config["users"] / config["spawn_rate"] if config["spawn_rate"] else 0,
    )


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_wait(wait: str) -> tuple[float, float] | None:
    """``between:1:5`` -> (1.0, 5.0); ``none`` -> None."""
    if wait == "none":
        return None
    _, low, high = wait.split(":")
    return float(low), float(high)


def top_error(phase: PhaseData) -> str | None:
    """The most frequent failure of a phase, with its request."""
    if not phase.failures:
        return None
    worst = max(phase.failures, key=lambda f: int(f["Occurrences"]))
    return f"{worst['Error']} ({worst['Method']} {worst['Name']})"


def capacity(phase: PhaseData | None, cores: int) -> Capacity | None:
    """What the no-wait phase (if it ran) says about capacity."""
    if phase is None:
        return None
    predict = phase.endpoint(PREDICT)
    return Capacity(
        phase=phase.name,
        users=phase.config["users"],
        predict_rps=predict.rps if predict else 0.0,
        predict_p95_ms=(predict.percentiles["95%"] or 0.0) if predict else 0.0,
        breakdown=breakdown(phase.requests),
        resources=resource_usage(phase.resources, cores),
    )


def measured(phase: PhaseData) -> EndpointStats:
    """The phase's requests without the once-per-user sign-ups, exactly from
    the request log: what users of the service wait for. (Locust's Aggregated
    row includes the sign-ups, whose password hashing dominates a short run's
    tail.) Without a request log, Locust's Aggregated row."""
    rows = [r for r in phase.requests if r.name not in SETUP_NAMES]
    if not rows:
        return phase.aggregated
    times = [r.response_ms for r in rows]
    failures = sum(not r.ok for r in rows)
    rps = sum(e.rps for e in phase.endpoints if e.name not in SETUP_NAMES)
    return EndpointStats(
        method="",
        name=MEASURED,
        requests=len(rows),
        failures=failures,
        median_ms=percentile(times, 50),
        average_ms=mean(times),
        min_ms=min(times),
        max_ms=max(times),
        rps=rps,
        failures_per_s=rps * failures / len(rows),
        percentiles={p: percentile(times, float(p.rstrip("%"))) for p in PERCENTILES},
    )


def facts(
    run: RunData,
    objective_ms: float | None = None,
) -> Facts:
    """Everything the written analysis refers to, computed once."""
    meta, profile = run.meta, run.profile
    system = meta.get("system", {})
    total, mix = profile.aggregated, measured(profile)
    machine = meta.get("machine", {})
    cores = machine.get("cores") or 1
    step_phase = run.phase("step")
    objective = objective_ms or meta.get("objective_p95_ms")
    ceiling = meta.get("ceiling", {})
    return Facts(
        # The cores are the server's only when the server ran on this machine.
        cores=machine.get("cores") if meta.get("started_here") else None,
        memory_mb=machine.get("memory_mb"),
        backend=system.get("model", {}).get("backend"),
        database=system.get("database"),
        started_here=bool(meta.get("started_here")),
        users=profile.config["users"],
        wait=parse_wait(profile.config["wait"]),
        requests=total.requests,
        rps=total.rps,
        mix_requests=mix.requests,
        mix_rps=mix.rps,
        average_ms=mix.average_ms,
        p50_ms=mix.percentiles["50%"] or 0.0,
        p95_ms=mix.percentiles["95%"] or 0.0,
        p99_ms=mix.percentiles["99%"] or 0.0,
        failure_rate=total.failure_rate,
        failures=total.failures,
        top_error=top_error(profile),
        breakdown=breakdown(profile.requests),
        resources=resource_usage(profile.resources, cores),
        capacity=capacity(run.phase("saturation"), cores),
        ceiling_img_s=ceiling.get("batch1_img_s"),
        workers=_int(system.get("server", {}).get("workers")),
        threads=_int(system.get("server", {}).get("threads")),
        tail=tail(profile, mix.percentiles["99%"] or 0.0),
        steps=step_results(step_phase, objective) if step_phase and objective else [],
        objective_ms=objective,
    )
