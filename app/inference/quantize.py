"""INT8 by post-training quantization (NNCF), and how close each precision is.

``quantize`` runs ``nncf.quantize`` on the converted OpenVINO model with a
calibration set of photos and caches the result beside the converted model,
keyed by the weights' fingerprint and the calibration set. ``compare`` runs
each precision against f32 on the same photos.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InferenceError
from .images import decode_image
from .images import preprocess_batch
from .openvino_runtime import OpenVINORuntime
from .openvino_runtime import ensure_converted
from .openvino_runtime import find_quantized
from .openvino_runtime import quantized_model_path
from .weights import WeightsSpec

log = logging.getLogger(__name__)


def calibration_id(photos: Sequence[bytes]) -> str:
    """The same photos, in any order, give the same id."""
    digests = sorted({hashlib.sha256(data).hexdigest() for data in photos})
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:12]


def preprocess_photos(
    photos: Sequence[bytes], max_pixels: int = 40_000_000
) -> tuple[np.ndarray, int]:
    """Network inputs for the photos that decode, and how many did not."""
    images, skipped = [], 0
    for data in photos:
        try:
            images.append(decode_image(data, max_pixels=max_pixels))
        except InferenceError:
            skipped += 1
    if not images:
        return np.zeros((0, 224, 224, 3), dtype=np.float32), skipped
    return preprocess_batch(images), skipped


@dataclass
class QuantizeResult:
    path: Path
    images: int
    skipped: int
    seconds: float
    cached: bool


def quantize(
    spec: WeightsSpec,
    cache_dir: Path,
    photos: Sequence[bytes],
    *,
    max_pixels: int = 40_000_000,
) -> QuantizeResult:
    """Quantize the converted model to INT8 with these calibration photos."""
    started = time.perf_counter()
    cache_dir = Path(cache_dir)
    batch, skipped = preprocess_photos(photos, max_pixels)
    if not len(batch):
        raise ValueError("None of the calibration photos could be decoded.")
    target = quantized_model_path(cache_dir, spec, calibration_id(photos))
    if target.is_file() and target.with_suffix(".bin").is_file():
        target.touch()  # the newest INT8 model is the one served
        return QuantizeResult(target, len(batch), skipped, 0.0, cached=True)

    import nncf
    import openvino as ov

    source = ensure_converted(spec, cache_dir)
    model = ov.Core().read_model(str(source))
    model.reshape([-1, 224, 224, 3])
    dataset = nncf.Dataset([batch[i : i + 1] for i in range(len(batch))])
    quantized = nncf.quantize(model, dataset, subset_size=len(batch))
    # Write under a temporary name, then rename: a worker never sees half a model.
    partial = target.with_name(f".partial-{os.getpid()}-{target.name}")
    ov.save_model(quantized, str(partial), compress_to_fp16=False)
    partial.with_suffix(".bin").replace(target.with_suffix(".bin"))
    partial.replace(target)
    seconds = time.perf_counter() - started
    log.info("INT8 model %s made from %d photos in %.1f s", target, len(batch), seconds)
    return QuantizeResult(target, len(batch), skipped, seconds, cached=False)


@dataclass
class Agreement:
    """One precision against f32 on the same photos."""

    precision: str  # as asked for
    ran: str  # what OpenVINO ran (its variant)
    images: int
    top1: float  # share of photos with the same best class
    top5: float  # share of photos with the same five classes (in any order)
    max_softmax_diff: float
    ms_per_image: float


def compare(
    spec: WeightsSpec,
    cache_dir: Path,
    photos: Sequence[bytes],
    precisions: Sequence[str] = ("f32", "bf16", "int8"),
    *,
    threads: int = 0,
    max_pixels: int = 40_000_000,
) -> tuple[list[Agreement], int]:
    """Each precision against f32; int8 only when a quantized model exists."""
    batch, skipped = preprocess_photos(photos, max_pixels)
    if not len(batch):
        raise ValueError("None of the photos could be decoded.")
    reference, _ = _run(spec, cache_dir, "f32", batch, threads)
    results = []
    for precision in precisions:
        if precision == "int8" and find_quantized(cache_dir, spec) is None:
            continue
        scores, (variant, ms) = _run(spec, cache_dir, precision, batch, threads)
        results.append(_agreement(precision, variant, reference, scores, ms))
    return results, skipped


def _run(spec, cache_dir, precision, batch, threads):
    # Scores only: the timings compare precisions, not the maps.
    runtime = OpenVINORuntime(
        spec, cache_dir, threads=threads, precision=precision, features=False
    )
    runtime.load()
    runtime(batch[:1])  # warm
    started = time.perf_counter()
    scores = np.concatenate(
        [runtime(batch[i : i + 8]) for i in range(0, len(batch), 8)]
    )
    ms = (time.perf_counter() - started) * 1000.0 / len(batch)
    return scores, (runtime.variant, ms)


def _agreement(precision, variant, reference, scores, ms) -> Agreement:
    top5_ref = np.sort(np.argsort(reference, axis=1)[:, -5:], axis=1)
    top5 = np.sort(np.argsort(scores, axis=1)[:, -5:], axis=1)
    return Agreement(
        precision=precision,
        ran=variant,
        images=len(reference),
        top1=float((reference.argmax(1) == scores.argmax(1)).mean()),
        top5=float((top5_ref == top5).all(axis=1).mean()),
        max_softmax_diff=float(np.abs(reference - scores).max()),
        ms_per_image=ms,
    )
