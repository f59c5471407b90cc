"""The classifier: loads once per process, then ``decode`` and ``classify``.

This is the seam between the web layer and the model (TorchServe's handler
shape): it never sees HTTP, and the web layer never sees TensorFlow.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field

import numpy as np

from .batching import Batcher
from .batching import BatchObserver
from .cam import activation_maps
from .decode_limits import DECODE_CPU_BUDGET_S
from .decode_limits import MAX_JPEG_SCANS
from .decode_limits import MemoryBudget
from .errors import ModelUnavailable
from .images import DecodedImage
from .images import decode_image
from .images import preprocess_batch
from .labels import Labels
from .runtime import Runtime
from .weights import WeightsSpec
from .weights import fingerprint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelScore:
    """One class the network scored for an image."""

    class_id: int
    wnid: str | None
    label: str
    score: float

    def as_dict(self) -> dict:
        return {
            "class_id": self.class_id,
            "wnid": self.wnid,
            "label": self.label,
            "score": self.score,
        }


@dataclass(frozen=True)
class ModelInfo:
    name: str
    weights: str
    backend: str
    random_weights: bool
    labels_available: bool
    precision: str = "f32"  # what the runtime computes in: f32, bf16, int8

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "weights": self.weights,
            "backend": self.backend,
            "precision": self.precision,
            "random_weights": self.random_weights,
            "labels_available": self.labels_available,
        }


@dataclass
class NetworkRun:
    """What one ``classify`` got from the network: the top-k labels per image,
    in input order, and how long each stage took.

    ``queue_ms`` is the time the images waited for the batching loop, and
    ``network_batch_size`` the images in the network batch that carried them
    (other requests' images included).
    """

    predictions: list[list[LabelScore]]
    preprocess_ms: float
    inference_ms: float
    queue_ms: float = 0.0
    network_batch_size: int = 0
    extra: dict = field(default_factory=dict)
    # Per image, the raw class activation maps (k, 7, 7) of its predictions,
    # in the same order; None when the runtime gives no maps.
    maps: list[np.ndarray] | None = None
    cam_ms: float = 0.0  # computing the maps


class Classifier:
    """ResNet50 behind a narrow interface."""

    model_name = "resnet50"

    def __init__(
        self,
        runtime: Runtime,
        labels: Labels,
        weights: WeightsSpec,
        *,
        max_pixels: int = 40_000_000,
        batch_max_size: int = 1,
        batch_max_delay_ms: float = 0.0,
        max_jpeg_scans: int = MAX_JPEG_SCANS,
        decode_cpu_budget_s: float = DECODE_CPU_BUDGET_S,
        decode_memory_budget_mb: int = 0,
    ) -> None:
        self.runtime = runtime
        self.labels = labels
        self.weights = weights
        self.max_pixels = max_pixels
        self.max_jpeg_scans = max_jpeg_scans
        self.decode_cpu_budget_s = decode_cpu_budget_s
        # One budget for the process: every thread's decodes share it (0: none).
        self.decode_memory = (
            MemoryBudget(decode_memory_budget_mb * 2**20)
            if decode_memory_budget_mb > 0
            else None
        )
        self.batch_max_size = batch_max_size
        self.batch_max_delay_ms = batch_max_delay_ms
        # Called with (images, inference ms) after each network batch (metrics).
        self.on_batch: BatchObserver | None = None
        self._batcher: Batcher | None = None
        self.load_seconds: float | None = None
        self.fingerprint: str | None = None
        self._ready = threading.Event()
        self._load_lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self.model_name,
            weights=self.weights.display_name,
            backend=self.runtime.name,
            random_weights=self.weights.is_random,
            labels_available=self.labels.available,
            precision=getattr(self.runtime, "precision", "f32"),
        )

    def load(self) -> None:
        """Load the network and warm it with one inference (idempotent)."""
        with self._load_lock:
            if self.ready:
                return
            started = time.perf_counter()
            self.runtime.load()
            self.runtime(preprocess_batch([_blank_image()]))
            self.fingerprint = f"{fingerprint(self.weights)}/{self.runtime.variant}"
            if self.batch_max_size > 1:
                # Compile the kernels for a full batch now, not on a request.
                self.runtime(preprocess_batch([_blank_image()] * self.batch_max_size))
                self._batcher = Batcher(
                    self.runtime.forward,
                    max_size=self.batch_max_size,
                    max_delay_ms=self.batch_max_delay_ms,
                    on_batch=self._observe_batch,
                )
                self._batcher.start()
            # Every batch size it starts with has run once: loading is over.
            self.runtime.release_unused_memory()
            self.load_seconds = time.perf_counter() - started
            self._ready.set()
            log.info("model ready in %.2f s (%s)", self.load_seconds, self.info)

    def decode(self, data: bytes) -> DecodedImage:
        """Decode and check one upload; raises the package's image errors."""
        return decode_image(
            data,
            max_pixels=self.max_pixels,
            max_jpeg_scans=self.max_jpeg_scans,
            cpu_budget_s=self.decode_cpu_budget_s,
            memory_budget=self.decode_memory,
        )

    def classify(self, images: Sequence[DecodedImage], top_k: int = 5) -> NetworkRun:
        """Run all images through the network as one batch."""
        if not self.ready:
            raise ModelUnavailable("The model is still loading. Try again shortly.")
        started = time.perf_counter()
        inputs = preprocess_batch(list(images))
        preprocess_ms = (time.perf_counter() - started) * 1000.0
        if self._batcher is not None:
            job = self._batcher.infer(inputs)
            probabilities, features = job.probabilities, job.features
            queue_ms, inference_ms = job.queue_ms or 0.0, job.inference_ms
            network_batch_size = job.network_batch_size
        else:
            before = time.perf_counter()
            probabilities, features = self.runtime.forward(inputs)
            queue_ms, inference_ms = 0.0, (time.perf_counter() - before) * 1000.0
            network_batch_size = len(inputs)
            self._observe_batch(network_batch_size, inference_ms)
        predictions = [self.best_labels(row, top_k) for row in probabilities]
        started = time.perf_counter()
        maps = self.activation_maps(features, predictions)
        return NetworkRun(
            predictions=predictions,
            preprocess_ms=preprocess_ms,
            inference_ms=inference_ms,
            queue_ms=queue_ms,
            network_batch_size=network_batch_size,
            maps=maps,
            cam_ms=(time.perf_counter() - started) * 1000.0,
        )

    @property
    def explains(self) -> bool:
        """Whether results come with class activation maps."""
        return getattr(self.runtime, "class_weights", None) is not None

    def activation_maps(
        self, features: np.ndarray | None, predictions: list[list[LabelScore]]
    ) -> list[np.ndarray] | None:
        """Each image's raw (k, 7, 7) maps of its predicted classes, or None."""
        if features is None or not self.explains or not predictions:
            return None
        class_ids = np.array([[p.class_id for p in row] for row in predictions])
        return list(activation_maps(features, self.runtime.class_weights, class_ids))

    def close(self) -> None:
        """Finish the queued requests and stop the batching loop (shutdown)."""
        if self._batcher is not None:
            self._batcher.close()

    def _observe_batch(self, images: int, inference_ms: float) -> None:
        if self.on_batch is not None:
            try:
                self.on_batch(images, inference_ms)
            except Exception:  # metrics must never break inference
                log.exception("batch observer failed")

    def best_labels(self, probabilities: np.ndarray, k: int) -> list[LabelScore]:
        """The k most likely classes, highest score first."""
        k = max(1, min(k, probabilities.shape[-1]))
        best = np.argpartition(probabilities, -k)[-k:]
        best = best[np.argsort(probabilities[best])[::-1]]
        result = []
        for class_id in best:
            wnid, label = self.labels[int(class_id)]
            result.append(
                LabelScore(int(class_id), wnid, label, float(probabilities[class_id]))
            )
        return result


def _blank_image() -> DecodedImage:
    return DecodedImage(
        pixels=np.zeros((224, 224, 3), dtype=np.uint8),
        format="PNG",
        mime_type="image/png",
        width=224,
        height=224,
        thumbnail=b"",
        decode_ms=0.0,
    )
