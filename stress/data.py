"""Read what a run left in its report folder: Locust's CSVs, the request log
written by locustfile.py and the resource log written by stress.runner."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

# Locust's percentile columns, as the seed report shows them.
PERCENTILES = ("50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "100%")
# Requests made once per user in on_start, not part of the measured mix.
SETUP_NAMES = frozenset({"/register", "/login", "/account/tokens"})
STAGES = ("decode", "preprocess", "inference", "db")


def _number(value: str | None) -> float | None:
    """Locust writes "N/A" (and we write "") where there is no value."""
    try:
        return float(value) if value not in (None, "", "N/A") else None
    except ValueError:
        return None


@dataclass
class EndpointStats:
    """One row of Locust's ``_stats.csv`` (times in ms)."""

    method: str
    name: str
    requests: int
    failures: int
    median_ms: float
    average_ms: float
    min_ms: float
    max_ms: float
    rps: float
    failures_per_s: float
    percentiles: dict[str, float | None]

    @property
    def failure_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @classmethod
    def from_row(cls, row: dict[str, str]) -> EndpointStats:
        return cls(
            method=row["Type"],
            name=row["Name"],
            requests=int(row["Request Count"]),
            failures=int(row["Failure Count"]),
            median_ms=_number(row["Median Response Time"]) or 0.0,
            average_ms=_number(row["Average Response Time"]) or 0.0,
            min_ms=_number(row["Min Response Time"]) or 0.0,
            max_ms=_number(row["Max Response Time"]) or 0.0,
            rps=_number(row["Requests/s"]) or 0.0,
            failures_per_s=_number(row["Failures/s"]) or 0.0,
            percentiles={p: _number(row.get(p)) for p in PERCENTILES},
        )


@dataclass
class HistoryPoint:
    """One second of Locust's ``_stats_history.csv`` (Aggregated row).

    Its percentiles cover Locust's current window (the last 10 s), which is
    what its own charts show.
    """

    timestamp: float
    users: int
    rps: float
    failures_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass
class RequestRow:
    """One request from the request log, with the server's own timing."""

    elapsed_s: float  # start, seconds after the phase's test_start
    started_at: float  # start, Unix time
    name: str
    ok: bool
    status: str
    response_ms: float
    timing: dict[str, float]  # decode, preprocess, inference, db, total (ms)
    cache_hits: int | None
    cache_images: int | None
    error: str


@dataclass
class ResourceSample:
    elapsed_s: float
    server_cpu_cores: float
    server_rss_mb: float
    server_processes: int
    locust_cpu_cores: float
    machine_cpu_percent: float


@dataclass
class PhaseData:
    """Everything recorded for one phase."""

    name: str
    config: dict
    endpoints: list[EndpointStats]
    aggregated: EndpointStats
    history: list[HistoryPoint]
    failures: list[dict[str, str]]
    requests: list[RequestRow]
    resources: list[ResourceSample]

    def endpoint(self, name: str) -> EndpointStats | None:
        return next((e for e in self.endpoints if e.name == name), None)


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def read_stats(path: Path) -> tuple[list[EndpointStats], EndpointStats]:
    """Per-endpoint rows and the Aggregated row of ``_stats.csv``."""
    rows = [EndpointStats.from_row(row) for row in _rows(path)]
    aggregated = [row for row in rows if row.name == "Aggregated"]
    if not aggregated:
        raise ValueError(f"{path}: no Aggregated row (did Locust run?)")
    return [row for row in rows if row.name != "Aggregated"], aggregated[0]


def read_history(path: Path) -> list[HistoryPoint]:
    points = []
    for row in _rows(path):
        if row["Name"] != "Aggregated":
            continue
        points.append(
            HistoryPoint(
                timestamp=float(row["Timestamp"]),
                users=int(row["User Count"]),
                rps=_number(row["Requests/s"]) or 0.0,
                failures_per_s=_number(row["Failures/s"]) or 0.0,
                p50_ms=_number(row["50%"]),
                p95_ms=_number(row["95%"]),
                p99_ms=_number(row["99%"]),
            )
        )
    return points


def read_requests(path: Path) -> list[RequestRow]:
    requests = []
    for row in _rows(path):
        timing = {
            stage: value
            for stage in (*STAGES, "total")
            if (value := _number(row.get(f"{stage}_ms"))) is not None
        }
        hits, images = _number(row.get("cache_hits")), _number(row.get("cache_images"))
        requests.append(
            RequestRow(
                elapsed_s=float(row["elapsed_s"]),
                started_at=float(row["start_time"]),
                name=row["name"],
                ok=row["ok"] == "1",
                status=row["status"],
                response_ms=float(row["response_ms"]),
                timing=timing,
                cache_hits=None if hits is None else int(hits),
                cache_images=None if images is None else int(images),
                error=row.get("error", ""),
            )
        )
    return requests


def read_resources(path: Path) -> list[ResourceSample]:
    return [
        ResourceSample(
            elapsed_s=float(row["elapsed_s"]),
            server_cpu_cores=float(row["server_cpu_cores"]),
            server_rss_mb=float(row["server_rss_mb"]),
            server_processes=int(row["server_processes"]),
            locust_cpu_cores=float(row["locust_cpu_cores"]),
            machine_cpu_percent=float(row["machine_cpu_percent"]),
        )
        for row in _rows(path)
    ]


def read_phase(folder: Path, config: dict) -> PhaseData:
    """One phase's files, named after the phase (``locust-<name>_stats.csv``...)."""
    name = config["name"]
    endpoints, aggregated = read_stats(folder / f"locust-{name}_stats.csv")
    return PhaseData(
        name=name,
        config=config,
        endpoints=endpoints,
        aggregated=aggregated,
        history=read_history(folder / f"locust-{name}_stats_history.csv"),
        failures=_rows(folder / f"locust-{name}_failures.csv"),
        requests=read_requests(folder / f"requests-{name}.csv"),
        resources=read_resources(folder / f"resources-{name}.csv"),
    )


@dataclass
class RunData:
    """A whole report folder: ``run.json`` plus every phase's files."""

    folder: Path
    meta: dict
    phases: list[PhaseData]

    def phase(self, kind: str) -> PhaseData | None:
        return next((p for p in self.phases if p.config["kind"] == kind), None)

    @property
    def profile(self) -> PhaseData:
        """The phase that thresholds apply to: the profile, else the first."""
        return self.phase("profile") or self.phases[0]


def read_run(folder: Path) -> RunData:
    meta = json.loads((folder / "run.json").read_text())
    phases = [read_phase(folder, config) for config in meta["phases"]]
    if not phases:
        raise ValueError(f"{folder}: run.json lists no phases")
    return RunData(folder=folder, meta=meta, phases=phases)
