"""Flask glue for the classifier: one per process, loaded once, shared by views."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flask import Flask
from flask import current_app

from app.inference import Classifier
from app.inference import InferenceError
from app.inference import ModelInfo
from app.inference import ModelUnavailable
from app.inference import build_classifier
from app.inference.batching import BatchObserver

log = logging.getLogger(__name__)

EXTENSION_KEY = "snapclass.model"


class ModelService:
    """Holds the process's classifier.

    Gunicorn workers load it right after fork (``gunicorn.conf.py``); other
    servers (``flask run``, tests) load it on first use. ``observe_batch``
    makes the callback each classifier calls after a network batch, given the
    runtime's name (the factory hands in the metrics' one).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        observe_batch: Callable[[str], BatchObserver] | None = None,
    ) -> None:
        self._classifier: Classifier | None = None
        self._lock = threading.Lock()
        self._observe_batch = observe_batch
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        # The settings were checked by create_app (app.config.check_settings).
        self._settings = {
            "weights": app.config["MODEL_WEIGHTS"],
            "backend": app.config["INFERENCE_BACKEND"],
            "model_cache_dir": app.config["MODEL_CACHE_DIR"],
            "openvino_precision": app.config["OPENVINO_PRECISION"],
            "converted_model": app.config["OPENVINO_MODEL"],
            "labels_path": app.config["IMAGENET_LABELS"],
            "intra_op_threads": app.config["INTRA_OP_THREADS"],
            "inter_op_threads": app.config["INTER_OP_THREADS"],
            "max_pixels": app.config["MAX_IMAGE_PIXELS"],
            "max_jpeg_scans": app.config["MAX_JPEG_SCANS"],
            "decode_cpu_budget_s": app.config["DECODE_CPU_BUDGET_S"],
            "decode_memory_budget_mb": app.config["DECODE_MEMORY_BUDGET_MB"],
            "batch_max_size": app.config["BATCH_MAX_SIZE"],
            "batch_max_delay_ms": app.config["BATCH_MAX_DELAY_MS"],
        }
        app.extensions[EXTENSION_KEY] = self

    def use(self, classifier: Classifier) -> None:
        """Install an already built classifier (tests share one across apps)."""
        self._classifier = self._observed(classifier)

    @property
    def classifier(self) -> Classifier:
        """The classifier, built on first access but not necessarily loaded."""
        with self._lock:
            if self._classifier is None:
                self._classifier = self._observed(build_classifier(**self._settings))
            return self._classifier

    def model_info(self) -> ModelInfo | None:
        """What the classifier serves (name, weights, backend, precision), or
        None when it cannot be built: a model problem must not break a page."""
        try:
            return self.classifier.info
        except InferenceError:
            return None

    def _observed(self, classifier: Classifier) -> Classifier:
        if self._observe_batch is not None:
            classifier.on_batch = self._observe_batch(classifier.runtime.name)
        return classifier

    @property
    def ready(self) -> bool:
        return self._classifier is not None and self._classifier.ready

    def close(self) -> None:
        """Finish queued requests and stop the batching loop (worker exit)."""
        if self._classifier is not None:
            self._classifier.close()

    def load(self) -> Classifier:
        """Load and warm the model; a failure is logged and re-raised."""
        classifier = self.classifier
        try:
            classifier.load()
        except Exception as exc:
            log.error("model failed to load: %s", exc)
            raise
        return classifier

    def ready_classifier(self) -> Classifier:
        """The loaded classifier, loading it now if this server did not preload."""
        if self.ready:
            return self.classifier
        try:
            return self.load()
        except Exception as exc:
            raise ModelUnavailable(
                "The model could not be loaded; the server log says why."
            ) from exc


def model_service(app: Flask | None = None) -> ModelService:
    """The model service of ``app``, by default the current one."""
    return (app or current_app).extensions[EXTENSION_KEY]
