"""Image classification with ResNet50, independent of the web layer.

The public interface is :func:`build_classifier` and :class:`Classifier`
(``load``, ``decode``, ``classify``), plus the errors in :mod:`.errors`.
"""

from pathlib import Path

from .backends import resolve_backend
from .batching import Batcher
from .classifier import Classifier
from .classifier import LabelScore
from .classifier import ModelInfo
from .classifier import NetworkRun
from .decode_limits import DECODE_CPU_BUDGET_S
from .decode_limits import MAX_JPEG_SCANS
from .errors import DecodeBusy
from .errors import ImageTooComplex
from .errors import ImageTooLarge
from .errors import InferenceError
from .errors import InvalidImage
from .errors import ModelUnavailable
from .errors import UnsupportedFormat
from .errors import WeightsUnavailable
from .images import ACCEPTED_FORMATS
from .images import DecodedImage
from .labels import Labels
from .labels import load_labels
from .openvino_runtime import DEFAULT_PRECISION
from .openvino_runtime import OpenVINORuntime
from .openvino_runtime import ensure_converted
from .openvino_runtime import find_quantized
from .openvino_runtime import native_precision
from .openvino_runtime import parse_precision
from .openvino_runtime import require_quantized
from .quantize import compare as compare_precisions
from .quantize import quantize as quantize_model
from .runtime import Runtime
from .runtime import TensorFlowRuntime
from .weights import WeightsSpec
from .weights import ensure_weights
from .weights import parse_weights

__all__ = [
    "ACCEPTED_FORMATS",
    "Batcher",
    "Classifier",
    "DecodeBusy",
    "DecodedImage",
    "ImageTooComplex",
    "ImageTooLarge",
    "InferenceError",
    "InvalidImage",
    "LabelScore",
    "Labels",
    "OpenVINORuntime",
    "ModelInfo",
    "ModelUnavailable",
    "NetworkRun",
    "TensorFlowRuntime",
    "UnsupportedFormat",
    "WeightsSpec",
    "WeightsUnavailable",
    "build_classifier",
    "compare_precisions",
    "ensure_converted",
    "find_quantized",
    "ensure_weights",
    "load_labels",
    "native_precision",
    "parse_precision",
    "parse_weights",
    "quantize_model",
    "require_quantized",
    "resolve_backend",
]


def build_classifier(
    weights: str | None,
    *,
    backend: str | None = "auto",
    labels_path: str | None = None,
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
    max_pixels: int = 40_000_000,
    model_cache_dir: str | Path | None = None,
    openvino_precision: str = DEFAULT_PRECISION,
    converted_model: str | Path | None = None,
    batch_max_size: int = 1,
    batch_max_delay_ms: float = 0.0,
    max_jpeg_scans: int = MAX_JPEG_SCANS,
    decode_cpu_budget_s: float = DECODE_CPU_BUDGET_S,
    decode_memory_budget_mb: int = 0,
) -> Classifier:
    """Build (not load) a classifier from settings; loading is ``load()``."""
    spec = parse_weights(weights)
    runtime: Runtime
    if resolve_backend(backend) == "openvino":
        runtime = OpenVINORuntime(
            spec,
            Path(model_cache_dir or default_model_cache_dir()),
            threads=intra_op_threads,
            precision=openvino_precision,
            model_path=Path(converted_model) if converted_model else None,
        )
    else:
        runtime = TensorFlowRuntime(spec, intra_op_threads, inter_op_threads)
    return Classifier(
        runtime,
        load_labels(labels_path),
        spec,
        max_pixels=max_pixels,
        batch_max_size=batch_max_size,
        batch_max_delay_ms=batch_max_delay_ms,
        max_jpeg_scans=max_jpeg_scans,
        decode_cpu_budget_s=decode_cpu_budget_s,
        decode_memory_budget_mb=decode_memory_budget_mb,
    )


def default_model_cache_dir() -> Path:
    """``instance/models`` of this project (what the Flask app uses too)."""
    return Path(__file__).resolve().parents[2] / "instance" / "models"
