"""Pass/fail thresholds, the machine-readable summary.json and the comparison
with a previous report's summary."""

from __future__ import annotations

import json
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path

from .analysis import Breakdown
from .analysis import Facts
from .analysis import ResourceUsage
from .analysis import best_step
from .analysis import breakdown
from .data import EndpointStats
from .data import RunData

SUMMARY_SCHEMA = 1


@dataclass
class Threshold:
    """One limit from the command line and what the profile measured."""

    name: str
    limit: float
    measured: float
    upper: bool  # True: measured must be <= limit; False: >= limit
    unit: str
    scope: str  # which requests it was measured on

    @property
    def passed(self) -> bool:
        if self.upper:
            return self.measured <= self.limit
        return self.measured >= self.limit

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def thresholds(
    everything: EndpointStats,
    mix: EndpointStats,
    *,
    max_p95_ms: float | None = None,
    max_p99_ms: float | None = None,
    max_failure_rate: float | None = None,
    min_rps: float | None = None,
) -> list[Threshold]:
    """The given limits, checked on the profile: latency and rate on the
    measured mix (sign-ups left out), failures on every request (a failed
    sign-up is a failure too)."""
    checks = []
    if max_p95_ms is not None:
        measured = mix.percentiles["95%"] or 0.0
        checks.append(Threshold("p95", max_p95_ms, measured, True, "ms", mix.name))
    if max_p99_ms is not None:
        measured = mix.percentiles["99%"] or 0.0
        checks.append(Threshold("p99", max_p99_ms, measured, True, "ms", mix.name))
    if max_failure_rate is not None:
        checks.append(
            Threshold(
                "failure rate",
                max_failure_rate,
                everything.failure_rate,
                True,
                "ratio",
                "all requests",
            )
        )
    if min_rps is not None:
        checks.append(
            Threshold("requests/s", min_rps, mix.rps, False, "req/s", mix.name)
        )
    return checks


# --------------------------------------------------------------------------
# summary.json


def endpoint_summary(stats: EndpointStats) -> dict:
    return {
        "requests": stats.requests,
        "failures": stats.failures,
        "failure_rate": stats.failure_rate,
        "rps": stats.rps,
        "average_ms": stats.average_ms,
        "min_ms": stats.min_ms,
        "max_ms": stats.max_ms,
        "median_ms": stats.median_ms,
        "percentiles_ms": stats.percentiles,
    }


def breakdown_summary(b: Breakdown | None) -> dict | None:
    if b is None:
        return None
    return {
        "requests": b.requests,
        "client_ms": b.client_ms,
        "server_ms": b.server_ms,
        **{f"{stage}_ms": value for stage, value in b.stages_ms.items()},
        "other_ms": b.other_ms,
        "outside_ms": b.outside_ms,
        "p95_ms": b.p95_ms,
        "cache_hit_rate": b.cache_hit_rate,
    }


def resources_summary(r: ResourceUsage | None) -> dict | None:
    return asdict(r) if r else None


def metrics(f: Facts) -> dict[str, float | None]:
    """The flat numbers a later run is compared with (see COMPARED)."""
    best = best_step(f.steps)
    busiest = f.busiest
    return {
        "profile_rps": f.mix_rps,
        "profile_p50_ms": f.p50_ms,
        "profile_p95_ms": f.p95_ms,
        "profile_p99_ms": f.p99_ms,
        "profile_failure_rate": f.failure_rate,
        "predict_server_ms": f.breakdown.server_ms if f.breakdown else None,
        "predict_inference_ms": (
            f.breakdown.stages_ms["inference"] if f.breakdown else None
        ),
        "saturation_images_s": f.capacity.predict_rps if f.capacity else None,
        "saturation_p95_ms": f.capacity.predict_p95_ms if f.capacity else None,
        "saturation_outside_ms": busiest.outside_ms if f.capacity and busiest else None,
        "ceiling_ratio": f.ceiling_ratio,
        "step_capacity_rps": best.rps if best else None,
        "server_rss_peak_mb": (f.resources.server_rss_peak_mb if f.resources else None),
    }


def summary(
    run: RunData, f: Facts, checks: list[Threshold], created: str
) -> dict[str, object]:
    meta = run.meta
    return {
        "schema": SUMMARY_SCHEMA,
        "created": created,
        "target": meta["target"],
        "started_here": meta.get("started_here", False),
        "phases": {
            phase.name: {
                "config": phase.config,
                "aggregated": endpoint_summary(phase.aggregated),
                "endpoints": {e.name: endpoint_summary(e) for e in phase.endpoints},
                "server_breakdown": breakdown_summary(breakdown(phase.requests)),
            }
            for phase in run.phases
        },
        "resources": {
            "profile": resources_summary(f.resources),
            "saturation": resources_summary(
                f.capacity.resources if f.capacity else None
            ),
        },
        "config": meta.get("config", {}),
        "system": meta.get("system", {}),
        "ceiling": meta.get("ceiling"),
        "steps": [asdict(step) for step in f.steps],
        "objective_p95_ms": f.objective_ms,
        "metrics": metrics(f),
        "thresholds": [check.as_dict() for check in checks],
        "passed": all(check.passed for check in checks),
    }


def write_summary(folder: Path, data: dict) -> Path:
    path = folder / "summary.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


# --------------------------------------------------------------------------
# Comparison with a baseline report


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
    ("step_capacity_rps", "req/s within objective", True),
    ("server_rss_peak_mb", "server RSS peak MB", False),
)


@dataclass
class Change:
    label: str
    before: float
    after: float
    higher_is_better: bool

    @property
    def relative(self) -> float | None:
        return (self.after - self.before) / self.before if self.before else None

    @property
    def verdict(self) -> str:
        """better/worse beyond 5 %, which is within run-to-run noise here."""
        relative = self.relative
        if relative is None or abs(relative) < 0.05:
            return "same"
        improved = (relative > 0) == self.higher_is_better
        return "better" if improved else "worse"


def load_baseline(path: Path) -> dict:
    """A previous report's summary.json (the folder or the file itself)."""
    path = path / "summary.json" if path.is_dir() else path
    data = json.loads(path.read_text())
    if data.get("schema") != SUMMARY_SCHEMA:
        raise ValueError(f"{path}: unknown summary schema {data.get('schema')!r}")
    return data


def compare(baseline: dict, current: dict) -> list[Change]:
    before, after = baseline["metrics"], current["metrics"]
    return [
        Change(label, before[key], after[key], higher)
        for key, label, higher in COMPARED
        if before.get(key) is not None and after.get(key) is not None
    ]


PHASE_SETTINGS = ("users", "spawn_rate", "duration_s", "wait", "tags", "step")
RUN_SETTINGS = ("server_settings", "images", "unique_images", "user_classes")


def _server_layout(data: dict) -> dict:
    system = data.get("system", {})
    return {
        "backend": system.get("model", {}).get("backend"),
        "workers": system.get("server", {}).get("workers"),
        "threads": system.get("server", {}).get("threads"),
    }


def differences(baseline: dict, current: dict) -> list[str]:
    """Settings that differ between two runs: their numbers measure different
    things, and the report says so next to the comparison."""
    found = []
    for name, phase in current["phases"].items():
        before = baseline["phases"].get(name)
        if before is None:
            found.append(f"the baseline has no {name} phase")
            continue
        for key in PHASE_SETTINGS:
            old, new = before["config"].get(key), phase["config"].get(key)
            if old != new:
                found.append(f"{name} {key}: {old} -> {new}")
    pairs = [
        *(
            (key, baseline.get("config", {}), current.get("config", {}))
            for key in RUN_SETTINGS
        ),
        *(
            (key, _server_layout(baseline), _server_layout(current))
            for key in ("backend", "workers", "threads")
        ),
    ]
    for key, before, after in pairs:
        if before.get(key) != after.get(key):
            found.append(f"{key}: {before.get(key)} -> {after.get(key)}")
    return found
