"""In process: (a), (a2), (b), (d), (f), (g), each measured and printed.

What needs clean thread pools runs as a program of its own (``bench.raw``,
``bench.parallel``, ...); these sections start them and print their tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.batching import batching_in_process
from bench.cam import cam_cost
from bench.context import PHONE_IMAGE
from bench.context import SHARED_IMAGES
from bench.context import Bench
from bench.context import load_image
from bench.context import section
from bench.parallel import parallel_ceiling
from bench.precisions import ensure_int8
from bench.precisions import precision_ceilings
from bench.preprocessing import median_ms
from bench.preprocessing import naive_preprocess
from bench.preprocessing import our_preprocess
from bench.program import CORES
from bench.raw import raw_ceiling
from devtools.photos import photo_jpeg
from devtools.tables import table


@dataclass
class Ceiling:
    """The model ceiling: the best backend's batch-1 images/s."""

    backend: str
    img_s: float


def report_model_ceiling(bench: Bench) -> Ceiling:
    """(a) Each backend alone at batch 1 and its best batch, all cores in one
    process and one single-threaded process per core."""
    section("(a) Raw model ceiling, in process, all cores")
    ceilings = {}
    rows = []
    for backend in bench.backends:
        result = raw_ceiling(backend, CORES, bench.cache)
        best_batch = max(result, key=lambda batch: result[batch]["img_s"])
        per_core = parallel_ceiling(backend, bench.cache, "model")
        ceilings[backend] = max(result[1]["img_s"], per_core)
        rows.append(
            [
                backend,
                f"{result[1]['ms']:.1f}",
                f"{result[1]['img_s']:.1f}",
                f"{per_core:.1f}",
                best_batch,
                f"{result[best_batch]['img_s']:.1f}",
            ]
        )
    headers = ["backend", "batch 1 ms", "batch 1 img/s"]
    headers += [f"batch 1, {CORES} x 1 thread img/s", "best batch", "best img/s"]
    print(table(headers, rows))
    print(
        f"\n'{CORES} x 1 thread': one single-threaded model per core, all at once "
        "(like the served workers). The model ceiling below is the higher batch-1 "
        "figure."
    )
    best = max(ceilings, key=ceilings.get)
    return Ceiling(best, ceilings[best])


def calibration_photos() -> list[bytes]:
    """The shared photos, or generated ones where they are missing."""
    photos = [path.read_bytes() for path in sorted(SHARED_IMAGES.glob("*.jp*g"))]
    return photos or [photo_jpeg((640 + 32 * i, 480)) for i in range(8)]


def report_precisions(bench: Bench) -> None:
    """(a2) OpenVINO f32, bf16 and INT8 (quantized once if needed), interleaved."""
    from app.inference import native_precision

    section(
        f"(a2) OpenVINO precisions, in process, {CORES} threads, img/s "
        "(interleaved in one process)"
    )
    # Below a oneDNN ISA cap (ONEDNN_MAX_CPU_ISA=AVX2) bf16 does not compile.
    precisions = ["f32"] + (["bf16"] if native_precision() == "bf16" else [])
    if ensure_int8(bench.cache, calibration_photos()):
        precisions.append("int8")
    try:
        ceilings = precision_ceilings(bench.cache, bench.image, precisions)
    except RuntimeError as exc:  # informational: never stop the bench
        print(f"(precisions could not be measured: {exc})")
        return
    f32_1 = ceilings["f32"]["1"]
    rows = [
        [
            precision,
            r["ran"],
            f"{r['1']:.1f}",
            f"{r['4']:.1f}",
            f"{r['8']:.1f}",
            f"{r['1'] / f32_1:.2f}",
            f"{r['max_diff']:.4f}",
        ]
        for precision, r in ceilings.items()
    ]
    headers = ["precision", "ran as", "batch 1", "batch 4", "batch 8"]
    headers += ["batch 1 / f32 batch 1", f"max softmax diff from f32 on {bench.name}"]
    print(table(headers, rows))
    print(
        f"\nauto (the default) runs {native_precision()} on this CPU. "
        "INT8: NNCF post-training quantization of the random weights."
    )


def report_preprocessing(bench: Bench) -> None:
    """(b) Decode + preprocess of a small, a medium and a 12 MP photo."""
    section("(b) Decode + preprocess, median ms (naive: full decode, float64)")
    samples = [
        ("small", load_image(SHARED_IMAGES / "beach-275x183.jpg", (275, 183))),
        ("medium", (bench.name, bench.data)),
        ("12 MP", load_image(PHONE_IMAGE, (4032, 3024))),
    ]
    rows = []
    for label, (sample_name, sample) in samples:
        naive = median_ms(naive_preprocess, sample, 15)
        ours = median_ms(our_preprocess, sample, 15)
        rows.append(
            [
                f"{label} ({sample_name})",
                f"{naive:.1f}",
                f"{ours:.1f}",
                f"{naive / ours:.1f}x",
            ]
        )
    print(table(["image", "naive ms", "ours ms", "speed-up"], rows))


def report_pipeline_ceiling(bench: Bench, backend: str) -> float:
    """(d) Decode + preprocess + infer of the photo, no HTTP: one process on
    all cores and one process per core; returns the higher."""
    section(
        f"(d) In-process pipeline ceiling ({backend}: decode + "
        "preprocess + infer of the same photo, no HTTP)"
    )
    one = parallel_ceiling(
        backend, bench.cache, "pipeline", bench.image, processes=1, threads=CORES
    )
    per_core = parallel_ceiling(backend, bench.cache, "pipeline", bench.image)
    rows = [
        [f"one process, {CORES} inference threads", f"{one:.1f}"],
        [f"{CORES} processes x 1 thread (one per core)", f"{per_core:.1f}"],
    ]
    print(table(["layout", "images/s"], rows))
    return max(one, per_core)


def report_batching(bench: Bench) -> None:
    """(f) Batching across requests in one worker's classifier."""
    section(
        "(f) Batching across requests, in process: one worker's classifier, "
        f"{CORES} inference threads, 8 client threads decoding and classifying "
        "the photo, configurations interleaved (3 rounds of 8 s)"
    )
    batching = batching_in_process(bench.cache, bench.image)
    unbatched = batching[0]["img_s"]
    rows = [
        [
            f"{r['size']} / {r['delay']} ms",
            r["precision"],
            f"{r['img_s']:.1f}",
            f"{r['img_s'] / unbatched:.2f}",
            f"{r['p50']:.0f}",
            f"{r['p95']:.0f}",
            f"{r['batch']:.2f}",
        ]
        for r in batching
    ]
    headers = ["BATCH_MAX_SIZE / BATCH_MAX_DELAY_MS", "precision", "img/s"]
    headers += ["vs size 1", "p50 ms", "p95 ms", "mean batch"]
    print(table(headers, rows))


def report_cam_cost(bench: Bench) -> None:
    """(g) The class activation maps' extra time per image."""
    section(
        '(g) Class activation maps ("Why?"): extra time per image, served '
        f"precision, {CORES} threads, with and without the second output "
        "interleaved (median of 100 rounds)"
    )
    try:
        cost = cam_cost(bench.cache, bench.image)
    except RuntimeError as exc:  # informational: never stop the bench
        print(f"(the maps could not be measured: {exc})")
        return
    ms = cost["ms"]
    rows = [
        [
            b,
            cost["ran"],
            f"{ms[f'without:{b}']:.1f}",
            f"{ms[f'with:{b}']:.1f}",
            f"{ms[f'extra:{b}'] / b:+.2f}",
            f"{ms[f'maps:{b}'] / b:.3f}",
        ]
        for b in (1, 4)
    ]
    headers = ["batch", "ran as", "without ms", "with maps ms"]
    headers += ["extra ms per image (median of paired rounds)"]
    headers += ["maps alone ms per image"]
    print(table(headers, rows))
