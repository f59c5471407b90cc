"""``make bench``: the model, the pipeline and the served app, measured in one run.

Prints one report with
  (a) the raw in-process ceiling of each backend (batch 1 and best batch), and
      OpenVINO f32 / bf16 / INT8 at batch 1, 4 and 8 (quantizing once if needed),
  (b) decode + preprocess time, naive vs ours, for small, medium and 12 MP JPEGs,
  (c) the served app (real Gunicorn, real HTTP, random weights) under Locust:
      the seed profile (10 users, spawn 2/s, wait 1-5 s) and saturation (no wait),
  (d) the in-process pipeline ceiling and the served/ceiling ratios,
  (e) worker RSS and start-up time, and a 12 MP photo through /predict at low load,
  (f) batching across requests in process, for several BATCH_MAX_SIZE / DELAY,
  (g) the class activation maps' extra time per image (with and without them).

The served app runs with the defaults and as before issue 15
(OPENVINO_PRECISION=f32 BATCH_MAX_SIZE=1), and with int8 when a model exists.

Usage: python -m bench.bench [--image PATH] [--duration 60] [--layouts] [--only-cam]
With ONEDNN_MAX_CPU_ISA=AVX2 in the environment it measures oneDNN's AVX2
kernels, where `auto` is f32: a stand-in for a CPU without AVX-512.
Everything runs on this machine; the server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

from bench.context import Bench
from bench.context import prepare
from bench.in_process import report_batching
from bench.in_process import report_cam_cost
from bench.in_process import report_model_ceiling
from bench.in_process import report_pipeline_ceiling
from bench.in_process import report_precisions
from bench.in_process import report_preprocessing
from bench.parallel import parallel_ceiling
from bench.program import CORES
from bench.served import layouts_to_serve
from bench.served import report_layouts
from bench.served import report_ratios
from bench.served import report_served
from bench.served import report_workers
from bench.served import serve


def main(argv: list[str] | None = None) -> int:
    """Measure and print the report; this is its table of contents."""
    args = parse_args(argv)
    bench = prepare(args)
    print_header(bench)
    if args.only_cam:
        report_cam_cost(bench)  # (g)
        return 0
    model = report_model_ceiling(bench)  # (a)
    if bench.openvino and not args.skip_precisions:
        report_precisions(bench)  # (a2)
    report_preprocessing(bench)  # (b)
    pipeline = report_pipeline_ceiling(bench, model.backend)  # (d)
    if bench.openvino:
        report_batching(bench)  # (f)
        report_cam_cost(bench)  # (g)
    if args.skip_served:
        return 0
    runs, defaults = serve(bench, layouts_to_serve(bench))
    report_served(bench, runs, defaults)  # (c)
    # This machine's speed drifts; measuring the ceiling again after the served
    # runs and keeping the higher figure keeps a slow moment from flattering us.
    pipeline_after = parallel_ceiling(
        model.backend, bench.cache, "pipeline", bench.image
    )
    report_ratios(model, max(pipeline, pipeline_after), pipeline_after, runs)
    report_workers(defaults)  # (e)
    if args.layouts:
        report_layouts(runs)
    print(f"\n(raw files: {bench.workdir})")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--image",
        type=Path,
        default=None,
        help="photo to post (default: ../shared/images/bay-1365x1365.jpg "
        "or a generated 1365x1365 JPEG)",
    )
    parser.add_argument(
        "--duration",
        type=int,
        default=60,
        help="seconds per Locust profile (default 60)",
    )
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument(
        "--layouts",
        action="store_true",
        help="also measure saturation for several worker/thread layouts",
    )
    parser.add_argument(
        "--skip-served", action="store_true", help="only the in-process measurements"
    )
    parser.add_argument(
        "--only-cam",
        action="store_true",
        help="only (g): the class activation maps' extra time per image",
    )
    parser.add_argument(
        "--skip-precisions",
        action="store_true",
        help="no f32/bf16/int8 table (it quantizes the model once if needed)",
    )
    return parser.parse_args(argv)


def print_header(bench: Bench) -> None:
    machine = platform.processor() or platform.machine()
    print(
        f"# Snapclass benchmark\n\nMachine: {machine}, "
        f"{CORES} cores, Python {platform.python_version()}; image {bench.name} "
        f"({len(bench.data) / 1024:.0f} KiB); random weights."
    )
    from app.inference.openvino_runtime import onednn_isa_cap

    cap = onednn_isa_cap()
    if cap:
        print(
            f"\noneDNN is capped at {cap} (ONEDNN_MAX_CPU_ISA) in every process "
            "of this run: its kernels are those of a CPU with that instruction "
            "set, on this CPU's cores and caches."
        )


if __name__ == "__main__":
    sys.exit(main())
