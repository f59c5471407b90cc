"""(a) The network alone, in one process: ms and images/s at batch 1 to 8.

``python -m bench.raw --backend openvino`` answers ``{"1": {"ms": ..., "img_s":
...}, "2": ...}`` for random input. :func:`raw_ceiling` runs it in a process of
its own, so that each backend starts with clean thread pools; ``make stress``
reports the same ceiling.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np

from bench import program

BATCHES = (1, 2, 4, 8)


def raw_ceiling(backend: str, threads: int, cache: Path) -> dict[int, dict]:
    """Batch size -> ``{"ms", "img_s"}`` of ``backend`` on ``threads`` threads."""
    answer = program.run(
        "raw",
        *("--backend", backend, "--threads", threads, "--cache", cache),
        timeout_s=600,
    )
    return {int(batch): figures for batch, figures in answer.items()}


def runs_for(batch: int) -> int:
    """Timed calls at ``batch``: fewer for larger batches, never under 6."""
    return 40 if batch == 1 else max(6, 24 // batch)


def measure(backend: str, threads: int, cache: Path) -> dict[int, dict]:
    """Median ms and images/s of the random-weights network at each batch."""
    classifier = program.load_classifier(backend, threads, cache, inter_op_threads=1)
    rng = np.random.default_rng(0)
    out = {}
    for batch in BATCHES:
        x = rng.uniform(-120, 150, size=(batch, 224, 224, 3)).astype("float32")
        seconds = program.median(
            program.timed(partial(classifier.runtime, x), runs_for(batch))
        )
        out[batch] = {"ms": seconds * 1000, "img_s": batch / seconds}
    return out


def options() -> argparse.ArgumentParser:
    """The command line: every argument of :func:`measure`."""
    parser = program.parser("raw", __doc__)
    parser.add_argument(
        "--backend", choices=["tensorflow", "openvino"], default="openvino"
    )
    return parser


if __name__ == "__main__":
    sys.exit(program.main(options(), measure))
