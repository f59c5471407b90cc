"""Reading a report folder back: Locust's CSVs, the request log, the resources."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from devtools.locust import read_csv

# The Server-Timing stages, each a column of the request log.
STAGES = ("decode", "preprocess", "inference", "db")
PREDICT = "/predict"


def number(value: str | None) -> float | None:
    """Locust writes "N/A" (and the request log "") where there is no value."""
    try:
        return float(value) if value not in (None, "", "N/A") else None
    except ValueError:
        return None


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
