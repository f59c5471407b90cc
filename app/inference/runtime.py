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

    # The dense layer's kernel (2048, 1000) and bias (1000,), read at load;
    # None where the runtime cannot give the class activation maps.
    class_weights: np.ndarray | None
    class_bias: np.ndarray | None

    def load(self) -> None: ...

    def release_unused_memory(self) -> None:
        """After the warm-up: give back what only loading needed."""
        ...

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, 224, 224, 3) preprocessed -> float32 (N, 1000) softmax."""
        ...

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The softmax and the last conv block's (N, 7, 7, 2048) output (None
        when the runtime was built without it)."""
        ...


# The Keras layers around ResNet50's global average pool.
FEATURES_LAYER = "conv5_block3_out"
DENSE_LAYER = "predictions"


class TensorFlowRuntime:
    """ResNet50 in Keras, called as a ``tf.function`` (never ``model.predict``).

    ``model.predict`` builds a data pipeline per call (~200 ms for one image on
    two cores); a traced function call is the bare graph. With ``features``
    the function also returns the last conv block's output (a functional
    model with two outputs), for the class activation maps.
    """

    name = "tensorflow"
    variant = "tensorflow"
    precision = "f32"

    def __init__(
        self,
        weights: WeightsSpec,
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
        *,
        features: bool = True,
    ) -> None:
        self.weights = weights
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        self.features = features
        self._function = None
        # The plain one-output model (what app.inference.convert converts).
        self.keras_model = None
        self.class_weights: np.ndarray | None = None
        self.class_bias: np.ndarray | None = None
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

        self.keras_model = model
        if self.features:
            import keras

            kernel, bias = model.get_layer(DENSE_LAYER).get_weights()
            self.class_weights = np.asarray(kernel, dtype=np.float32)
            self.class_bias = np.asarray(bias, dtype=np.float32)
            network = keras.Model(
                model.inputs, [model.output, model.get_layer(FEATURES_LAYER).output]
            )
        else:
            network = model

        @tf.function(reduce_retracing=True)
        def forward(batch):
            return network(batch, training=False)

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

    def release_unused_memory(self) -> None:
        """Nothing to give back: TensorFlow holds the weights it loaded."""

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.forward(batch)[0]

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self._function is None:
            raise RuntimeError("runtime not loaded")
        outputs = self._function(batch)
        if not self.features:
            return np.asarray(outputs), None
        probabilities, features = outputs
        return np.asarray(probabilities), np.asarray(features)
