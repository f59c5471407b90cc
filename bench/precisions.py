"""(a2) OpenVINO's precisions at batch 1, 4 and 8, and how far each moves scores.

Every precision is loaded in one process and they take turns, round after
round, so that the machine's drift hits them alike. ``python -m
bench.precisions --image photo.jpg --precisions f32,bf16,int8`` answers, by
precision: the variant that ran, images/s at each batch (``"1"``, ``"4"``,
``"8"``) and the largest softmax difference from f32 on the photo
(``max_diff``). f32 must be among them: it is the reference.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np

from bench import program

BATCHES = (1, 4, 8)


def precision_ceilings(cache: Path, image: Path, precisions: list[str]) -> dict:
    """Images/s of each precision at batch 1, 4 and 8 (all cores), and the
    largest softmax difference from f32 on ``image``."""
    return program.run(
        "precisions",
        *("--cache", cache, "--image", image, "--threads", program.CORES),
        *("--rounds", 12, "--precisions", ",".join(precisions)),
        timeout_s=900,
    )


def ensure_int8(cache: Path, photos: list[bytes]) -> bool:
    """An INT8 model of the random weights in ``cache``, quantized once with
    ``photos`` for calibration; False when NNCF is missing."""
    from app.inference import find_quantized
    from app.inference import parse_weights
    from app.inference import quantize_model

    spec = parse_weights("random")
    if find_quantized(cache, spec) is not None:
        return True
    try:
        quantize_model(spec, cache, photos)
    except ImportError:
        return False
    return True


def measure(
    cache: Path, image: Path, threads: int, rounds: int, precisions: list[str]
) -> dict:
    """Each precision's images/s at each batch, and its distance from f32."""
    from app.inference import OpenVINORuntime
    from app.inference import parse_weights
    from app.inference.images import decode_image
    from app.inference.images import preprocess_batch

    spec = parse_weights("random")
    runtimes = {}
    for precision in precisions:
        runtime = OpenVINORuntime(spec, cache, threads=threads, precision=precision)
        runtime.load()
        runtimes[precision] = runtime
    photo = preprocess_batch([decode_image(image.read_bytes(), max_pixels=10**9)])
    x = np.concatenate([photo] * max(BATCHES))
    steps = {
        (precision, batch): partial(runtime, x[:batch])
        for precision, runtime in runtimes.items()
        for batch in BATCHES
    }
    times = program.interleaved(steps, rounds)
    reference = runtimes["f32"](photo)[0]
    return {
        precision: {
            "ran": runtime.variant,
            "max_diff": float(np.abs(runtime(photo)[0] - reference).max()),
            **{
                str(batch): batch / program.median(times[(precision, batch)])
                for batch in BATCHES
            },
        }
        for precision, runtime in runtimes.items()
    }


def options() -> argparse.ArgumentParser:
    """The command line: every argument of :func:`measure`."""
    parser = program.parser("precisions", __doc__)
    parser.add_argument("--image", type=Path, required=True, help="a photo")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument(
        "--precisions",
        type=lambda text: text.split(","),
        default=["f32", "bf16"],
        help="comma-separated, f32 among them (default: f32,bf16)",
    )
    return parser


if __name__ == "__main__":
    sys.exit(program.main(options(), measure))
