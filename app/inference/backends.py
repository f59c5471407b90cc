"""Choosing the runtime: ``INFERENCE_BACKEND=auto|tensorflow|openvino``."""

from __future__ import annotations

import importlib.util
import os
from importlib import metadata
from pathlib import Path

BACKENDS = ("auto", "tensorflow", "openvino")


def resolve_backend(setting: str | None) -> str:
    """auto: TensorFlow when it can use a visible GPU, else OpenVINO on the CPU
    (when installed), else TensorFlow."""
    value = (setting or "auto").strip().lower()
    if value not in BACKENDS:
        raise ValueError(
            f"INFERENCE_BACKEND must be one of {', '.join(BACKENDS)}, got {setting!r}"
        )
    if value != "auto":
        return value
    if gpu_visible() and tensorflow_has_gpu_build():
        return "tensorflow"
    return "openvino" if openvino_available() else "tensorflow"


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def tensorflow_has_gpu_build() -> bool:
    """``tensorflow`` (not ``tensorflow-cpu``) is the package with CUDA support."""
    try:
        metadata.version("tensorflow")
    except metadata.PackageNotFoundError:
        return False
    return True


def gpu_visible() -> bool:
    """An NVIDIA GPU this process could use, checked without importing TensorFlow."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())
