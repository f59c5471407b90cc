"""Every backend computes the same network as Keras; OpenVINO is cached and
loads without TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app import create_app
from app.config import TestingConfig
from app.inference import OpenVINORuntime
from app.inference import backends
from app.inference import build_classifier
from app.inference import ensure_converted
from app.inference import parse_precision
from app.inference import parse_weights
from app.inference import resolve_backend
from app.inference.images import preprocess_batch
from app.inference.openvino_runtime import PRECISIONS
from app.inference.openvino_runtime import converted_model_path
from tests.helpers import gradient_image
from tests.helpers import make_image_bytes

ROOT = Path(__file__).resolve().parent.parent


def sample_batch(classifier) -> np.ndarray:
    """Photo-like images plus noise, preprocessed exactly as in production."""
    import io

    images = []
    for size in ((640, 480), (224, 224), (300, 500)):
        buffer = io.BytesIO()
        gradient_image(size).save(buffer, "JPEG", quality=90)
        images.append(classifier.decode(buffer.getvalue()))
    images.append(classifier.decode(make_image_bytes("PNG", color=(10, 200, 40))))
    batch = preprocess_batch(images)
    noise = np.random.default_rng(0).uniform(-120, 150, size=(2, 224, 224, 3))
    return np.concatenate([batch, noise.astype(np.float32)])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "openvino"])
def test_backend_matches_keras_softmax(backend, keras_classifier, model_cache_dir):
    """Max abs difference of softmax scores within 1e-3 (we see ~2e-6 in f32)."""
    candidate = build_classifier(
        "random",
        backend=backend,
        model_cache_dir=model_cache_dir,
        openvino_precision="f32",
    )
    candidate.load()
    batch = sample_batch(keras_classifier)
    expected = keras_classifier.runtime.keras_model(batch, training=False).numpy()
    actual = candidate.runtime(batch)
    assert actual.shape == (len(batch), 1000)
    assert np.abs(actual - expected).max() <= 1e-3
    assert (actual.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert candidate.info.backend == backend


def test_conversion_is_cached_by_weights_fingerprint(model_cache_dir, classifier):
    spec = parse_weights("random")
    path = converted_model_path(model_cache_dir, spec)
    assert path.is_file() and path.with_suffix(".bin").is_file()
    assert "random-keras" in path.name
    before = path.stat().st_mtime_ns
    assert ensure_converted(spec, model_cache_dir) == path
    assert path.stat().st_mtime_ns == before  # not converted again


def test_weights_file_gets_its_own_converted_model(tmp_path, model_cache_dir):
    one, two = tmp_path / "a.weights.h5", tmp_path / "b.weights.h5"
    one.write_bytes(b"first")
    two.write_bytes(b"second")
    first = converted_model_path(model_cache_dir, parse_weights(str(one)))
    second = converted_model_path(model_cache_dir, parse_weights(str(two)))
    assert first != second and first.name.startswith("resnet50-file-")


def test_openvino_worker_never_imports_tensorflow(classifier, model_cache_dir):
    path = converted_model_path(model_cache_dir, parse_weights("random"))
    script = (
        "import sys\n"
        "from app.inference import build_classifier\n"
        "c = build_classifier('random', backend='openvino',\n"
        f"                     converted_model={str(path)!r})\n"
        "c.load()\n"
        "from app.inference.classifier import _blank_image\n"
        "print(c.classify([_blank_image()]).predictions[0][0].class_id)\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "assert 'keras' not in sys.modules, 'keras was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_backend_setting(monkeypatch):
    assert resolve_backend("tensorflow") == "tensorflow"
    assert resolve_backend("OpenVINO") == "openvino"
    with pytest.raises(ValueError, match="INFERENCE_BACKEND"):
        resolve_backend("cuda")
    monkeypatch.setattr(backends, "gpu_visible", lambda: False)
    assert resolve_backend("auto") == "openvino"
    monkeypatch.setattr(backends, "gpu_visible", lambda: True)
    monkeypatch.setattr(backends, "tensorflow_has_gpu_build", lambda: True)
    assert resolve_backend("auto") == "tensorflow"
    monkeypatch.setattr(backends, "tensorflow_has_gpu_build", lambda: False)
    assert resolve_backend("auto") == "openvino"


def test_openvino_precision_setting(tmp_path):
    assert parse_precision(None) == "auto"
    assert parse_precision(" BF16 ") == "bf16"
    assert parse_precision("f16") == "f16"
    assert parse_precision("INT8") == "int8"
    for wrong in ("fp32", "i8", "float32", "f32;"):
        message = f"OPENVINO_PRECISION must be one of .*{wrong!r}"
        with pytest.raises(ValueError, match=message):
            parse_precision(wrong)
    # Refused when the runtime is built, long before a model is compiled.
    with pytest.raises(ValueError, match="OPENVINO_PRECISION"):
        OpenVINORuntime(parse_weights("random"), tmp_path, precision="fp32")
    runtime = OpenVINORuntime(parse_weights("random"), tmp_path, precision="BF16")
    assert runtime.variant == "openvino-bf16"


@pytest.mark.parametrize(
    ("setting", "value"),
    [("OPENVINO_PRECISION", "fp32"), ("INFERENCE_BACKEND", "cuda")],
)
def test_the_app_refuses_a_bad_model_setting_when_it_is_created(setting, value):
    config = type("Config", (TestingConfig,), {setting: value})
    with pytest.raises(ValueError, match=setting):
        create_app(config)


def test_openvino_runtime_names_the_precision_it_compiled(
    model_cache_dir, classifier, caplog
):
    """f16 is not native on most x86 CPUs: OpenVINO runs bf16 or f32 instead,
    and the variant (which keys the result cache) must say which."""
    runtime = OpenVINORuntime(
        parse_weights("random"), model_cache_dir, threads=1, precision="f16"
    )
    with caplog.at_level("WARNING", logger="app.inference.openvino_runtime"):
        runtime.load()
    assert runtime.precision in PRECISIONS
    assert runtime.variant == f"openvino-{runtime.precision}"
    fell_back = "OpenVINO runs" in caplog.text
    assert fell_back == (runtime.precision != "f16")
    assert classifier.runtime.variant == "openvino-f32"


def test_openvino_threads_are_not_pinned_to_cores(model_cache_dir, classifier):
    """Pinned, every worker's inference thread lands on the same core."""
    path = converted_model_path(model_cache_dir, parse_weights("random"))
    worker = build_classifier(
        "random", backend="openvino", intra_op_threads=1, converted_model=path
    )
    worker.load()
    assert worker.runtime._compiled.get_property("ENABLE_CPU_PINNING") is False


def test_openvino_runtime_is_safe_under_concurrent_threads(model_cache_dir, classifier):
    """Gunicorn threads share one infer request: each caller gets its own
    images' scores, the same as when called alone."""
    from concurrent.futures import ThreadPoolExecutor

    path = converted_model_path(model_cache_dir, parse_weights("random"))
    worker = build_classifier(
        "random", backend="openvino", intra_op_threads=1, converted_model=path
    )
    worker.load()
    rng = np.random.default_rng(1)
    inputs = [
        rng.uniform(-120, 150, size=(n, 224, 224, 3)).astype(np.float32)
        for n in (1, 2, 1, 3, 1, 1, 2, 1)
    ]
    alone = [worker.runtime(x) for x in inputs]
    with ThreadPoolExecutor(len(inputs)) as pool:
        together = list(pool.map(worker.runtime, inputs))
    for expected, actual in zip(alone, together, strict=True):
        assert actual.shape == expected.shape
        assert np.abs(actual - expected).max() <= 1e-6
