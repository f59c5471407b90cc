"""Build report.md, the charts and summary.json from a report folder alone.

The folder holds what ``stress.measure`` recorded: Locust's CSVs, the request
log (one row per request with its ``Server-Timing``), the resource samples and
``run.json``. So a report can be rebuilt later with other thresholds or another
baseline: ``python -m stress --report-only reports/stress-.../``. The report
states measurements; it does not interpret them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from devtools.locust import read_csv
from devtools.tables import table

from . import charts

# Locust's percentile columns, as the seed report shows them.
PERCENTILES = ("50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "100%")
# Requests made once per user in on_start, not part of the measured mix.
SETUP_NAMES = frozenset({"/register", "/login", "/account/tokens"})
STAGES = ("decode", "preprocess", "inference", "db")
STAGE_LABELS = dict(
    zip(STAGES, ("decode", "preprocess", "inference", "database"), strict=True)
)
PREDICT = "/predict"
MIX = "all but sign-ups"
SKIP = SETUP_NAMES | {"Aggregated"}  # Locust rows left out of the mix's rate
SUMMARY_SCHEMA = 1
SAME = 0.05  # relative change that counts as run-to-run noise on this machine


def number(value: str | None) -> float | None:
    """Locust writes "N/A" (and the request log "") where there is no value."""
    try:
        return float(value) if value not in (None, "", "N/A") else None
    except ValueError:
        return None


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


# --------------------------------------------------------------------------
# Reading the folder


@dataclass
class Phase:
    """Everything recorded for one phase (files named after it)."""

    config: dict
    stats: dict[str, dict[str, str]]  # Locust's _stats.csv rows by name
    history: list[dict[str, str]]  # _stats_history.csv, Aggregated rows
    failures: list[dict[str, str]]
    requests: list[dict]  # the request log, see read_requests
    resources: list[dict[str, float]]

    @property
    def name(self) -> str:
        return self.config["name"]

    @property
    def aggregated(self) -> dict[str, str]:
        return self.stats["Aggregated"]


def read_requests(path: Path) -> list[dict]:
    """The request log: name, ok, start, response time, each Server-Timing
    stage and the cache counts (numbers, or None where the server sent none)."""
    rows = []
    for row in read_csv(path):
        timing = {key: number(row.get(f"{key}_ms")) for key in (*STAGES, "total")}
        rows.append(
            {
                "name": row["name"],
                "ok": row["ok"] == "1",
                "elapsed_s": float(row["elapsed_s"]),
                "response_ms": float(row["response_ms"]),
                **timing,
                "cache_hits": number(row.get("cache_hits")),
                "cache_images": number(row.get("cache_images")),
            }
        )
    return rows


def read_phase(folder: Path, config: dict) -> Phase:
    prefix = folder / f"locust-{config['name']}"
    stats = {row["Name"]: row for row in read_csv(Path(f"{prefix}_stats.csv"))}
    if "Aggregated" not in stats:
        raise ValueError(f"{prefix}_stats.csv: no Aggregated row (did Locust run?)")
    history = read_csv(Path(f"{prefix}_stats_history.csv"))
    resources = read_csv(folder / f"resources-{config['name']}.csv")
    return Phase(
        config=config,
        stats=stats,
        history=[row for row in history if row["Name"] == "Aggregated"],
        failures=read_csv(Path(f"{prefix}_failures.csv")),
        requests=read_requests(folder / f"requests-{config['name']}.csv"),
        resources=[{k: float(v) for k, v in row.items()} for row in resources],
    )


# --------------------------------------------------------------------------
# Numbers Locust does not give


def mix(phase: Phase) -> dict:
    """The phase's requests without the once-per-user sign-ups, exactly from the
    request log: Locust's Aggregated row includes sign-ups, whose password
    hashing dominates a short run's tail."""
    rows = [r for r in phase.requests if r["name"] not in SETUP_NAMES]
    times = [r["response_ms"] for r in rows]
    return {
        "requests": len(rows),
        "rps": sum(
            number(s["Requests/s"]) or 0.0
            for n, s in phase.stats.items()
            if n not in SKIP
        ),
        "average_ms": mean(times),
        "percentiles": {p: percentile(times, float(p[:-1])) for p in PERCENTILES},
    }


def breakdown(rows: list[dict]) -> dict | None:
    """Mean and p95 per Server-Timing stage of the successful /predict rows.

    ``other_ms`` is app time outside the named stages; ``outside_ms`` is what
    the client waited beyond the app's own time (queue, HTTP, network)."""
    timed = [r for r in rows if r["name"] == PREDICT and r["ok"] and r["total"]]
    if not timed:
        return None
    column = {key: [r[key] or 0.0 for r in timed] for key in (*STAGES, "total")}
    client = [r["response_ms"] for r in timed]
    stages = {stage: mean(column[stage]) for stage in STAGES}
    server = mean(column["total"])
    images = sum(r["cache_images"] or 0 for r in timed)
    return {
        "requests": len(timed),
        "client_ms": mean(client),
        "server_ms": server,
        "stages_ms": stages,
        "other_ms": max(0.0, server - sum(stages.values())),
        "outside_ms": max(0.0, mean(client) - server),
        "p95_ms": {
            **{key: percentile(values, 95) for key, values in column.items()},
            "client": percentile(client, 95),
        },
        "cache_hit_rate": (
            sum(r["cache_hits"] or 0 for r in timed) / images if images else None
        ),
    }


RESOURCES = {  # resource_usage's keys: label and digits in the report
    "server_cpu_avg": ("server CPU, average (cores)", 2),
    "server_cpu_peak": ("server CPU, peak (cores)", 2),
    "server_rss_peak_mb": ("server RSS, peak (MB, all processes)", 0),
    "server_processes": ("server processes", 0),
    "locust_cpu_avg": ("Locust CPU, average (cores)", 2),
    "other_cpu_avg": ("other processes' CPU, average (cores)", 2),
    "machine_cpu_avg": ("machine CPU, average (%)", 0),
}


def resource_usage(samples: list[dict[str, float]], cores: int) -> dict | None:
    """CPU in cores (1.0 = one core busy) and RSS in MB over a phase."""
    samples = [s for s in samples if s["server_processes"]]  # none with --host
    if not samples:
        return None

    def column(key: str) -> list[float]:
        return [s[key] for s in samples]

    machine = mean(column("machine_cpu_percent"))
    server, locust = mean(column("server_cpu_cores")), mean(column("locust_cpu_cores"))
    return {
        "server_cpu_avg": server,
        "server_cpu_peak": max(column("server_cpu_cores")),
        "server_rss_peak_mb": max(column("server_rss_mb")),
        "server_processes": int(max(column("server_processes"))),
        "locust_cpu_avg": locust,
        "other_cpu_avg": max(0.0, machine / 100 * cores - server - locust),
        "machine_cpu_avg": machine,
    }


# --------------------------------------------------------------------------
# Thresholds and the baseline


@dataclass
class Limits:
    """Pass/fail limits from the command line (None: not checked)."""

    max_p95_ms: float | None = None
    max_p99_ms: float | None = None
    max_failure_rate: float | None = None
    min_rps: float | None = None


@dataclass
class Check:
    """One limit and what the profile measured."""

    name: str
    limit: float
    measured: float
    upper: bool  # True: measured must be <= limit; False: >= limit
    unit: str
    scope: str  # which requests it was measured on

    @property
    def passed(self) -> bool:
        return (
            self.measured <= self.limit if self.upper else self.measured >= self.limit
        )


def thresholds(profile: Phase, limits: Limits) -> list[Check]:
    """Latency and rate on the measured mix (sign-ups left out), failures on
    every request (a failed sign-up is a failure too)."""
    m, everything = mix(profile), profile.aggregated
    requests = int(everything["Request Count"])
    failure_rate = int(everything["Failure Count"]) / requests if requests else 0.0
    checks = []
    for name, limit, measured, upper, unit, scope in (
        ("p95", limits.max_p95_ms, m["percentiles"]["95%"], True, "ms", MIX),
        ("p99", limits.max_p99_ms, m["percentiles"]["99%"], True, "ms", MIX),
        ("failure rate", limits.max_failure_rate, failure_rate, True, "ratio", "all"),
        ("requests/s", limits.min_rps, m["rps"], False, "req/s", MIX),
    ):
        if limit is not None:
            checks.append(Check(name, limit, measured or 0.0, upper, unit, scope))
    return checks


# (metric, label, True when higher is better)
COMPARED = (
    ("profile_rps", "profile req/s (after sign-up)", True),
    ("profile_p50_ms", "profile p50 ms", False),
    ("profile_p95_ms", "profile p95 ms", False),
    ("profile_p99_ms", "profile p99 ms", False),
    ("profile_failure_rate", "profile failure rate", False),
    ("predict_server_ms", "/predict server time ms", False),
    ("predict_inference_ms", "/predict inference ms", False),
    ("saturation_images_s", "saturation images/s", True),
    ("saturation_p95_ms", "saturation p95 ms", False),
    ("ceiling_ratio", "served / model ceiling", True),
    ("server_rss_peak_mb", "server RSS peak MB", False),
)
SETTINGS = (  # of a phase, of the run, of the server: compared with the baseline
    *("users", "spawn_rate", "duration_s", "wait", "tags"),
    *("server_settings", "images", "unique_images", "user_classes"),
    *("backend", "workers", "threads"),
)


def compare(baseline: dict, current: dict) -> list[list]:
    """[label, before, after, relative change, verdict] per metric both have."""
    rows = []
    for key, label, higher_is_better in COMPARED:
        before, after = baseline["metrics"].get(key), current["metrics"].get(key)
        if before is None or after is None:
            continue
        relative = (after - before) / before if before else None
        verdict = "same"
        if relative is not None and abs(relative) >= SAME:
            verdict = "better" if (relative > 0) == higher_is_better else "worse"
        rows.append([label, before, after, relative, verdict])
    return rows


def differences(baseline: dict, current: dict) -> list[str]:
    """Settings that differ between two runs: their numbers measure different
    things, and the report says so next to the comparison."""
    pairs = [("", baseline["config"], current["config"])]
    pairs += [("", layout(baseline["system"]), layout(current["system"]))]
    for name, phase in current["phases"].items():
        before = baseline["phases"].get(name, {}).get("config", {})
        pairs.append((f"{name} ", before, phase["config"]))
    return [
        f"{prefix}{key}: {before.get(key)} -> {after.get(key)}"
        for prefix, before, after in pairs
        for key in SETTINGS
        if key in after and before.get(key) != after.get(key)
    ]


def layout(system: dict) -> dict:
    server = system.get("server", {})
    backend = system.get("model", {}).get("backend")
    return {"backend": backend, **{k: server.get(k) for k in ("workers", "threads")}}


def load_baseline(path: Path) -> dict:
    """A previous report's summary.json (the folder or the file itself)."""
    path = path / "summary.json" if path.is_dir() else path
    data = json.loads(path.read_text())
    if data.get("schema") != SUMMARY_SCHEMA:
        raise ValueError(f"{path}: unknown summary schema {data.get('schema')!r}")
    return data


# --------------------------------------------------------------------------
# summary.json


@dataclass
class Run:
    """A report folder read back, with the numbers derived once."""

    folder: Path
    meta: dict
    phases: list[Phase]

    def phase(self, kind: str) -> Phase | None:
        return next((p for p in self.phases if p.config["kind"] == kind), None)

    @property
    def profile(self) -> Phase:
        """The phase thresholds apply to: the profile, else the first."""
        return self.phase("profile") or self.phases[0]

    @property
    def cores(self) -> int:
        return self.meta.get("machine", {}).get("cores") or 1

    def predict(self, kind: str, column: str) -> float | None:
        phase = self.phase(kind)
        row = phase.stats.get(PREDICT) if phase else None
        return number(row[column]) if row else None

    def ceiling_ratio(self) -> float | None:
        served = self.predict("saturation", "Requests/s")
        ceiling = (self.meta.get("ceiling") or {}).get("batch1_img_s")
        return served / ceiling if served and ceiling else None


def read_run(folder: Path) -> Run:
    meta = json.loads((folder / "run.json").read_text())
    phases = [read_phase(folder, config) for config in meta["phases"]]
    if not phases:
        raise ValueError(f"{folder}: run.json lists no phases")
    return Run(folder, meta, phases)


def metrics(run: Run) -> dict[str, float | None]:
    """The flat numbers a later run is compared with (see COMPARED)."""
    m = mix(run.profile)
    b = breakdown(run.profile.requests)
    rss = [
        usage["server_rss_peak_mb"]
        for phase in run.phases
        if (usage := resource_usage(phase.resources, run.cores))
    ]
    profile = run.profile.aggregated
    requests = int(profile["Request Count"])
    return {
        "profile_rps": m["rps"],
        "profile_p50_ms": m["percentiles"]["50%"],
        "profile_p95_ms": m["percentiles"]["95%"],
        "profile_p99_ms": m["percentiles"]["99%"],
        "profile_failure_rate": (
            int(profile["Failure Count"]) / requests if requests else 0.0
        ),
        "predict_server_ms": b["server_ms"] if b else None,
        "predict_inference_ms": b["stages_ms"]["inference"] if b else None,
        "saturation_images_s": run.predict("saturation", "Requests/s"),
        "saturation_p95_ms": run.predict("saturation", "95%"),
        "ceiling_ratio": run.ceiling_ratio(),
        "server_rss_peak_mb": max(rss) if rss else None,
    }


def summary(run: Run, checks: list[Check], created: str) -> dict:
    meta = run.meta
    return {
        "schema": SUMMARY_SCHEMA,
        "created": created,
        "target": meta["target"],
        "started_here": meta.get("started_here", False),
        "phases": {
            phase.name: {
                "config": phase.config,
                "measured_mix": mix(phase),
                "server_breakdown": breakdown(phase.requests),
                "resources": resource_usage(phase.resources, run.cores),
            }
            for phase in run.phases
        },
        "config": meta.get("config", {}),
        "system": meta.get("system", {}),
        "machine": meta.get("machine", {}),
        "ceiling": meta.get("ceiling"),
        "metrics": metrics(run),
        "thresholds": [{**asdict(c), "passed": c.passed} for c in checks],
        "passed": all(c.passed for c in checks),
    }


# --------------------------------------------------------------------------
# report.md


def fmt(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def rate(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def key_figures(run: Run, data: dict) -> str:
    """The headline numbers, one line each, from the tables below."""
    m, metric = mix(run.profile), data["metrics"]
    failures = run.profile.failures
    top = max(failures, key=lambda f: int(f["Occurrences"])) if failures else None
    lines = [
        f"profile: {rate(m['rps'])} req/s after sign-up, p50 / p95 / p99 "
        f"{fmt(metric['profile_p50_ms'])} / {fmt(metric['profile_p95_ms'])} / "
        f"{fmt(metric['profile_p99_ms'])} ms, failure rate "
        f"{pct(metric['profile_failure_rate'])}"
        + (f" (most often {top['Error']} on {top['Name']})" if top else "")
    ]
    if b := breakdown(run.profile.requests):
        share = b["stages_ms"]["inference"] / b["server_ms"]
        lines.append(
            f"/predict in the profile: {fmt(b['server_ms'])} ms in the app "
            f"({pct(share)} inference), {fmt(b['outside_ms'])} ms outside it"
        )
    if metric["saturation_images_s"] is not None:
        lines.append(
            f"saturation: {rate(metric['saturation_images_s'])} images/s, "
            f"p95 {fmt(metric['saturation_p95_ms'])} ms, "
            f"{pct(metric['ceiling_ratio'])} of the model ceiling"
        )
    if metric["server_rss_peak_mb"] is not None:
        lines.append(f"server RSS peak: {fmt(metric['server_rss_peak_mb'])} MB")
    return "\n".join(f"- {line}" for line in lines)


def configuration(run: Run) -> str:
    meta, config = run.meta, run.meta.get("config", {})
    where = "started here: Gunicorn, random weights, fresh SQLite"
    settings = config.get("server_settings")
    rows = [
        ["target", meta["target"]],
        ["server", where if meta.get("started_here") else "a running deployment"],
        [
            "server settings",
            "n/a"
            if settings is None
            else " ".join(f"`{name}={value}`" for name, value in settings.items()),
        ],
        ["user classes", ", ".join(config.get("user_classes") or ["all"])],
        ["images", config.get("images", "n/a")],
        ["unique images (the result cache misses)", config.get("unique_images")],
        ["Locust", config.get("locust_version", "n/a")],
        ["command", f"`python -m stress {config.get('command', '')}`"],
    ]
    phases = []
    for p in meta["phases"]:
        users = p["users"]
        tags = ", ".join(p["tags"]) or "all tasks"
        wait = "none" if p["wait"] == "none" else p["wait"].split(":", 1)[1]
        phases.append([p["name"], users, p["spawn_rate"], p["duration_s"], wait, tags])
    headers = ["phase", "users", "spawn/s", "seconds", "wait (s)", "tasks"]
    return table(["setting", "value"], rows) + "\n\n" + table(headers, phases)


def summary_metrics(run: Run) -> str:
    """Locust's Aggregated row of each phase, sign-ups included."""
    rows = []
    for label, column, shown in (
        ("total requests", "Request Count", str),
        ("failures", "Failure Count", str),
        ("requests/s", "Requests/s", lambda v: rate(float(v))),
        ("average (ms)", "Average Response Time", lambda v: fmt(number(v))),
        ("min (ms)", "Min Response Time", lambda v: fmt(number(v))),
        ("max (ms)", "Max Response Time", lambda v: fmt(number(v))),
        ("median (ms)", "Median Response Time", lambda v: fmt(number(v))),
    ):
        rows.append([label, *(shown(p.aggregated[column]) for p in run.phases)])
    return table(["metric", *(p.name for p in run.phases)], rows)


def percentiles(phase: Phase) -> str:
    rows = []
    for name, row in phase.stats.items():
        label = "**all**" if name == "Aggregated" else f"{row['Type']} {name}"
        cells = (fmt(number(row[p])) for p in PERCENTILES)
        rows.append([label, row["Request Count"], *cells])
    m = mix(phase)
    cells = (fmt(m["percentiles"][p]) for p in PERCENTILES)
    rows.append([f"**{MIX}**", m["requests"], *cells])
    return table(["request", "count", *PERCENTILES], rows)


def server_breakdown(run: Run) -> str:
    measured = [(p.name, b) for p in run.phases if (b := breakdown(p.requests))]
    if not measured:
        return "No Server-Timing data (no request log, or no successful /predict)."

    def row(label: str, cell) -> list:
        return [label, *(cell(b) for _, b in measured)]

    def stage(b: dict, key: str) -> str:
        value = b["stages_ms"][key]
        share = pct(value / b["server_ms"])
        return f"{value:.1f} ({share}), p95 {b['p95_ms'][key]:.1f}"

    rows = [row(label, lambda b, k=k: stage(b, k)) for k, label in STAGE_LABELS.items()]
    rows += [
        row("other app time", lambda b: fmt(b["other_ms"], 1)),
        row(
            "**= app total (Server-Timing)**",
            lambda b: f"**{b['server_ms']:.1f}**, p95 {b['p95_ms']['total']:.1f}",
        ),
        row("outside the app: queue, HTTP, network", lambda b: fmt(b["outside_ms"], 1)),
        row(
            "**= response time seen by Locust**",
            lambda b: f"**{b['client_ms']:.1f}**, p95 {b['p95_ms']['client']:.1f}",
        ),
        row("cache hit rate (images)", lambda b: pct(b["cache_hit_rate"])),
        row("requests measured", lambda b: b["requests"]),
    ]
    headers = ["ms per /predict: mean (share of app time), p95"]
    return table(headers + [name for name, _ in measured], rows) + (
        "\n\nPer-request rows: `requests-<phase>.csv`."
    )


def resources(run: Run) -> str:
    if not run.meta.get("started_here"):
        return (
            f"Unavailable: the server at {run.meta['target']} was not started by "
            "this tool, so its processes cannot be sampled."
        )
    usage = [(p.name, resource_usage(p.resources, run.cores)) for p in run.phases]
    rows = [
        [label, *(fmt(u[key], digits) if u else "n/a" for _, u in usage)]
        for key, (label, digits) in RESOURCES.items()
    ]
    return table(["measure", *(name for name, _ in usage)], rows) + (
        "\n\nSampled once a second with psutil (Gunicorn master and workers; "
        f"{run.cores} cores on this machine). Raw samples: `resources-<phase>.csv`."
    )


def capacity(run: Run) -> str:
    c = run.meta.get("ceiling") or {}
    rows = []
    served = run.predict("saturation", "Requests/s")
    if served is not None:
        p95 = fmt(run.predict("saturation", "95%"))
        rows.append(["served at saturation (/predict)", f"{rate(served)} images/s"])
        rows.append(["p95 at saturation (/predict)", f"{p95} ms"])
    if c.get("batch1_img_s"):
        model = f"raw model ceiling ({c['backend']}, {c['threads']} threads)"
        rows.append([model, f"{rate(c['batch1_img_s'])} images/s at batch 1"])
        best = f"{rate(c['best_img_s'])} images/s at batch {c['best_batch']}"
        rows.append(["raw model ceiling, best batch", best])
        rows.append(["served / ceiling (batch 1)", pct(run.ceiling_ratio())])
    else:
        rows.append(["raw model ceiling", c.get("unavailable", "not measured")])
    return table(["measure", "value"], rows) + (
        "\n\nThe ceiling is `bench.raw.raw_ceiling`: the network alone in one "
        "process on all cores, no HTTP, no decoding, measured on this machine "
        "after the server stopped."
    )


def threshold_section(checks: list[Check]) -> str:
    if not checks:
        return (
            "No thresholds given (e.g. `--max-p95-ms 150 --max-failure-rate 0`); "
            "the run passes."
        )
    rows = []
    for c in checks:
        if c.unit == "ratio":
            limit, measured = pct(c.limit), pct(c.measured)
        else:
            limit, measured = f"{c.limit:g} {c.unit}", fmt(c.measured, 1)
        sign = "≤" if c.upper else "≥"
        verdict = "pass" if c.passed else "**FAIL**"
        rows.append([c.name, c.scope, f"{sign} {limit}", measured, verdict])
    headers = ["check (profile)", "requests", "limit", "measured", "result"]
    return table(headers, rows)


def baseline_section(baseline: dict, current: dict, path: Path) -> str:
    rows = [
        [label, fmt(before, 2), fmt(after, 2)]
        + ["n/a" if relative is None else f"{relative * 100:+.0f}%", verdict]
        for label, before, after, relative, verdict in compare(baseline, current)
    ]
    text = (
        f"Baseline: `{path}` ({baseline.get('created', '?')}, "
        f"{baseline.get('target', '?')}). Changes under {SAME:.0%} count as the "
        "same.\n\n"
        + table(["metric", "baseline", "this run", "change", "verdict"], rows)
    )
    if changed := differences(baseline, current):
        text += (
            "\n\n**The runs differ in settings**, so some changes above come "
            "from the load, not the server: " + "; ".join(changed) + "."
        )
    return text


def flatten(data: dict, prefix: str = "") -> list[list]:
    """Nested JSON as ``[dotted.key, value]`` rows."""
    rows = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows += flatten(value, f"{prefix}{key}.")
        else:
            rows.append([f"{prefix}{key}", value])
    return rows


def system_under_test(run: Run) -> str:
    system, machine = run.meta.get("system", {}), run.meta.get("machine", {})
    where = "this machine" if run.meta.get("started_here") else "the load generator"
    rows = [[f"machine ({where}): {key}", value] for key, value in machine.items()]
    if "unavailable" in system:
        return table(["", ""], [["/api/system", system["unavailable"]], *rows])
    return "Read from the running app (`GET /api/system`).\n\n" + table(
        ["", ""], [*flatten(system), *rows]
    )


def markdown(run: Run, checks: list[Check], data: dict, baseline) -> str:
    verdict = "no thresholds given"
    if checks:
        verdict = "**PASS**" if data["passed"] else "**FAIL**"
    parts = [
        f"# Snapclass stress test, {data['created']}",
        f"Result: {verdict}. Target: {run.meta['target']}.",
        key_figures(run, data),
        "## Configuration",
        configuration(run),
        "## Summary metrics",
        "All requests of each phase, sign-ups included (Locust's Aggregated row).",
        summary_metrics(run),
        "## Percentiles (ms)",
    ]
    for phase in run.phases:
        parts += [f"### {phase.name}", percentiles(phase)]
    parts += [
        "Per request from Locust's `_stats.csv` (its percentiles are rounded to "
        f"two significant digits); the row *{MIX}* is computed exactly from the "
        "request log without the once-per-user sign-ups, and latency thresholds "
        "use it.",
        "## Where the time goes (server-side breakdown of /predict)",
        server_breakdown(run),
        "![server breakdown](server-breakdown.png)",
        "## Server resources",
        resources(run),
        "## Capacity and the model ceiling",
        capacity(run),
    ]
    parts += ["## Thresholds", threshold_section(checks)]
    if baseline:
        parts += ["## Comparison with the baseline", baseline_section(*baseline)]
    parts += [
        "## System under test",
        system_under_test(run),
        "## Charts",
        "![response times](response-times.png)",
        "![throughput](throughput.png)",
        "![latency histogram](latency-histogram.png)",
        "## Files",
        "Locust's own CSVs, HTML report and log (`locust-<phase>_stats.csv`, "
        "`_stats_history.csv`, `_failures.csv`, `_exceptions.csv`, `.html`, "
        "`.log`), one row per request with its Server-Timing "
        "(`requests-<phase>.csv`), resource samples (`resources-<phase>.csv`), "
        "`server.log`, `run.json` (settings and measurements) and `summary.json` "
        "(for `--baseline`).",
    ]
    return "\n\n".join(parts) + "\n"


@dataclass
class Result:
    report: Path
    summary: dict
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def build(
    folder: Path,
    limits: Limits | None = None,
    baseline: Path | None = None,
    draw: bool = True,
) -> Result:
    """Write report.md, summary.json and (unless ``draw`` is false: they are
    the slow part) the charts into ``folder``."""
    run = read_run(folder)
    checks = thresholds(run.profile, limits or Limits())
    created = run.meta.get("created") or datetime.now().isoformat(timespec="seconds")
    data = summary(run, checks, created)
    comparison = (load_baseline(baseline), data, baseline) if baseline else None
    if draw:
        bars = [(p.name, b) for p in run.phases if (b := breakdown(p.requests))]
        charts.draw(run.phases, bars, folder)
    report = folder / "report.md"
    report.write_text(markdown(run, checks, data, comparison))
    (folder / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
    return Result(report, data, checks)
