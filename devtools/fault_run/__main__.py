"""``make fault-run``: faults under load against a real Gunicorn deployment.

Usage::

    .venv/bin/python -m devtools.fault_run                 # everything (~3 min)
    .venv/bin/python -m devtools.fault_run --backend sqlite --short

It needs root for ``chattr``, ``mount`` and ``pg_ctlcluster`` (scenarios it
cannot run are reported as skipped, with the reason) and writes
``artifacts/fault_run.json`` and ``artifacts/fault_run.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from devtools.fault_run.report import markdown
from devtools.fault_run.runs import run
from devtools.fault_run.scenario import Timing
from devtools.server import ROOT

log = logging.getLogger("fault_run")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.fault_run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--backend", choices=["all", "postgres", "sqlite"], default="all"
    )
    parser.add_argument("--short", action="store_true", help="the CI durations")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "fault_run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    timing = Timing.short() if args.short else Timing()
    timing.clients = args.clients
    backends = ["postgres", "sqlite"] if args.backend == "all" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="snapclass-faults-") as tmp:
        report = run(backends, timing, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    text = markdown(report)
    args.out.with_suffix(".md").write_text(text)
    log.info("%s", text)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
