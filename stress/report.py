"""Turn a report folder's recorded data into report.md, the charts and
summary.json.

Works on the folder alone (Locust's CSVs, the request and resource logs,
run.json), so a report can be rebuilt later with other thresholds or another
baseline: ``python -m stress --report-only reports/stress-.../``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import charts
from .advice import analysis
from .advice import ms
from .advice import pct
from .advice import rate
from .advice import recommendations
from .analysis import Breakdown
from .analysis import Facts
from .analysis import ResourceUsage
from .analysis import best_step
from .analysis import breakdown
from .analysis import facts
from .analysis import measured
from .checks import Change
from .checks import Threshold
from .checks import compare
from .checks import differences
from .checks import summary
from .checks import thresholds
from .checks import write_summary
from .data import PERCENTILES
from .data import EndpointStats
from .data import PhaseData
from .data import RunData
from .data import read_run


@dataclass
class Limits:
    """Pass/fail limits from the command line (None: not checked)."""

    max_p95_ms: float | None = None
    max_p99_ms: float | None = None
    max_failure_rate: float | None = None
    min_rps: float | None = None


@dataclass
class Result:
    folder: Path
    report: Path
    summary: dict
    checks: list[Threshold]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _num(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


# --------------------------------------------------------------------------
# Sections


def configuration(run: RunData) -> str:
    meta = run.meta
    config = meta.get("config", {})
    target = meta["target"] + (
        " (started by this tool: Gunicorn, random weights, fresh SQLite)"
        if meta.get("started_here")
        else " (running deployment)"
    )
    settings = [
        ["target", target],
        ["server settings", _settings(config.get("server_settings"))],
        ["user classes", ", ".join(config.get("user_classes") or ["all"])],
        ["images", config.get("images", "n/a")],
        [
            "unique images",
            "yes: a random JPEG comment per post, so the result cache misses"
            if config.get("unique_images")
            else "no: identical bytes, answered from the result cache",
        ],
        ["Locust", config.get("locust_version", "n/a")],
        [
            "command",
            f"`python -m stress {config.get('command') or ''}`".replace(" `", "`"),
        ],
    ]
    phases = [
        [
            p["name"],
            p["kind"],
            _phase_users(p),
            p["spawn_rate"],
            f"{p['duration_s']} s",
            "none" if p["wait"] == "none" else p["wait"].split(":", 1)[1] + " s",
            ", ".join(p["tags"]) or "all tasks",
        ]
        for p in meta["phases"]
    ]
    return "\n\n".join(
        [
            table(["setting", "value"], settings),
            table(
                ["phase", "kind", "users", "spawn/s", "duration", "wait", "tasks"],
                phases,
            ),
        ]
    )


def _settings(settings: dict | None) -> str:
    if settings is None:
        return "n/a (not started here)"
    return ", ".join(f"`{k}={v}`" for k, v in settings.items()) or "defaults"


def _phase_users(config: dict) -> str:
    if config["kind"] == "step":
        step = config["step"]
        return f"+{step['users']} per {step['seconds']} s to {step['max_users']}"
    return str(config["users"])


def summary_metrics(run: RunData) -> str:
    rows = [
        ["total requests", *(p.aggregated.requests for p in run.phases)],
        ["failures", *(p.aggregated.failures for p in run.phases)],
        ["failure rate", *(pct(p.aggregated.failure_rate) for p in run.phases)],
        ["requests/s", *(rate(p.aggregated.rps) for p in run.phases)],
        ["average (ms)", *(_num(p.aggregated.average_ms) for p in run.phases)],
        ["min (ms)", *(_num(p.aggregated.min_ms) for p in run.phases)],
        ["max (ms)", *(_num(p.aggregated.max_ms) for p in run.phases)],
        ["median (ms)", *(_num(p.aggregated.median_ms) for p in run.phases)],
    ]
    return table(["metric", *(p.name for p in run.phases)], rows)


def _percentile_row(stats: EndpointStats) -> list:
    name = "**all**" if stats.name == "Aggregated" else f"{stats.method} {stats.name}"
    return [name, stats.requests, *(_num(stats.percentiles[p]) for p in PERCENTILES)]


def percentiles(phase: PhaseData) -> str:
    rows = [_percentile_row(e) for e in phase.endpoints]
    rows.append(_percentile_row(phase.aggregated))
    mix = measured(phase)
    if mix is not phase.aggregated:
        rows.append([f"**{mix.name}**", mix.requests, *_exact(mix)])
    return table(["request", "count", *PERCENTILES], rows)


def _exact(stats: EndpointStats) -> list[str]:
    return [_num(stats.percentiles[p]) for p in PERCENTILES]


def _breakdown_cells(b: Breakdown | None, key: str) -> list[str]:
    if b is None:
        return ["n/a", "n/a", "n/a"]
    if key in b.stages_ms:
        value, share, p95 = b.stages_ms[key], pct(b.share_of_server(key)), b.p95_ms[key]
        return [_num(value, 1), share, _num(p95, 1)]
    if key == "other":
        return [_num(b.other_ms, 1), pct(b.share_of_server("other")), ""]
    if key == "server":
        return [f"**{_num(b.server_ms, 1)}**", "100%", _num(b.p95_ms["total"], 1)]
    if key == "outside":
        return [_num(b.outside_ms, 1), f"({pct(b.share_of_client(b.outside_ms))})", ""]
    return [f"**{_num(b.client_ms, 1)}**", "", _num(b.p95_ms["client"], 1)]


def server_breakdown(run: RunData) -> str:
    measured = [(p.name, breakdown(p.requests)) for p in run.phases]
    measured = [(name, b) for name, b in measured if b]
    if not measured:
        return "No Server-Timing data (no request log, or no successful /predict)."
    labels = (
        ("decode", "decode"),
        ("preprocess", "preprocess"),
        ("inference", "inference"),
        ("db", "database"),
        ("other", "other app time"),
        ("server", "= app total (Server-Timing total)"),
        ("outside", "outside the app: queue, HTTP, network"),
        ("client", "= response time seen by Locust"),
    )
    headers = ["stage (mean per /predict)"]
    for name, _ in measured:
        headers += [f"{name} ms", "share", "p95 ms"]
    rows = [
        [label, *(c for _, b in measured for c in _breakdown_cells(b, key))]
        for key, label in labels
    ]
    rows.append(
        [
            "cache hit rate (images)",
            *(c for _, b in measured for c in (_hit_rate(b), "", "")),
        ]
    )
    rows.append(
        ["requests measured", *(c for _, b in measured for c in (b.requests, "", ""))]
    )
    note = (
        "Shares are of the app's own time, except the outside row (share of the "
        "response time). Per-request rows: `requests-<phase>.csv`."
    )
    return table(headers, rows) + "\n\n" + note


def _hit_rate(b: Breakdown) -> str:
    return "n/a" if b.cache_hit_rate is None else pct(b.cache_hit_rate)


def resources(f: Facts, run: RunData) -> str:
    if not f.started_here:
        return (
            f"Unavailable: the server at {run.meta['target']} was not started by "
            "this tool, so its processes cannot be sampled."
        )
    usage: list[tuple[str, ResourceUsage | None]] = [("profile", f.resources)]
    if f.capacity:
        usage.append((f.capacity.phase, f.capacity.resources))
    rows = [
        [label, *(_num(getter(u), digits) if u else "n/a" for _, u in usage)]
        for label, getter, digits in (
            ("server CPU, average (cores)", lambda u: u.server_cpu_avg, 2),
            ("server CPU, peak (cores)", lambda u: u.server_cpu_peak, 2),
            ("server RSS, peak (MB, all processes)", lambda u: u.server_rss_peak_mb, 0),
            ("server processes", lambda u: u.server_processes, 0),
            ("Locust CPU, average (cores)", lambda u: u.locust_cpu_avg, 2),
            ("other processes' CPU, average (cores)", lambda u: u.other_cpu_avg, 2),
            ("machine CPU, average (%)", lambda u: u.machine_cpu_avg, 0),
        )
    ]
    cores = run.meta.get("machine", {}).get("cores")
    return (
        table(["measure", *(name for name, _ in usage)], rows)
        + f"\n\nSampled once a second with psutil (Gunicorn master and workers; "
        f"{cores} cores on this machine). Raw samples: `resources-<phase>.csv`."
    )


def capacity(f: Facts, run: RunData) -> str:
    ceiling = run.meta.get("ceiling") or {}
    rows = []
    if f.capacity:
        rows += [
            ["served at saturation (/predict, images/s)", rate(f.capacity.predict_rps)],
            ["p95 at saturation (/predict)", ms(f.capacity.predict_p95_ms)],
        ]
    if f.ceiling_img_s:
        rows += [
            [
                f"raw model ceiling ({ceiling['backend']}, batch 1, "
                f"{ceiling['threads']} threads)",
                f"{rate(ceiling['batch1_img_s'])} images/s "
                f"({ms(ceiling['batch1_ms'])} each)",
            ],
            [
                f"best batch ({ceiling['best_batch']})",
                f"{rate(ceiling['best_img_s'])} images/s",
            ],
        ]
    else:
        rows.append(["raw model ceiling", ceiling.get("unavailable", "not measured")])
    if f.ceiling_ratio is not None:
        rows.append(["served / ceiling (batch 1)", pct(f.ceiling_ratio)])
    return table(["measure", "value"], rows) + (
        "\n\nThe ceiling is `bench.bench.raw_ceiling`: the network alone in one "
        "process on all cores, no HTTP, no decoding, measured on this machine "
        "after the server stopped."
    )


def step_load(f: Facts) -> str:
    rows = [
        [
            s.users,
            s.requests,
            rate(s.rps),
            _num(s.p50_ms),
            _num(s.p95_ms),
            s.failures,
            "yes" if s.within_objective else "no",
        ]
        for s in f.steps
    ]
    best = best_step(f.steps)
    verdict = (
        f"Highest rate with p95 under {ms(f.objective_ms)}: **{rate(best.rps)} "
        f"req/s** ({best.users} users)."
        if best
        else f"No step kept p95 under {ms(f.objective_ms)}."
    )
    headers = ["users", "requests", "req/s", "p50 ms", "p95 ms", "failures", "within"]
    return table(headers, rows) + "\n\n" + verdict + "\n\n![step load](step-load.png)"


def threshold_section(checks: list[Threshold]) -> str:
    if not checks:
        return (
            "No thresholds given (e.g. `--max-p95-ms 150 --max-failure-rate 0`); "
            "the run passes."
        )
    rows = []
    for check in checks:
        sign = "≤" if check.upper else "≥"
        if check.unit == "ratio":
            limit, measured = pct(check.limit), pct(check.measured)
        else:
            limit, measured = f"{check.limit:g} {check.unit}", _num(check.measured, 1)
        verdict = "pass" if check.passed else "**FAIL**"
        rows.append([check.name, check.scope, f"{sign} {limit}", measured, verdict])
    headers = ["check (profile)", "requests", "limit", "measured", "result"]
    return table(headers, rows)


def baseline_section(
    changes: list[Change], baseline: dict, path: Path, changed: list[str]
) -> str:
    rows = [
        [
            c.label,
            _num(c.before, 2),
            _num(c.after, 2),
            "n/a" if c.relative is None else f"{c.relative * 100:+.0f}%",
            c.verdict,
        ]
        for c in changes
    ]
    text = (
        f"Baseline: `{path}` ({baseline.get('created', '?')}, "
        f"{baseline.get('target', '?')}). Changes under 5% count as the same.\n\n"
        + table(["metric", "baseline", "this run", "change", "verdict"], rows)
    )
    if changed:
        text += (
            "\n\n**The runs differ in settings**, so some changes above come "
            "from the load, not the server: " + "; ".join(changed) + "."
        )
    return text


def system_under_test(run: RunData) -> str:
    system = run.meta.get("system", {})
    machine = run.meta.get("machine", {})
    where = "this machine" if run.meta.get("started_here") else "the load generator"
    machine_row = [
        f"machine ({where})",
        f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
        f"{machine.get('memory_mb', '?')} MB, {machine.get('platform', '?')}",
    ]
    if "unavailable" in system:
        return table(["", ""], [["/api/system", system["unavailable"]], machine_row])
    model, server = system.get("model", {}), system.get("server", {})
    packages = ", ".join(f"{k} {v}" for k, v in system.get("packages", {}).items())
    rows = [
        ["model", f"{model.get('name')} ({model.get('weights')} weights)"],
        ["backend", model.get("backend")],
        ["random weights", model.get("random_weights")],
        ["model fingerprint", f"`{model.get('fingerprint')}`"],
        ["model load + warm-up", f"{model.get('load_seconds', 0):.2f} s per worker"],
        ["server", server.get("software")],
        [
            "workers x threads",
            f"{server.get('workers')} x {server.get('threads')} "
            f"(intra-op threads {server.get('intra_op_threads')})",
        ],
        ["database", system.get("database")],
        ["result cache", system.get("result_cache")],
        ["max upload", f"{system.get('max_upload_bytes', 0) / 2**20:.0f} MiB"],
        ["python", system.get("python")],
        ["platform", f"{system.get('platform')}, {system.get('cpu_count')} CPUs"],
        ["packages", packages],
        machine_row,
    ]
    return "Read from the running app (`GET /api/system`).\n\n" + table(["", ""], rows)


# --------------------------------------------------------------------------
# The whole report


def draw_charts(run: RunData, f: Facts) -> list[Path]:
    folder = run.folder
    drawn = [
        charts.response_times(run.phases, folder / "response-times.png"),
        charts.throughput(run.phases, folder / "throughput.png"),
        charts.latency_histogram(run.phases, folder / "latency-histogram.png"),
        charts.server_breakdown(run.phases, folder / "server-breakdown.png"),
    ]
    if f.steps:
        drawn.append(
            charts.step_load(f.steps, f.objective_ms, folder / "step-load.png")
        )
    return [path for path in drawn if path]


def markdown(
    run: RunData,
    f: Facts,
    checks: list[Threshold],
    comparison: tuple[list[Change], dict, Path, list[str]] | None,
    created: str,
) -> str:
    verdict = (
        "no thresholds given"
        if not checks
        else ("**PASS**" if all(c.passed for c in checks) else "**FAIL**")
    )
    parts = [
        f"# Snapclass stress test, {created}",
        f"Result: {verdict}. Target: {run.meta['target']}.",
        "## Configuration",
        configuration(run),
        "## Summary metrics",
        "All requests of each phase, sign-ups included (Locust's Aggregated row).",
        summary_metrics(run),
        "## Percentiles (ms)",
    ]
    for phase in run.phases:
        parts += [f"### {phase.name}", percentiles(phase)]
    parts.append(
        "Per request from Locust's `_stats.csv` (its percentiles are rounded "
        "to two significant digits); the last row is computed exactly from "
        "the request log, without the once-per-user sign-ups. Latency "
        "thresholds, the analysis and the recommendations use that row."
    )
    parts += [
        "## Where the time goes (server-side breakdown of /predict)",
        server_breakdown(run),
        "![server breakdown](server-breakdown.png)",
        "## Server resources",
        resources(f, run),
        "## Capacity and the model ceiling",
        capacity(f, run),
    ]
    if f.steps:
        parts += ["## Step load", step_load(f)]
    parts += ["## Thresholds", threshold_section(checks)]
    if comparison:
        parts += ["## Comparison with the baseline", baseline_section(*comparison)]
    parts += ["## Analysis", *analysis(f, run.meta)]
    parts += [
        "## Recommendations",
        "\n".join(f"{i}. {text}" for i, text in enumerate(recommendations(f), 1)),
        "## System under test",
        system_under_test(run),
        "## Charts",
        "![response times](response-times.png)",
        "![throughput](throughput.png)",
        "![latency histogram](latency-histogram.png)",
        "## Files",
        "Locust's own CSVs and HTML (`locust-<phase>_stats.csv`, "
        "`_stats_history.csv`, `_failures.csv`, `_exceptions.csv`, `.html`), one "
        "row per request with its Server-Timing (`requests-<phase>.csv`), "
        "resource samples (`resources-<phase>.csv`), `run.json` (settings and "
        "measurements) and `summary.json` (for `--baseline`).",
    ]
    return "\n\n".join(parts) + "\n"


def build(
    folder: Path,
    limits: Limits | None = None,
    baseline: Path | None = None,
    objective_ms: float | None = None,
    charts: bool = True,
) -> Result:
    """Write report.md, the charts (unless ``charts`` is false: they are the
    slow part) and summary.json into ``folder``."""
    from .checks import load_baseline

    run = read_run(folder)
    f = facts(run, objective_ms)
    limits = limits or Limits()
    checks = thresholds(run.profile.aggregated, measured(run.profile), **vars(limits))
    created = run.meta.get("created") or datetime.now().isoformat(timespec="seconds")
    data = summary(run, f, checks, created)
    comparison = None
    if baseline:
        before = load_baseline(baseline)
        comparison = (
            compare(before, data),
            before,
            baseline,
            differences(before, data),
        )
    if charts:
        draw_charts(run, f)
    report = folder / "report.md"
    report.write_text(markdown(run, f, checks, comparison, created))
    write_summary(folder, data)
    return Result(folder=folder, report=report, summary=data, checks=checks)
