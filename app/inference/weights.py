"""Which weights the model uses, and fetching ImageNet weights ahead of time.

Nothing here imports TensorFlow: the Gunicorn master calls it before forking
workers, and TensorFlow must never be initialised in a process that forks.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .errors import WeightsUnavailable

# The file Keras' ResNet50(weights="imagenet") looks for in its cache.
IMAGENET_WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
_LABELS_URL = (
    "https://storage.googleapis.com/download.tensorflow.org/data/"
    "imagenet_class_index.json"
)

# Random weights are seeded so that every worker (and every instance) holds the
# same untrained network: the same upload gives the same answer everywhere.
RANDOM_WEIGHTS_SEED = 1234

OFFLINE_HELP = (
    "Snapclass could not obtain the ImageNet weights for ResNet50 ({reason}). "
    "This machine probably has no internet access. Either download them once on "
    "a connected machine with `flask fetch-model` and copy "
    "~/.keras/models/{file} here, set MODEL_WEIGHTS to the path of a weights file "
    "(.h5 or .weights.h5), or set MODEL_WEIGHTS=random to run with untrained "
    "weights (same speed, meaningless labels, clearly flagged in the UI and API)."
)


@dataclass(frozen=True)
class WeightsSpec:
    """The resolved ``MODEL_WEIGHTS`` setting."""

    kind: str  # "imagenet", "random" or "file"
    path: Path | None = None

    @property
    def display_name(self) -> str:
        """What the UI and API show: ``imagenet``, ``random`` or the file name."""
        return self.path.name if self.kind == "file" and self.path else self.kind

    @property
    def is_random(self) -> bool:
        return self.kind == "random"


def parse_weights(setting: str | None) -> WeightsSpec:
    """Turn ``MODEL_WEIGHTS`` into a spec; a path must exist and be a file."""
    value = (setting or "imagenet").strip()
    if value.lower() in ("imagenet", "random"):
        return WeightsSpec(value.lower())
    path = Path(value).expanduser()
    if not path.is_file():
        raise WeightsUnavailable(
            f"MODEL_WEIGHTS points to {value!r}, which is not a readable file. Set it "
            "to 'imagenet', 'random' or the path of a ResNet50 weights file."
        )
    return WeightsSpec("file", path.resolve())


def keras_cache_dir() -> Path:
    """Keras' cache folder for applications, resolved the way Keras does it."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return Path(home) / "models"


def imagenet_weights_path() -> Path:
    return keras_cache_dir() / IMAGENET_WEIGHTS_FILE


def fingerprint(spec: WeightsSpec) -> str:
    """A short stable id of the weights, for caches keyed by model.

    Files are hashed; random weights are defined by Keras' version and the seed.
    """
    if spec.kind == "random":
        return f"random-keras{_keras_version()}-seed{RANDOM_WEIGHTS_SEED}"
    path = spec.path if spec.kind == "file" else imagenet_weights_path()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"{spec.kind}-{digest.hexdigest()[:16]}"


def _keras_version() -> str:
    try:
        return metadata.version("keras")
    except metadata.PackageNotFoundError:
        return "unknown"


def ensure_weights(spec: WeightsSpec, timeout_s: float = 600.0) -> None:
    """Make sure the weights are on disk before workers start.

    ImageNet weights are fetched by Keras itself (same URL, hash check and cache
    as ``ResNet50(weights="imagenet")``) in a child process, so this process
    never imports TensorFlow.

    :raises WeightsUnavailable: with a message that says what to do.
    """
    if spec.kind != "imagenet" or imagenet_weights_path().is_file():
        return
    command = [sys.executable, "-m", "app.inference.fetch"]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        reason = f"the download did not finish within {timeout_s:.0f} s"
    else:
        if result.returncode == 0 and imagenet_weights_path().is_file():
            return
        lines = (result.stderr or result.stdout or "").strip().splitlines()
        reason = lines[-1][:300] if lines else f"exit code {result.returncode}"
    raise WeightsUnavailable(
        OFFLINE_HELP.format(reason=reason, file=IMAGENET_WEIGHTS_FILE)
    )
