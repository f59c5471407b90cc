"""The report's PNG charts, drawn with matplotlib's Agg backend (no display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: render to files, never to a screen

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .analysis import Breakdown  # noqa: E402
from .analysis import StepResult  # noqa: E402
from .analysis import TimeSeries  # noqa: E402
from .analysis import breakdown  # noqa: E402
from .analysis import phase_start  # noqa: E402
from .analysis import time_series  # noqa: E402
from .data import SETUP_NAMES  # noqa: E402
from .data import PhaseData  # noqa: E402

COLORS = {
    "p50": "#1f77b4",
    "p95": "#ff7f0e",
    "p99": "#d62728",
    "rps": "#2ca02c",
    "failures": "#d62728",
    "users": "#7f7f7f",
}
HEADROOM = 1.3
SEGMENTS = (  # server breakdown, left to right
    ("inference", "inference", "#1f77b4"),
    ("decode", "decode", "#ff7f0e"),
    ("preprocess", "preprocess", "#bcbd22"),
    ("db", "database", "#9467bd"),
    ("other", "other app", "#8c564b"),
    ("outside", "outside app (queue, HTTP)", "#c7c7c7"),
)


def _nan(value: float | None) -> float:
    return np.nan if value is None else value


def _title(phase: PhaseData) -> str:
    config = phase.config
    wait = "no wait" if config["wait"] == "none" else config["wait"].split(":", 1)[1]
    wait = wait.replace(":", "-") + (" s wait" if wait != "no wait" else "")
    if config["kind"] == "step":
        step = config["step"]
        return f"{phase.name}: +{step['users']} users every {step['seconds']} s, {wait}"
    return f"{phase.name}: {config['users']} users, {wait}"


def _save(figure, path: Path) -> Path:
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _figure(**kwargs):
    # Constrained layout makes room for labels and outside legends in the one
    # drawing savefig does (tight_layout or bbox_inches="tight" draw twice).
    return plt.subplots(layout="constrained", **kwargs)


def _rows(count: int, height: float = 2.8):
    figure, axes = _figure(nrows=count, figsize=(9, height * count), squeeze=False)
    return figure, [row[0] for row in axes]


def _series(phase: PhaseData) -> TimeSeries:
    """The request log's exact series, else Locust's own history."""
    if phase.requests:
        return time_series(phase.requests)
    start = phase.history[0].timestamp if phase.history else 0.0
    h = phase.history
    return TimeSeries(
        seconds=[p.timestamp - start for p in h],
        rps=[p.rps for p in h],
        failures_per_s=[p.failures_per_s for p in h],
        p50_ms=[_nan(p.p50_ms) for p in h],
        p95_ms=[_nan(p.p95_ms) for p in h],
        p99_ms=[_nan(p.p99_ms) for p in h],
    )


def _users(ax, phase: PhaseData) -> None:
    """Locust's user count on a second axis, on the request log's clock."""
    start = phase_start(phase.requests)
    if start is None:
        start = phase.history[0].timestamp if phase.history else 0.0
    users = ax.twinx()
    users.step(
        [p.timestamp - start for p in phase.history],
        [p.users for p in phase.history],
        where="post",
        color=COLORS["users"],
        linestyle="--",
        label="users",
    )
    users.set_ylabel("users")
    # Headroom above the data on both axes keeps the legend off the lines.
    users.set_ylim(0, max((p.users for p in phase.history), default=1) * HEADROOM)
    ax.set_ylim(0, (ax.get_ylim()[1] or 1) * HEADROOM)
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = users.get_legend_handles_labels()
    ax.legend(
        lines + more, labels + more_labels, loc="upper left", fontsize="small", ncol=4
    )


def response_times(phases: list[PhaseData], path: Path) -> Path:
    """p50/p95/p99 over a sliding 5 s window, and the user count."""
    figure, axes = _rows(len(phases))
    for ax, phase in zip(axes, phases, strict=True):
        series = _series(phase)
        for key in ("p50", "p95", "p99"):
            ax.plot(
                series.seconds,
                getattr(series, f"{key}_ms"),
                label=key,
                color=COLORS[key],
            )
        ax.set_ylabel("response time (ms)")
        ax.set_ylim(bottom=0)
        ax.set_title(_title(phase) + ": response times, last 5 s")
        ax.grid(alpha=0.3)
        _users(ax, phase)
    axes[-1].set_xlabel("seconds since start")
    return _save(figure, path)


def throughput(phases: list[PhaseData], path: Path) -> Path:
    """Requests/s and failures/s over a sliding 5 s window."""
    figure, axes = _rows(len(phases))
    for ax, phase in zip(axes, phases, strict=True):
        series = _series(phase)
        ax.plot(series.seconds, series.rps, color=COLORS["rps"], label="requests/s")
        ax.plot(
            series.seconds,
            series.failures_per_s,
            color=COLORS["failures"],
            label="failures/s",
        )
        ax.set_ylabel("per second")
        ax.set_ylim(bottom=0)
        ax.set_title(_title(phase) + ": throughput, last 5 s")
        ax.grid(alpha=0.3)
        _users(ax, phase)
    axes[-1].set_xlabel("seconds since start")
    return _save(figure, path)


def latency_histogram(phases: list[PhaseData], path: Path) -> Path:
    """Distribution of response times (sign-up requests left out), from the
    request log; percentiles computed exactly, not with Locust's buckets."""
    figure, axes = _rows(len(phases), height=2.5)
    for ax, phase in zip(axes, phases, strict=True):
        times = [r.response_ms for r in phase.requests if r.name not in SETUP_NAMES]
        ax.set_title(_title(phase))
        if not times:
            ax.text(0.5, 0.5, "no request log", ha="center", transform=ax.transAxes)
            continue
        ax.hist(times, bins=min(60, max(10, len(times) // 10)), color="#aec7e8")
        for q, key in ((50, "p50"), (95, "p95"), (99, "p99")):
            value = float(np.percentile(times, q))
            ax.axvline(
                value, color=COLORS[key], linestyle="--", label=f"{key} {value:.0f} ms"
            )
        ax.legend(loc="upper right", fontsize="small")
        ax.set_ylabel("requests")
    axes[-1].set_xlabel("response time (ms)")
    return _save(figure, path)


def server_breakdown(phases: list[PhaseData], path: Path) -> Path | None:
    """Mean /predict time per stage, one bar per phase (from Server-Timing)."""
    bars = [(p.name, b) for p in phases if (b := breakdown(p.requests))]
    if not bars:
        return None
    figure, ax = _figure(figsize=(9, 1.8 + 0.6 * len(bars)))
    for row, (_, b) in enumerate(bars):
        left = 0.0
        for key, label, color in SEGMENTS:
            value = _segment(b, key)
            ax.barh(
                row, value, left=left, color=color, label=label if row == 0 else None
            )
            left += value
        ax.text(left, row, f" {left:.0f} ms", va="center")
    ax.set_yticks(range(len(bars)), [name for name, _ in bars])
    ax.invert_yaxis()
    ax.set_xlim(right=ax.get_xlim()[1] * 1.1)  # room for the totals
    ax.set_xlabel("mean /predict time (ms), as Locust saw it")
    ax.set_title("Where a /predict request's time goes (Server-Timing)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), fontsize="small", ncol=6)
    ax.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def _segment(b: Breakdown, key: str) -> float:
    if key == "other":
        return b.other_ms
    if key == "outside":
        return b.outside_ms
    return b.stages_ms[key]


def step_load(steps: list[StepResult], objective_ms: float, path: Path) -> Path:
    """Request rate and p95 per step, against the latency objective."""
    figure, ax = _figure(figsize=(9, 3.5))
    users = [s.users for s in steps]
    colors = [COLORS["rps"] if s.within_objective else "#c7c7c7" for s in steps]
    ax.bar(users, [s.rps for s in steps], color=colors, width=0.8 * (users[0] or 1))
    ax.set_xticks(users)
    ax.set_xlabel("users (no wait)")
    ax.set_ylabel("requests/s (green: p95 within objective)")
    latency = ax.twinx()
    latency.plot(users, [s.p95_ms for s in steps], color=COLORS["p95"], marker="o")
    latency.axhline(objective_ms, color=COLORS["p99"], linestyle="--")
    latency.set_ylabel("p95 (ms); dashed: objective")
    latency.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    return _save(figure, path)
