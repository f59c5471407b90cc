"""(f) Batching across requests, in process, for several BATCH_MAX_SIZE / DELAY.

One classifier per configuration, as one worker runs it (all cores' inference
threads); ``--clients`` threads each decode and classify the photo in a loop
for ``--seconds``; the configurations take turns for ``--rounds``. ``python -m
bench.batching --image photo.jpg --configs 1:0,4:5`` answers a list with, per
configuration: images/s, p50 and p95 ms, the mean batch and the precision.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from bench import program

# BATCH_MAX_SIZE:BATCH_MAX_DELAY_MS, the first one unbatched (the reference).
CONFIGS = "1:0,2:0,4:0,8:0,4:5,8:10"


def batching_in_process(
    cache: Path, image: Path, *, clients: int = 8, seconds: int = 8, rounds: int = 3
) -> list[dict]:
    """Each configuration of :data:`CONFIGS`, measured as the module says."""
    return program.run(
        "batching",
        *("--cache", cache, "--image", image, "--threads", program.CORES),
        *("--seconds", seconds, "--rounds", rounds, "--clients", clients),
        *("--configs", CONFIGS),
        timeout_s=1200,
    )


def parse_configs(text: str) -> list[tuple[int, int]]:
    """``"1:0,4:5"`` -> ``[(1, 0), (4, 5)]`` (size, delay in ms)."""
    return [
        (int(size), int(delay))
        for size, delay in (item.split(":") for item in text.split(","))
    ]


@dataclass
class Tally:
    """What the clients of one configuration saw, over all rounds."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)

    def summary(self, size: int, delay: int, precision: str) -> dict:
        latencies = sorted(self.latencies)
        return {
            "size": size,
            "delay": delay,
            "img_s": len(latencies) / self.seconds,
            "p50": 1000 * latencies[len(latencies) // 2],
            "p95": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
            "batch": sum(self.batch_sizes) / len(self.batch_sizes),
            "precision": precision,
        }


def drive(classifier, data: bytes, tally: Tally, clients: int, seconds: float):
    """``clients`` threads decoding and classifying ``data`` for ``seconds``."""
    stop = time.perf_counter() + seconds

    def client() -> None:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            result = classifier.classify([classifier.decode(data)])
            tally.latencies.append(time.perf_counter() - started)
            tally.batch_sizes.append(result.network_batch_size)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally.seconds += time.perf_counter() - started


def measure(
    cache: Path,
    image: Path,
    configs: list[tuple[int, int]],
    *,
    threads: int,
    clients: int,
    seconds: float,
    rounds: int,
) -> list[dict]:
    """Each configuration's throughput, latency and mean batch."""
    classifiers = {
        (size, delay): program.load_classifier(
            "openvino", threads, cache, batch_max_size=size, batch_max_delay_ms=delay
        )
        for size, delay in configs
    }
    data = image.read_bytes()
    tallies = {config: Tally() for config in configs}
    for _ in range(rounds):
        for config, tally in tallies.items():
            drive(classifiers[config], data, tally, clients, seconds)
    return [
        tally.summary(*config, classifiers[config].info.precision)
        for config, tally in tallies.items()
    ]


def options() -> argparse.ArgumentParser:
    """The command line: every argument of :func:`measure`."""
    parser = program.parser("batching", __doc__)
    parser.add_argument("--image", type=Path, required=True, help="a photo")
    parser.add_argument("--configs", type=parse_configs, default=CONFIGS)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    return parser


if __name__ == "__main__":
    sys.exit(program.main(options(), measure))
