"""``make soak``: a long run at ~70 % of capacity; failures and worker RSS growth.

Starts the real server (Gunicorn, random weights, ``RESULT_CACHE=false`` so that
every request runs the model) and drives it with the project's Locust file,
headless, ``--tags predict``: simulated browsers and API clients post the
generated 1365x1365 JPEG. The request rate is set by the number of users and
their think time (``SNAPCLASS_WAIT=between:0.5:1.5``, 1 s on average):
``users = rate x (1 s + expected response time)``. Unless ``--rate`` is given,
the rate is 70 % of the saturation measured first on the same server (Locust,
10 users with no think time, ``CALIBRATION_S`` seconds), so the run means the
same on a fast machine and a slow one.

Every few seconds it reads each worker's ``VmRSS`` from ``/proc``. RSS growth
is the median of the last samples minus the median of the samples right after
the warm-up (the first requests allocate the model's buffers and the malloc
arenas); the slope (MiB per minute, least squares over the run after the
warm-up) tells a leak from a plateau.

Usage::

    .venv/bin/python -m devtools.soak                    # 10 minutes
    .venv/bin/python -m devtools.soak --duration 45 --rate 8

Writes ``artifacts/soak.json`` and ``artifacts/soak.md``; exits 1 on any
failed request, a worker restart, or RSS growth over ``--max-growth-mib``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from devtools import locust
from devtools.database import fresh_postgres_database
from devtools.polling import Poller
from devtools.server import ROOT
from devtools.server import LiveServer
from devtools.server import proc_status
from devtools.server import start_server

log = logging.getLogger("soak")

LOAD_FRACTION = 0.7  # of the saturation measured on the same server
CALIBRATION_S = 10
MEAN_WAIT_S = 1.0
SOAK_DATABASE = "snapclass_soak"
EXPECTED_RESPONSE_S = 0.15  # at ~70 % load (p50 ~ 0.1 s, queueing on top)


class RssSampler(Poller):
    """Samples VmRSS of the master's workers every ``every_s`` seconds."""

    def __init__(self, server: LiveServer, every_s: float) -> None:
        super().__init__(every_s)
        self.server = server
        self.samples: list[tuple[float, int, int]] = []  # (t, pid, KiB)
        self.worker_sets: list[list[int]] = []
        self.t0 = time.monotonic()

    def sample(self) -> None:
        now = time.monotonic() - self.t0
        pids = sorted(self.server.workers())
        if not self.worker_sets or self.worker_sets[-1] != pids:
            self.worker_sets.append(pids)
        for pid in pids:
            try:
                self.samples.append((now, pid, proc_status(pid)["VmRSS"]))
            except (OSError, KeyError):
                pass  # the worker exited between listing and reading


def rss_growth(
    samples: list[tuple[float, int, int]], warmup_s: float, window_s: float
) -> dict[str, dict]:
    """Per worker: RSS after the warm-up, at the end, growth and slope (MiB)."""
    out = {}
    for pid in sorted({pid for _, pid, _ in samples}):
        mine = [(t, kib / 1024) for t, p, kib in samples if p == pid and t >= warmup_s]
        if len(mine) < 2:
            continue
        start, end = mine[0][0], mine[-1][0]
        first = [m for t, m in mine if t <= start + window_s]
        last = [m for t, m in mine if t >= end - window_s]
        times = [t for t, _ in mine]
        values = [m for _, m in mine]
        slope = statistics.linear_regression(times, values).slope if end > start else 0
        out[str(pid)] = {
            "after_warmup_mib": round(statistics.median(first), 1),
            "end_mib": round(statistics.median(last), 1),
            "peak_mib": round(max(values), 1),
            "growth_mib": round(statistics.median(last) - statistics.median(first), 1),
            "slope_mib_per_min": round(slope * 60, 2),
            "samples": len(mine),
        }
    return out


def run_locust(
    server: LiveServer,
    users: int,
    duration_s: int,
    csv_prefix: Path,
    wait: str = f"between:{MEAN_WAIT_S / 2}:{MEAN_WAIT_S * 1.5}",
) -> dict:
    """Locust headless, predict tasks only; returns the aggregated numbers."""
    profile = locust.Profile(
        users, max(1, users // 5), duration_s, wait, ["predict"], stop_timeout_s=30
    )
    result = locust.run(
        server.url, csv_prefix, profile, env={"LOCUST_LOGLEVEL": "WARNING"}
    )
    stats = result.stats()
    total = stats["Aggregated"]
    predict = stats.get("/predict", total)
    failures = [
        f"{row['Occurrences']} x {row['Name']}: {row['Error']}"
        for row in result.failures()
    ]
    return {
        "exit_code": result.exit_code,
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "predict_requests": int(predict["Request Count"]),
        "predict_rps": round(float(predict["Requests/s"]), 2),
        "predict_p50_ms": float(predict["50%"]),
        "predict_p95_ms": float(predict["95%"]),
        "predict_p99_ms": float(predict["99%"]),
        "failure_kinds": failures[:10],
        "stderr_tail": result.output()[-2000:] if result.exit_code else "",
    }


def users_for(rate: float) -> int:
    return max(1, round(rate * (MEAN_WAIT_S + EXPECTED_RESPONSE_S)))


def saturation_rps(server: LiveServer, csv_prefix: Path) -> float:
    """/predict req/s with 10 users and no think time (also warms the workers)."""
    result = run_locust(server, 10, CALIBRATION_S, csv_prefix, wait="none")
    if result["exit_code"] != 0 or result["predict_rps"] <= 0:
        raise RuntimeError(f"calibration run failed: {result}")
    return result["predict_rps"]


# Above the users a soak runs (70 % of a 2-core server's ~56 req/s: 45).
SOAK_INFLIGHT = 96


def soak(
    workdir: Path,
    *,
    duration_s: int,
    rate: float | None = None,
    users: int | None = None,
    sample_every_s: float = 5.0,
    warmup_s: float | None = None,
    database_url: str | None = None,
    model_cache: Path | None = None,
) -> dict:
    """One soak run; the report says what happened (the caller judges it).

    Without ``rate``, runs at ``LOAD_FRACTION`` of the saturation measured
    on the same server first."""
    warmup_s = warmup_s if warmup_s is not None else min(60.0, duration_s / 4)
    database_url = database_url or f"sqlite:///{workdir / 'soak.sqlite3'}"
    # The soak looks for failures and leaks under sustained load, not for the
    # overload guard (tests/test_overload_server.py does): its server admits
    # every user's request, so that the ramp-up, when every Locust user signs
    # up (argon2, ~0.3 core-s each), queues uploads instead of shedding them
    # with 503 (docs/reliability.md, "Where the soak's tail comes from").
    server = start_server(
        workdir / "server",
        database_url,
        model_cache_dir=model_cache,
        RESULT_CACHE="false",
        GUNICORN_ACCESS_LOG="",
        REQUEST_LOG="false",
        MAX_INFLIGHT_PER_WORKER=str(SOAK_INFLIGHT),
        GUNICORN_THREADS=str(SOAK_INFLIGHT + 8),
    )
    sampler = RssSampler(server, sample_every_s)
    try:
        capacity = None
        if rate is None:
            capacity = saturation_rps(server, workdir / "calibration")
            rate = round(LOAD_FRACTION * capacity, 1)
        users = users or users_for(rate)
        sampler.start()
        locust = run_locust(server, users, duration_s, workdir / "locust")
        sampler.stop()
        log_text = server.log()
    finally:
        sampler.stop()
        server.stop()
    window = max(sample_every_s * 2, min(60.0, duration_s / 8))
    return {
        "duration_s": duration_s,
        "target_rps": rate,
        "measured_saturation_rps": capacity,
        "users": users,
        "database": database_url.split(":", 1)[0],
        "locust": locust,
        "rss": rss_growth(sampler.samples, warmup_s, window),
        "rss_window_s": window,
        "rss_samples_mib": [
            (round(t, 1), pid, round(kib / 1024, 1)) for t, pid, kib in sampler.samples
        ],
        "warmup_s": warmup_s,
        "worker_sets": sampler.worker_sets,
        "worker_restarts": len(sampler.worker_sets) - 1,
        "server_tracebacks": log_text.count("Traceback"),
    }


def problems(report: dict, max_growth_mib: float) -> list[str]:
    found = []
    locust = report["locust"]
    if locust["failures"]:
        found.append(f"{locust['failures']} failed requests: {locust['failure_kinds']}")
    if locust["predict_requests"] == 0:
        found.append("no /predict request was made")
    if report["worker_restarts"]:
        found.append(f"workers changed: {report['worker_sets']}")
    if report["server_tracebacks"]:
        found.append(f"{report['server_tracebacks']} tracebacks in the server log")
    for pid, rss in report["rss"].items():
        if rss["growth_mib"] > max_growth_mib:
            found.append(f"worker {pid} grew {rss['growth_mib']} MiB")
    return found


def markdown(report: dict) -> str:
    locust = report["locust"]
    lines = [
        f"Soak: {report['duration_s']} s, target {report['target_rps']} req/s with "
        f"{report['users']} users, database {report['database']}"
        + (
            f" (saturation measured first: {report['measured_saturation_rps']} req/s)."
            if report.get("measured_saturation_rps")
            else "."
        ),
        "",
        f"/predict: {locust['predict_requests']} requests, {locust['predict_rps']} "
        f"req/s, p50 {locust['predict_p50_ms']:.0f} ms, p95 "
        f"{locust['predict_p95_ms']:.0f} ms, p99 {locust['predict_p99_ms']:.0f} ms; "
        f"failures (all requests): {locust['failures']} of {locust['requests']}.",
        "",
        "| worker | RSS after warm-up MiB | end MiB | peak MiB | growth MiB "
        "| slope MiB/min | samples |",
        "|---|---|---|---|---|---|---|",
    ]
    for pid, rss in report["rss"].items():
        lines.append(
            f"| {pid} | {rss['after_warmup_mib']} | {rss['end_mib']} | "
            f"{rss['peak_mib']} | {rss['growth_mib']} | {rss['slope_mib_per_min']} "
            f"| {rss['samples']} |"
        )
    lines += [
        "",
        f"Worker restarts: {report['worker_restarts']}; tracebacks in the server "
        f"log: {report['server_tracebacks']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=600, help="seconds")
    parser.add_argument(
        "--rate",
        type=float,
        help="req/s (default: 70%% of the saturation measured first)",
    )
    parser.add_argument("--users", type=int, help="override the computed count")
    parser.add_argument("--sample-every", type=float, default=5.0)
    parser.add_argument("--max-growth-mib", type=float, default=64.0)
    parser.add_argument(
        "--postgres",
        action="store_true",
        help=f"use a fresh local PostgreSQL database {SOAK_DATABASE} (else SQLite)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "soak")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="snapclass-soak-") as tmp:
        report = soak(
            Path(tmp),
            duration_s=args.duration,
            rate=args.rate,
            users=args.users,
            sample_every_s=args.sample_every,
            database_url=fresh_postgres_database(SOAK_DATABASE)
            if args.postgres
            else None,
        )
    report["problems"] = problems(report, args.max_growth_mib)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    text = markdown(report) + "\nProblems: " + ("; ".join(report["problems"]) or "none")
    args.out.with_suffix(".md").write_text(text + "\n")
    log.info("%s", text)
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
