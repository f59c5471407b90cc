"""What the bench programs share: how one is started, answers and times.

Each measurement that needs clean thread pools runs as a program of its own,
``python -m bench.<name> --option value ...``, in a fresh interpreter; it
prints its result as one JSON line, the last on its standard output. The
programs import the app's inference package only inside the functions that
measure, so that the bench command and the tests import them cheaply.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Hashable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The cores this process may run on: thread pools and process counts follow it.
CORES = len(os.sched_getaffinity(0))


def model_cache() -> Path:
    """Where the converted models are: MODEL_CACHE_DIR, else instance/models."""
    return Path(os.environ.get("MODEL_CACHE_DIR") or ROOT / "instance" / "models")


def parser(name: str, doc: str) -> argparse.ArgumentParser:
    """A program's argument parser with the options every program takes."""
    out = argparse.ArgumentParser(
        prog=f"python -m bench.{name}", description=doc.splitlines()[0]
    )
    out.add_argument(
        "--cache",
        type=Path,
        default=model_cache(),
        help="converted models (default: MODEL_CACHE_DIR or instance/models)",
    )
    out.add_argument(
        "--threads",
        type=int,
        default=CORES,
        help=f"inference threads (default: the {CORES} cores)",
    )
    return out


def load_classifier(backend: str, threads: int, cache: Path, **settings: Any):
    """The random-weights classifier, loaded, with ``threads`` inference
    threads and ``settings`` for ``build_classifier``."""
    from app.inference import build_classifier

    classifier = build_classifier(
        "random",
        backend=backend,
        intra_op_threads=threads,
        model_cache_dir=cache,
        **settings,
    )
    classifier.load()
    return classifier


def command(name: str, *args: object) -> list[str]:
    """The command line of ``python -m bench.<name> <args>``."""
    return [sys.executable, "-m", f"bench.{name}", *map(str, args)]


def environment() -> dict[str, str]:
    """This process's environment, without TensorFlow's C++ log lines."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run(name: str, *args: object, timeout_s: float) -> Any:
    """Run ``bench.<name>`` to its end and return its answer; RuntimeError
    with the end of its standard error when it fails."""
    result = subprocess.run(
        command(name, *args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=environment(),
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-1500:])
    return answer_in(result.stdout)


def main(
    options: argparse.ArgumentParser,
    measure: Callable[..., Any],
    argv: list[str] | None = None,
) -> int:
    """A program's entry: ``measure`` with the parsed options as keywords,
    its result printed as the answer."""
    answer(measure(**vars(options.parse_args(argv))))
    return 0


def answer(value: Any) -> None:
    """Print ``value`` as the program's answer: one JSON line."""
    print(json.dumps(value), flush=True)


def answer_in(output: str) -> Any:
    """The answer a program printed: the JSON on its last line."""
    return json.loads(output.strip().splitlines()[-1])


def median(values: list[float]) -> float:
    """The middle value; of an even count the upper middle one, as the bench
    has always reported it."""
    return sorted(values)[len(values) // 2]


def interleaved(
    steps: dict[Hashable, Callable[[], object]], rounds: int
) -> dict[Hashable, list[float]]:
    """Seconds per call of each step after one untimed call of each; the
    steps take turns, round after round, so that the machine's drift hits
    them alike."""
    for step in steps.values():
        step()
    times: dict[Hashable, list[float]] = {key: [] for key in steps}
    for _ in range(rounds):
        for key, step in steps.items():
            started = time.perf_counter()
            step()
            times[key].append(time.perf_counter() - started)
    return times


def timed(step: Callable[[], object], runs: int) -> list[float]:
    """Seconds per call of ``step``, ``runs`` times after one untimed call."""
    return interleaved({"step": step}, runs)["step"]
