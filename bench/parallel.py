"""(a) and (d) under load: several copies of one loop, started together.

The served layout runs one model per core, one image at a time each
(gunicorn.conf.py), and one single-threaded model per core gets more out of the
cores than one model using them all; so a ceiling measured only with one
process would flatter the served numbers. :func:`parallel_ceiling` starts
``processes`` copies of ``python -m bench.parallel --work model|pipeline``;
each loads the model, says ``ready``, waits for a line on its standard input so
that all start at the same moment, loops for ``--seconds`` and answers
``{"img_s": ...}``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from bench import program

READY = "ready"
WORK = ("model", "pipeline")


def parallel_ceiling(
    backend: str,
    cache: Path,
    work: str,
    image: Path | None = None,
    *,
    processes: int = program.CORES,
    threads: int = 1,
    seconds: int = 10,
) -> float:
    """Images/s of ``work`` ("model": batch-1 inference, "pipeline": decode +
    preprocess + infer) summed over ``processes`` running at once; by default
    one single-threaded process per core."""
    command = program.command(
        "parallel",
        *("--backend", backend, "--threads", threads, "--cache", cache),
        *("--work", work, "--seconds", seconds),
        *(("--image", image) if image else ()),
    )
    children = [
        subprocess.Popen(
            command,
            cwd=program.ROOT,
            env=program.environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            if child.stdout.readline().strip() != READY:
                raise RuntimeError(child.communicate(timeout=60)[1][-1500:])
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        total = 0.0
        for child in children:
            out, err = child.communicate(timeout=seconds + 120)
            if child.returncode != 0:
                raise RuntimeError(err[-1500:])
            total += program.answer_in(out)["img_s"]
        return total
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()


def step_for(classifier, work: str, image: Path | None) -> Callable[[], object]:
    """One image's ``work``: the network on random input, or the whole
    pipeline (decode, preprocess, infer) on ``image``."""
    if work == "model":
        rng = np.random.default_rng(0)
        x = rng.uniform(-120, 150, (1, 224, 224, 3)).astype("float32")
        return partial(classifier.runtime, x)
    if image is None:
        raise ValueError("--work pipeline needs --image")
    data = image.read_bytes()
    return lambda: classifier.classify([classifier.decode(data)])


def measure(
    backend: str,
    threads: int,
    cache: Path,
    work: str,
    image: Path | None,
    seconds: float,
) -> dict:
    """Load, warm up, say ready, wait for the go, then count images/s."""
    classifier = program.load_classifier(backend, threads, cache, inter_op_threads=1)
    step = step_for(classifier, work, image)
    for _ in range(3):
        step()
    print(READY, flush=True)
    sys.stdin.readline()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        count += 1
    return {"img_s": count / (time.perf_counter() - started)}


def options() -> argparse.ArgumentParser:
    """The command line: every argument of :func:`measure`."""
    parser = program.parser("parallel", __doc__)
    parser.add_argument(
        "--backend", choices=["tensorflow", "openvino"], default="openvino"
    )
    parser.add_argument("--work", choices=WORK, default="model")
    parser.add_argument("--image", type=Path, help="the photo (--work pipeline)")
    parser.add_argument("--seconds", type=float, default=10)
    return parser


if __name__ == "__main__":
    sys.exit(program.main(options(), measure))
