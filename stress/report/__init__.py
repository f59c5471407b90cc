"""Build report.md, the charts and summary.json from a report folder alone.

The folder holds what ``stress.measure`` recorded: Locust's CSVs, the request
log (one row per request with its ``Server-Timing``), the resource samples and
``run.json``. So a report can be rebuilt later with other thresholds or another
baseline: ``python -m stress --report-only reports/stress-.../``. The report
states measurements; it does not interpret them.

``read`` reads the folder back, ``compute`` derives the numbers Locust does
not give (the measured mix, the server-side breakdown, the thresholds, the
comparison with a baseline, summary.json), ``render`` writes report.md and
``stress.charts`` draws the PNGs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stress import charts
from stress.report.compute import Check
from stress.report.compute import Limits
from stress.report.compute import breakdown
from stress.report.compute import load_baseline
from stress.report.compute import summary
from stress.report.compute import thresholds
from stress.report.read import read_run
from stress.report.render import markdown


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
