"""Stress-test Snapclass and write a report: ``python -m stress --help``.

By default: start Gunicorn on 127.0.0.1 with random weights, run the seed
profile (10 users, spawn 2/s, 30 s, 1-5 s think time), then a 20 s no-wait
saturation run posting images only, measure the raw model ceiling, and write
reports/stress-<time>/report.md with charts, Locust's CSVs and summary.json.

Exit status: 0 passed (or no thresholds), 1 a threshold failed, 2 bad
arguments, 3 the run itself failed (server did not start, Locust crashed).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
import time
from datetime import datetime
from importlib import metadata
from pathlib import Path

from devtools.server import DEFAULT_MODEL_CACHE
from devtools.server import ROOT

from .measure import machine
from .measure import model_ceiling
from .measure import run_phase
from .measure import server_settings
from .measure import system_under_test
from .measure import target
from .report import Limits
from .report import build

log = logging.getLogger("stress")
DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")


def duration(text: str) -> int:
    """Seconds from ``30``, ``30s``, ``2m`` or ``1m30s``."""
    match = DURATION.match(text.strip())
    if not match or not text.strip():
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30s, 2m)")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def ratio(text: str) -> float:
    """A failure rate: ``0``, ``0.01`` or ``1%``."""
    value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"not a rate between 0 and 1: {text!r}")
    return value


def wait(text: str) -> str:
    """``1:5`` (seconds between tasks) or ``none``, as SNAPCLASS_WAIT wants it."""
    if text == "none":
        return text
    try:
        low, high = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"wait is LOW:HIGH seconds or none, not {text!r}"
        ) from None
    return f"between:{low:g}:{high:g}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m stress",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ours = "of the server we start"
    where = p.add_argument_group("target (default: start Gunicorn on 127.0.0.1)")
    where.add_argument("--host", help="URL of a running deployment instead")
    where.add_argument("--token", help="API token, to read /api/system with --host")
    where.add_argument("--workers", type=int, help=f"WEB_CONCURRENCY {ours}")
    where.add_argument("--threads", type=int, help=f"GUNICORN_THREADS {ours}")
    where.add_argument("--intra-op-threads", type=int, help=f"INTRA_OP_THREADS {ours}")
    where.add_argument("--backend", help=f"INFERENCE_BACKEND {ours}")
    where.add_argument("--result-cache", choices=("on", "off"), default="on")
    where.add_argument(
        "--server-env", action="append", default=[], metavar="NAME=VALUE"
    )
    where.add_argument("--model-cache", type=Path, default=DEFAULT_MODEL_CACHE)

    load = p.add_argument_group("load profile (default: the seed profile)")
    load.add_argument("-u", "--users", type=int, default=10)
    load.add_argument("-r", "--spawn-rate", type=float, default=2.0, help="users/s")
    load.add_argument("-t", "--duration", type=duration, default="30s")
    load.add_argument("--wait", type=wait, default="1:5", help="LOW:HIGH s or none")
    load.add_argument("--tags", nargs="*", default=[], help="Locust task tags")
    load.add_argument("--user-classes", nargs="*", default=[], help="default: all")
    load.add_argument("--images", help="a folder of images to post")
    load.add_argument("--image-size", default="1365x1365", help="generated photos")
    load.add_argument(
        "--repeat-images", action="store_true", help="identical bytes: the cache"
    )

    capacity = p.add_argument_group("capacity")
    capacity.add_argument(
        "--saturation-duration", type=duration, default="20s", help="0 skips it"
    )
    capacity.add_argument("--saturation-users", type=int, help="default: --users")
    capacity.add_argument(
        "--ceiling",
        action=argparse.BooleanOptionalAction,
        help="measure the raw model ceiling (default: when we start the server)",
    )

    gate = p.add_argument_group("pass/fail on the profile (exit 1)")
    gate.add_argument("--max-p95-ms", type=float, help="after sign-up")
    gate.add_argument("--max-p99-ms", type=float, help="after sign-up")
    gate.add_argument("--max-failure-rate", type=ratio, help="0, 0.01 or 1%%")
    gate.add_argument("--min-rps", type=float, help="after sign-up")

    out = p.add_argument_group("report")
    out.add_argument("--baseline", type=Path, metavar="FOLDER")
    out.add_argument("--out", type=Path, metavar="FOLDER", help="reports/stress-<t>")
    out.add_argument(
        "--report-only", type=Path, metavar="FOLDER", help="rebuild from its data"
    )
    return p


def phase(name, users, spawn, seconds, wait="none", tags=("predict",)) -> dict:
    """One Locust run as run.json records it."""
    return {
        "name": name,
        "kind": name,
        "users": users,
        "spawn_rate": float(spawn),
        "duration_s": seconds,
        "wait": wait,
        "tags": list(tags),
    }


def plan(args) -> list[dict]:
    """The profile, then (unless its duration is 0) saturation: images only,
    no wait, so that its images/s compares with the model ceiling."""
    a = args
    phases = [phase("profile", a.users, a.spawn_rate, a.duration, a.wait, a.tags)]
    users = a.saturation_users or a.users
    if a.saturation_duration:
        phases.append(phase("saturation", users, users, a.saturation_duration))
    return phases


def run_config(args) -> dict:
    """The settings a reader of the report needs (written to run.json)."""
    return {
        "server_settings": None if args.host else server_settings(args),
        "user_classes": args.user_classes,
        "images": args.images or f"generated JPEG {args.image_size}",
        "unique_images": not args.repeat_images,
        "locust_version": metadata.version("locust"),
        "command": " ".join(sys.argv[1:]),
    }


def write_meta(folder: Path, meta: dict) -> None:
    (folder / "run.json").write_text(json.dumps(meta, indent=2) + "\n")


def measure(args, folder: Path) -> None:
    """Run every phase against the target and record everything in folder."""
    meta = {
        "created": datetime.now().isoformat(timespec="seconds"),
        "config": run_config(args),
        "machine": machine(),
        "phases": [],
    }
    with target(args, folder) as where:
        meta.update(target=where.url, started_here=where.started_here)
        meta["system"] = system_under_test(where.url, where.token)
        for planned in plan(args):
            log.info("phase %s: %s s ...", planned["name"], planned["duration_s"])
            meta["phases"].append(run_phase(planned, where, folder, args))
            write_meta(folder, meta)  # keep what we have if a later phase fails
    # By default only when the server ran here: a remote server's ceiling
    # is another machine's.
    if args.ceiling if args.ceiling is not None else not args.host:
        backend = meta["system"].get("model", {}).get("backend") or "openvino"
        log.info("raw model ceiling (%s) ...", backend)
        meta["ceiling"] = model_ceiling(backend, args.model_cache)
    elif args.host:
        meta["ceiling"] = {
            "unavailable": "not measured: the server runs elsewhere (--host); "
            "--ceiling measures this machine anyway"
        }
    else:
        meta["ceiling"] = {"unavailable": "not measured (--no-ceiling)"}
    write_meta(folder, meta)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="stress: %(message)s")
    args = parser().parse_args(argv)
    folder = args.report_only
    if folder is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder = args.out or ROOT / "reports" / f"stress-{stamp}"
        folder.mkdir(parents=True, exist_ok=True)
        log.info("report folder: %s", folder)
        try:
            measure(args, folder)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            log.error("the run failed: %s", exc)
            return 3
    limits = Limits(
        args.max_p95_ms, args.max_p99_ms, args.max_failure_rate, args.min_rps
    )
    result = build(folder, limits, args.baseline)
    log.info("report: %s", result.report)
    for check in result.checks:
        log.info(
            "%s: measured %.4g, limit %.4g: %s",
            check.name,
            check.measured,
            check.limit,
            "pass" if check.passed else "FAIL",
        )
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
