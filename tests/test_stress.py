"""make stress: the report built from recorded Locust data, and one real run.

The recorded data (tests/data/stress/run/, see its README) comes from a real
short run; these tests rebuild its report and check it against the raw files.
The locustfile is exercised in a child process: importing Locust monkey-patches
the whole interpreter with gevent.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stress.__main__ import duration
from stress.__main__ import main
from stress.__main__ import parser
from stress.__main__ import plan
from stress.__main__ import ratio
from stress.__main__ import wait
from stress.report import build
from stress.report.compute import Limits
from stress.report.compute import breakdown
from stress.report.read import read_requests
from stress.report.render import rate

ROOT = Path(__file__).resolve().parent.parent
RECORDED = Path(__file__).parent / "data" / "stress" / "run"
CHARTS = (
    "response-times.png",
    "throughput.png",
    "latency-histogram.png",
    "server-breakdown.png",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def recorded(tmp_path) -> Path:
    """A writable copy of the recorded report folder."""
    folder = tmp_path / "stress-recorded"
    shutil.copytree(RECORDED, folder)
    return folder


def stats_row(folder: Path, phase: str, name: str = "Aggregated") -> dict[str, str]:
    with (folder / f"locust-{phase}_stats.csv").open(newline="") as handle:
        return next(row for row in csv.DictReader(handle) if row["Name"] == name)


def rewrite_requests(folder: Path, phase: str, change) -> None:
    """Apply ``change(row)`` to every row of a phase's request log."""
    path = folder / f"requests-{phase}.csv"
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns, rows = reader.fieldnames, list(reader)
    for row in rows:
        change(row)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)


def section(text: str, title: str) -> str:
    """One ``## title`` section of a report."""
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 3)
    return text[start : end if end != -1 else None]


# --------------------------------------------------------------------------
# The report from recorded data


def test_report_has_the_seed_sections_tables_and_charts(recorded):
    result = build(recorded)
    text = result.report.read_text()
    for title in (
        "Configuration",
        "Summary metrics",
        "Percentiles (ms)",
        "Where the time goes",
        "Server resources",
        "Capacity and the model ceiling",
        "Thresholds",
        "System under test",
        "Charts",
        "Files",
    ):
        assert f"\n## {title}" in text, title
    # Facts only: no rule-based prose.
    assert "## Analysis" not in text and "## Recommendations" not in text
    header = (
        "| request | count | 50% | 66% | 75% | 80% | 90% | 95% | 98% | 99% | 100% |"
    )
    assert text.count(header) == 3  # one table per phase
    for chart in CHARTS:
        data = (recorded / chart).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, chart
    summary = json.loads((recorded / "summary.json").read_text())
    assert set(summary["phases"]) == {"profile", "saturation", "step"}
    assert summary["passed"] is True and summary["thresholds"] == []


def test_summary_metrics_are_locusts_aggregated_rows(recorded):
    text = section(build(recorded, draw=False).report.read_text(), "Summary metrics")
    rows = [stats_row(recorded, phase) for phase in ("profile", "saturation", "step")]
    expected = {
        "total requests": [row["Request Count"] for row in rows],
        "failures": [row["Failure Count"] for row in rows],
        "requests/s": [rate(float(row["Requests/s"])) for row in rows],
        "max (ms)": [f"{float(row['Max Response Time']):.0f}" for row in rows],
        "median (ms)": [f"{float(row['Median Response Time']):.0f}" for row in rows],
    }
    for metric, values in expected.items():
        assert f"| {metric} | {' | '.join(values)} |" in text, metric


def test_percentile_rows_are_locusts_per_request_rows(recorded):
    text = section(build(recorded, draw=False).report.read_text(), "Percentiles (ms)")
    predict = stats_row(recorded, "saturation", "/predict")
    cells = " | ".join(
        predict[p] for p in ("50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%")
    )
    assert f"| POST /predict | {predict['Request Count']} | {cells} |" in text


def test_server_breakdown_is_the_mean_of_server_timing(recorded):
    rows = read_requests(recorded / "requests-saturation.csv")
    timed = [r for r in rows if r["name"] == "/predict" and r["ok"]]
    inference = sum(r["inference"] for r in timed) / len(timed)
    total = sum(r["total"] for r in timed) / len(timed)
    result = breakdown(rows)
    assert result["requests"] == len(timed)
    assert result["stages_ms"]["inference"] == pytest.approx(inference)
    assert result["server_ms"] == pytest.approx(total)
    named = sum(result["stages_ms"].values()) + result["other_ms"]
    assert named == pytest.approx(total, rel=0.01)
    client = sum(r["response_ms"] for r in timed) / len(timed)
    assert result["outside_ms"] == pytest.approx(client - total)
    assert result["cache_hit_rate"] == 0  # unique images: the cache never answered
    text = section(
        build(recorded, draw=False).report.read_text(), "Where the time goes"
    )
    share = f"{inference:.1f} ({inference / total * 100:.0f}%)"
    assert f"| inference | {share}" not in text  # the profile's column comes first
    assert f"| {share}, p95 " in text


def test_resources_and_ceiling_come_from_the_recording(recorded):
    text = build(recorded, draw=False).report.read_text()
    meta = json.loads((recorded / "run.json").read_text())
    ceiling = meta["ceiling"]
    assert f"{rate(ceiling['batch1_img_s'])} images/s" in text
    with (recorded / "resources-saturation.csv").open(newline="") as handle:
        samples = [
            row for row in csv.DictReader(handle) if int(row["server_processes"])
        ]
    peak = max(float(row["server_cpu_cores"]) for row in samples)
    assert "| server CPU, peak (cores) | " in text
    assert f"{peak:.2f} |" in section(text, "Server resources")
    assert meta["system"]["model"]["backend"] in section(text, "System under test")


# --------------------------------------------------------------------------
# Thresholds, exit codes and the baseline


def test_key_figures_repeat_the_tables_numbers(recorded):
    result = build(recorded, draw=False)
    metrics = result.summary["metrics"]
    head = result.report.read_text().split("\n## ")[0]
    p95, ratio = metrics["profile_p95_ms"], metrics["ceiling_ratio"]
    assert (
        f"/ {p95:.0f} /" in head and f"{ratio * 100:.0f}% of the model ceiling" in head
    )
    assert "most often LocustBadStatusCode(code=400) on /history" in head
    images = float(stats_row(recorded, "saturation", "/predict")["Requests/s"])
    assert metrics["saturation_images_s"] == pytest.approx(images)


def test_thresholds_decide_the_exit_code(recorded):
    folder = str(recorded)
    assert main(["--report-only", folder, "--max-p95-ms", "100000"]) == 0
    assert (
        "| p95 | all but sign-ups | ≤ 100000 ms |"
        in (recorded / "report.md").read_text()
    )

    assert main(["--report-only", folder, "--max-p95-ms", "1"]) == 1
    assert "**FAIL**" in (recorded / "report.md").read_text()
    assert json.loads((recorded / "summary.json").read_text())["passed"] is False


@pytest.mark.parametrize(
    ("limits", "passed"),
    [
        # The recording has failures (GET /history answered 400).
        (Limits(max_failure_rate=0), False),
        (Limits(max_failure_rate=0.5), True),
        (Limits(min_rps=1000), False),
        (Limits(min_rps=0.1, max_p99_ms=100_000), True),
        (Limits(min_rps=0.1, max_p99_ms=1), False),
    ],
)
def test_each_threshold_can_fail_the_run(recorded, limits, passed):
    result = build(recorded, limits, draw=False)
    assert result.passed is passed
    assert json.loads((recorded / "summary.json").read_text())["passed"] is passed


def test_p95_threshold_leaves_out_the_sign_ups(recorded):
    """Password hashing at sign-up is slow; a latency objective is about the
    requests users make afterwards."""
    aggregated = float(stats_row(recorded, "profile")["95%"])
    result = build(recorded, Limits(max_p95_ms=aggregated - 1), draw=False)
    (check,) = result.checks
    assert check.scope == "all but sign-ups"
    assert check.measured < aggregated
    assert result.passed


def test_baseline_comparison_marks_regressions(recorded, tmp_path):
    build(recorded, draw=False)
    baseline = tmp_path / "baseline"
    shutil.copytree(recorded, baseline)
    summary = json.loads((baseline / "summary.json").read_text())
    summary["metrics"]["profile_p95_ms"] /= 2  # this run looks twice as slow
    summary["metrics"]["saturation_images_s"] *= 2  # and half the capacity
    (baseline / "summary.json").write_text(json.dumps(summary))

    text = build(recorded, baseline=baseline, draw=False).report.read_text()
    comparison = section(text, "Comparison with the baseline")
    assert "| profile p95 ms |" in comparison
    assert "+100% | worse |" in comparison
    assert "-50% | worse |" in comparison
    assert "| profile p50 ms |" in comparison and "| same |" in comparison
    assert "differ in settings" not in comparison  # same settings, same load

    summary["phases"]["profile"]["config"]["users"] = 50
    (baseline / "summary.json").write_text(json.dumps(summary))
    text = build(recorded, baseline=baseline, draw=False).report.read_text()
    assert "differ in settings" in text and "profile users: 50 -> 3" in text
    # A comparison informs; only thresholds gate.
    assert main(["--report-only", str(recorded), "--baseline", str(baseline)]) == 0


# --------------------------------------------------------------------------
# Remote targets


def test_report_for_a_remote_host_says_what_is_unavailable(recorded):
    meta = json.loads((recorded / "run.json").read_text())
    meta.update(
        started_here=False,
        target="https://snapclass.example",
        system={"unavailable": "no API token (pass --token to read /api/system)"},
        ceiling={"unavailable": "not measured: the server runs elsewhere (--host)"},
    )
    (recorded / "run.json").write_text(json.dumps(meta))
    text = build(recorded, draw=False).report.read_text()
    assert "Unavailable: the server at https://snapclass.example" in text
    assert "| /api/system | no API token" in text
    assert "the server runs elsewhere" in section(
        text, "Capacity and the model ceiling"
    )


# --------------------------------------------------------------------------
# Command line and locustfile


@pytest.mark.parametrize(
    ("text", "seconds"), [("30", 30), ("30s", 30), ("2m", 120), ("1m30s", 90)]
)
def test_durations(text, seconds):
    assert duration(text) == seconds


@pytest.mark.parametrize(("text", "value"), [("0", 0.0), ("0.01", 0.01), ("1%", 0.01)])
def test_failure_rates(text, value):
    assert ratio(text) == pytest.approx(value)


def test_plan_is_the_profile_then_saturation_on_images_only():
    args = parser().parse_args(["-u", "4", "--wait", "none", "--tags", "predict"])
    profile, saturation = plan(args)
    assert (profile["users"], profile["wait"], profile["duration_s"]) == (4, "none", 30)
    assert (saturation["wait"], saturation["tags"]) == ("none", ["predict"])
    assert saturation["users"] == saturation["spawn_rate"] == 4
    assert plan(parser().parse_args(["--saturation-duration", "0"]))[1:] == []


def test_waits():
    assert wait("1:5") == "between:1:5"
    assert wait("none") == "none"


LOCUSTFILE_CHECK = """
import io, json, os
os.environ["SNAPCLASS_IMAGE_SIZE"] = "64x48,40x30"
import locustfile
from PIL import Image

header = 'decode;dur=11.2, preprocess;dur=0.4, inference;dur=29.5, db;dur=1.6, ' \\
         'total;dur=43.4, cache;desc="0/1"'
images = locustfile.images()
name, data = images[0]
first, second = locustfile.made_unique(data), locustfile.made_unique(data)

class Response:
    status_code = 200
    headers = {"Server-Timing": header}

row = locustfile.request_log_row(
    100.0, request_type="POST", name="/predict", response_time=50.0,
    response_length=10, response=Response(), exception=None, start_time=101.5)
print(json.dumps({
    "timing": locustfile.parse_server_timing(header),
    "names": [n for n, _ in images],
    "unique": len({data, first, second}),
    "same_pixels": Image.open(io.BytesIO(first)).tobytes()
        == Image.open(io.BytesIO(data)).tobytes(),
    "row": dict(zip(locustfile.REQUEST_LOG_COLUMNS, map(str, row))),
}))
"""


def test_locustfile_sizes_unique_images_and_server_timing():
    result = subprocess.run(
        [sys.executable, "-c", LOCUSTFILE_CHECK],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["timing"] == {
        "decode": "11.2",
        "preprocess": "0.4",
        "inference": "29.5",
        "db": "1.6",
        "total": "43.4",
        "cache": "0/1",
    }
    assert data["names"] == ["generated-64x48.jpg", "generated-40x30.jpg"]
    assert data["unique"] == 3 and data["same_pixels"]
    row = data["row"]
    assert (row["elapsed_s"], row["inference_ms"], row["total_ms"]) == (
        "1.500",
        "29.5",
        "43.4",
    )
    assert (row["cache_hits"], row["cache_images"], row["ok"]) == ("0", "1", "1")


# --------------------------------------------------------------------------
# End to end


@pytest.mark.server
@pytest.mark.slow
def test_stress_end_to_end_against_a_started_server(tmp_path, model_cache_dir):
    """A few seconds of real load on a Gunicorn the tool starts itself."""
    out = tmp_path / "report"
    command = [
        sys.executable,
        "-m",
        "stress",
        *("-u", "2", "-r", "2", "-t", "4s", "--wait", "0.2:0.5"),
        *("--saturation-duration", "3s", "--no-ceiling", "--workers", "2"),
        *("--model-cache", str(model_cache_dir), "--out", str(out)),
        *("--max-p95-ms", "60000"),
    ]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]

    for name in ("report.md", "summary.json", "run.json", *CHARTS):
        assert (out / name).is_file(), name
    assert int(stats_row(out, "profile", "/predict")["Request Count"]) > 0
    timed = [
        r
        for r in read_requests(out / "requests-saturation.csv")
        if r["name"] == "/predict" and r["ok"]
    ]
    assert timed and all(r["inference"] > 0 for r in timed)
    assert all(r["cache_hits"] == 0 for r in timed)  # unique images by default

    text = (out / "report.md").read_text()
    system = section(text, "System under test")
    assert "Read from the running app" in system
    assert (
        "| model.random_weights | True |" in system and "| server.workers |" in system
    )
    resources = section(text, "Server resources")
    assert "Unavailable" not in resources
    summary = json.loads((out / "summary.json").read_text())
    resources = summary["phases"]["saturation"]["resources"]
    assert resources["server_rss_peak_mb"] > 100 and resources["server_processes"] >= 2
    assert summary["passed"] is True

    assert main(["--report-only", str(out), "--max-p95-ms", "0.001"]) == 1
