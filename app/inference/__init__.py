"""Image classification with ResNet50, independent of the web layer.

The public interface is :func:`build_classifier` and :class:`Classifier`
(``load``, ``decode``, ``classify``), plus the errors in :mod:`.errors`.
"""

from .classifier import BatchResult
from .classifier import Classifier
from .classifier import ModelInfo
from .classifier import Prediction
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
from .runtime import TensorFlowRuntime
from .weights import WeightsSpec
from .weights import ensure_weights
from .weights import parse_weights

__all__ = [
    "ACCEPTED_FORMATS",
    "BatchResult",
    "Classifier",
    "DecodedImage",
    "ImageTooLarge",
    "InferenceError",
    "InvalidImage",
    "Labels",
    "ModelInfo",
    "ModelUnavailable",
    "Prediction",
    "TensorFlowRuntime",
    "UnsupportedFormat",
    "WeightsSpec",
    "WeightsUnavailable",
    "build_classifier",
    "ensure_weights",
    "load_labels",
    "parse_weights",
]


def build_classifier(
    weights: str | None,
    *,
    labels_path: str | None = None,
    intra_op_threads: int = 0,
    inter_op_threads: int = 0,
    max_pixels: int = 40_000_000,
) -> Classifier:
    """Build (not load) a classifier from settings."""
    spec = parse_weights(weights)
    runtime = TensorFlowRuntime(spec, intra_op_threads, inter_op_threads)
    return Classifier(runtime, load_labels(labels_path), spec, max_pixels=max_pixels)
