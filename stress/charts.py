"""The report's PNG charts, drawn with matplotlib's Agg backend (no display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: render to files, never to a screen

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {"p50": "#1f77b4", "p95": "#ff7f0e", "p99": "#d62728", "rps": "#2ca02c"}
SETUP_NAMES = frozenset({"/register", "/login", "/account/tokens"})
SEGMENTS = (  # server breakdown, left to right
    ("inference", "inference", "#1f77b4"),
    ("decode", "decode", "#ff7f0e"),
    ("preprocess", "preprocess", "#bcbd22"),
    ("db", "database", "#9467bd"),
    ("other", "other app", "#8c564b"),
    ("outside", "outside app (queue, HTTP)", "#c7c7c7"),
)


def save(figure, path: Path) -> None:
    figure.savefig(path, dpi=110)
    plt.close(figure)


def rows(count: int, height: float = 2.8):
    """A figure with one full-width axis per phase."""
    figure, axes = plt.subplots(
        count, 1, figsize=(9, height * count), squeeze=False, layout="constrained"
    )
    return figure, [row[0] for row in axes]


def history(phase, column: str) -> tuple[list[float], list[float]]:
    """Seconds since the start and a column of Locust's history (NaN for N/A)."""
    points = phase.history
    start = float(points[0]["Timestamp"]) if points else 0.0
    seconds = [float(p["Timestamp"]) - start for p in points]
    values = [float(p[column]) if p[column] != "N/A" else np.nan for p in points]
    return seconds, values


def over_time(phases, path: Path, columns: dict[str, str], ylabel: str) -> None:
    """Columns of Locust's ``_stats_history.csv`` per phase, users behind."""
    figure, axes = rows(len(phases))
    for ax, phase in zip(axes, phases, strict=True):
        for label, column in columns.items():
            color = COLORS.get(label, COLORS["p99"])
            ax.plot(*history(phase, column), label=label, color=color)
        users = ax.twinx()
        users.step(*history(phase, "User Count"), where="post", color="#7f7f7f")
        users.set_ylabel("users (grey)")
        # Headroom on both axes keeps the lines apart and under the legend.
        users.set_ylim(0, users.get_ylim()[1] * 1.3)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.3)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{phase.name}: {phase.config['users']} users")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize="small", ncol=4)
    axes[-1].set_xlabel("seconds since start (Locust's 10 s window)")
    save(figure, path)


def latency_histogram(phases, path: Path) -> None:
    """Response times from the request log (sign-ups left out), exact lines."""
    figure, axes = rows(len(phases), height=2.5)
    for ax, phase in zip(axes, phases, strict=True):
        times = [
            r["response_ms"] for r in phase.requests if r["name"] not in SETUP_NAMES
        ]
        ax.set_title(phase.name)
        if not times:
            ax.text(0.5, 0.5, "no request log", ha="center", transform=ax.transAxes)
            continue
        ax.hist(times, bins=min(60, max(10, len(times) // 10)), color="#aec7e8")
        for q, key in ((50, "p50"), (95, "p95"), (99, "p99")):
            value = float(np.percentile(times, q))
            ax.axvline(value, color=COLORS[key], ls="--", label=f"{key} {value:.0f} ms")
        ax.legend(loc="upper right", fontsize="small")
        ax.set_ylabel("requests")
    axes[-1].set_xlabel("response time (ms)")
    save(figure, path)


def server_breakdown(bars: list[tuple[str, dict]], path: Path) -> None:
    """Mean /predict time per stage, one bar per phase (from Server-Timing)."""
    figure, ax = plt.subplots(figsize=(9, 1.8 + 0.6 * len(bars)), layout="constrained")
    for row, (_, b) in enumerate(bars):
        left = 0.0
        for key, label, color in SEGMENTS:
            value = b["stages_ms"].get(key, b.get(f"{key}_ms", 0.0))
            ax.barh(row, value, left=left, color=color, label=None if row else label)
            left += value
        ax.text(left, row, f" {left:.0f} ms", va="center")
    ax.set_yticks(range(len(bars)), [name for name, _ in bars])
    ax.invert_yaxis()
    ax.set_xlim(right=ax.get_xlim()[1] * 1.1)  # room for the totals
    ax.set_xlabel("mean /predict time (ms), as Locust saw it")
    ax.set_title("Where a /predict request's time goes (Server-Timing)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), fontsize="small", ncol=6)
    ax.grid(axis="x", alpha=0.3)
    save(figure, path)


def draw(phases, breakdowns, folder: Path) -> None:
    """Every chart of the report into ``folder``."""
    over_time(
        phases,
        folder / "response-times.png",
        {"p50": "50%", "p95": "95%", "p99": "99%"},
        "response time (ms)",
    )
    over_time(
        phases,
        folder / "throughput.png",
        {"rps": "Requests/s", "failures/s": "Failures/s"},
        "per second",
    )
    latency_histogram(phases, folder / "latency-histogram.png")
    if breakdowns:
        server_breakdown(breakdowns, folder / "server-breakdown.png")
