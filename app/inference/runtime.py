"""The runtime that executes ResNet50: TensorFlow/Keras as a compiled function."""

from __future__ import annotations

import logging
import os
import threading
from typing import Protocol

import numpy as np

from .errors import WeightsUnavailable
from .weights import RANDOM_WEIGHTS_SEED
from .weights import WeightsSpec

log = logging.getLogger(__name__)


class Runtime(Protocol):
    """What the classifier needs from a runtime."""

    name: str
    # Which numerics it computes with ("tensorflow", "openvino-f32"...): two
    # runtimes with the same variant and weights give the same scores.
    variant: str
    # What it computes in ("f32", "bf16", "int8"), shown to users and operators.
    precision: str

    def load(self) -> None: ...

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, 224, 224, 3) preprocessed -> float32 (N, 1000) softmax."""
        ...


class TensorFlowRuntime:
    """ResNet50 in Keras, called as a ``tf.function`` (never ``model.predict``).

    ``model.predict`` builds a data pipeline per call (~200 ms for one image on
    two cores); a traced function call is the bare graph.
    """

    name = "tensorflow"
    variant = "tensorflow"
    precision = "f32"

    def __init__(
        self, weights: WeightsSpec, intra_op_threads: int = 0, inter_op_threads: int = 0
    ) -> None:
        self.weights = weights
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        self._function = None
        self.keras_model = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._function is None:
                self._function = self._build()

    def _build(self):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        self._configure_threads(tf)
        from keras.applications.resnet50 import ResNet50

        if self.weights.is_random:
            tf.keras.utils.set_random_seed(RANDOM_WEIGHTS_SEED)
            model = ResNet50(weights=None)
        elif self.weights.kind == "imagenet":
            try:
                model = ResNet50(weights="imagenet")
            except Exception as exc:
                raise WeightsUnavailable(
                    f"ImageNet weights unavailable: {exc}"
                ) from exc
        else:
            model = ResNet50(weights=None)
            try:
                model.load_weights(str(self.weights.path))
            except Exception as exc:
                raise WeightsUnavailable(
                    f"Could not load weights from {self.weights.path}: {exc}"
                ) from exc

        @tf.function(reduce_retracing=True)
        def forward(batch):
            return model(batch, training=False)

        self.keras_model = model
        return forward

    def _configure_threads(self, tf) -> None:
        """Thread pools must be sized before TensorFlow runs its first op."""
        try:
            if self.intra_op_threads:
                tf.config.threading.set_intra_op_parallelism_threads(
                    self.intra_op_threads
                )
            if self.inter_op_threads:
                tf.config.threading.set_inter_op_parallelism_threads(
                    self.inter_op_threads
                )
        except RuntimeError:
            log.warning("TensorFlow was already initialised; thread settings ignored")

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self._function is None:
            raise RuntimeError("runtime not loaded")
        return np.asarray(self._function(batch))
