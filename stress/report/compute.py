"""The numbers Locust does not give, the thresholds, the baseline and summary.json."""

from __future__ import annotations

import json
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stress.report.read import PREDICT
from stress.report.read import STAGES
from stress.report.read import Phase
from stress.report.read import Run
from stress.report.read import number

# Locust's percentile columns, as the seed report shows them.
PERCENTILES = ("50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "100%")
# Requests made once per user in on_start, not part of the measured mix.
SETUP_NAMES = frozenset({"/register", "/login", "/account/tokens"})
MIX = "all but sign-ups"
SKIP = SETUP_NAMES | {"Aggregated"}  # Locust rows left out of the mix's rate
SUMMARY_SCHEMA = 1
SAME = 0.05  # relative change that counts as run-to-run noise on this machine


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


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
