"""report.md: the sections, each a table or a few lines, from the numbers."""

from __future__ import annotations

from pathlib import Path

from devtools.tables import table
from stress.report.compute import MIX
from stress.report.compute import PERCENTILES
from stress.report.compute import SAME
from stress.report.compute import Check
from stress.report.compute import breakdown
from stress.report.compute import compare
from stress.report.compute import differences
from stress.report.compute import mix
from stress.report.compute import resource_usage
from stress.report.read import STAGES
from stress.report.read import Phase
from stress.report.read import Run
from stress.report.read import number

STAGE_LABELS = dict(
    zip(STAGES, ("decode", "preprocess", "inference", "database"), strict=True)
)
RESOURCES = {  # resource_usage's keys: label and digits in the report
    "server_cpu_avg": ("server CPU, average (cores)", 2),
    "server_cpu_peak": ("server CPU, peak (cores)", 2),
    "server_rss_peak_mb": ("server RSS, peak (MB, all processes)", 0),
    "server_processes": ("server processes", 0),
    "locust_cpu_avg": ("Locust CPU, average (cores)", 2),
    "other_cpu_avg": ("other processes' CPU, average (cores)", 2),
    "machine_cpu_avg": ("machine CPU, average (%)", 0),
}


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
