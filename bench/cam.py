"""(g) The class activation maps' extra time: the model with and without them.

The served model is loaded twice, with and without its second output (the last
conv block); "with" includes the top-5 and the maps (numpy), as classify does.
Both take turns in one process, so that the machine's drift hits them alike.
``python -m bench.cam --image photo.jpg`` answers the variant that ran and, in
``ms``, the median ms per call at batch 1 and 4 of ``without``, ``with`` and
``maps`` (the maps alone), and ``extra``: the median of each round's with -
without.
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path

import numpy as np

from bench import program

BATCHES = (1, 4)
TOP = 5


def cam_cost(cache: Path, image: Path, rounds: int = 100) -> dict:
    """Median ms per call with and without the maps' second output, batch 1
    and 4, at the served precision (OPENVINO_PRECISION, default auto)."""
    from app.inference import DEFAULT_PRECISION

    precision = os.environ.get("OPENVINO_PRECISION") or DEFAULT_PRECISION
    return program.run(
        "cam",
        *("--cache", cache, "--image", image, "--threads", program.CORES),
        *("--rounds", rounds, "--precision", precision),
        timeout_s=900,
    )


def top_classes(probabilities: np.ndarray) -> np.ndarray:
    """The :data:`TOP` most likely classes of each image, best first."""
    return np.argsort(probabilities, axis=1)[:, ::-1][:, :TOP]


def measure(
    cache: Path, image: Path, threads: int, rounds: int, precision: str
) -> dict:
    """Median ms with and without the maps, and the paired extra."""
    from app.inference import OpenVINORuntime
    from app.inference import parse_weights
    from app.inference.cam import activation_maps
    from app.inference.images import decode_image
    from app.inference.images import preprocess_batch

    spec = parse_weights("random")
    plain, mapped = (
        OpenVINORuntime(
            spec, cache, threads=threads, precision=precision, features=features
        )
        for features in (False, True)
    )
    plain.load()
    mapped.load()
    photo = preprocess_batch([decode_image(image.read_bytes(), max_pixels=10**9)])
    x = np.concatenate([photo] * max(BATCHES))
    _, features = mapped.forward(x)
    class_ids = np.tile(np.arange(TOP), (max(BATCHES), 1))

    def without(batch: int) -> None:
        top_classes(plain(x[:batch]))

    def with_maps(batch: int) -> None:
        probabilities, batch_features = mapped.forward(x[:batch])
        activation_maps(
            batch_features, mapped.class_weights, top_classes(probabilities)
        )

    def maps_only(batch: int) -> None:
        activation_maps(features[:batch], mapped.class_weights, class_ids[:batch])

    work = {"without": without, "with": with_maps, "maps": maps_only}
    steps = {
        (name, batch): partial(step, batch)
        for batch in BATCHES
        for name, step in work.items()
    }
    times = program.interleaved(steps, rounds)
    ms = {
        f"{name}:{batch}": 1000 * program.median(t)
        for (name, batch), t in times.items()
    }
    for batch in BATCHES:
        # Paired: each round's with - without, so that drift between rounds cancels.
        pairs = zip(times[("with", batch)], times[("without", batch)], strict=True)
        ms[f"extra:{batch}"] = 1000 * program.median([w - wo for w, wo in pairs])
    return {"ran": mapped.variant, "ms": ms}


def options() -> argparse.ArgumentParser:
    """The command line: every argument of :func:`measure`."""
    parser = program.parser("cam", __doc__)
    parser.add_argument("--image", type=Path, required=True, help="a photo")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument(
        "--precision", default="auto", help="OPENVINO_PRECISION (default: auto)"
    )
    return parser


if __name__ == "__main__":
    sys.exit(program.main(options(), measure))
