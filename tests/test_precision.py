"""Precisions: auto picks what the CPU runs natively, results are filed under
what ran, INT8 comes from `flask quantize-model`, and `flask compare-precision`
says how close each is to f32."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest

from app.inference import OpenVINORuntime
from app.inference import WeightsUnavailable
from app.inference import build_classifier
from app.inference import native_precision
from app.inference import openvino_runtime
from app.inference import parse_weights
from app.inference import require_quantized
from app.inference.images import preprocess
from app.inference.openvino_runtime import converted_model_path
from app.inference.quantize import calibration_id
from app.model_service import model_service
from devtools.server import free_port
from devtools.server import gunicorn_until_exit
from devtools.server import server_env
from tests.helpers import bearer
from tests.helpers import gradient_image

RANDOM = parse_weights("random")


def photo_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    gradient_image((300, 260)).rotate(seed * 29).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def models(tmp_path, classifier, model_cache_dir):
    """A model cache holding (links to) the session's converted f32 model."""
    folder = tmp_path / "models"
    folder.mkdir()
    source = converted_model_path(model_cache_dir, RANDOM)
    for path in (source, source.with_suffix(".bin")):
        (folder / path.name).symlink_to(path)
    return folder


@pytest.fixture
def photos_dir(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(4):
        (folder / f"p{seed}.jpg").write_bytes(photo_bytes(seed))
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_auto_runs_the_cpus_native_precision(models):
    runtime = OpenVINORuntime(RANDOM, models, threads=1, precision="auto")
    runtime.load()
    assert runtime.requested == "auto"
    assert runtime.precision == native_precision()
    assert runtime.variant == f"openvino-{runtime.precision}"


def test_auto_is_f32_on_a_cpu_without_native_bf16(models, monkeypatch):
    monkeypatch.setattr(openvino_runtime, "native_precision", lambda core=None: "f32")
    runtime = OpenVINORuntime(RANDOM, models, threads=1, precision="auto")
    runtime.load()
    assert (runtime.precision, runtime.variant) == ("f32", "openvino-f32")


class FakeCore:
    def __init__(self, *capabilities: str) -> None:
        self.capabilities = list(capabilities)

    def get_property(self, device: str, name: str):
        assert (device, name) == ("CPU", "OPTIMIZATION_CAPABILITIES")
        return self.capabilities


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "bf16"),
        ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "f32"),
        ({"ONEDNN_MAX_CPU_ISA": "avx512_core"}, "f32"),  # bf16 only emulated
        ({"DNNL_MAX_CPU_ISA": "AVX512_CORE_VNNI"}, "f32"),
        ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "bf16"),
        ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, "bf16"),
        ({"ONEDNN_MAX_CPU_ISA": "ALL"}, "bf16"),
        ({"ONEDNN_MAX_CPU_ISA": "AVX10_1_512"}, "bf16"),
        ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_FP16"}, "bf16"),
        ({"ONEDNN_MAX_CPU_ISA": "AVX2_VNNI_2"}, "f32"),  # unknown here: f32
        ({"ONEDNN_MAX_CPU_ISA": "", "DNNL_MAX_CPU_ISA": "AVX2"}, "f32"),
    ],
)
def test_auto_respects_a_onednn_isa_cap(environ, expected):
    assert native_precision(FakeCore("FP32", "BF16", "INT8"), environ) == expected
    assert native_precision(FakeCore("FP32", "INT8"), environ) == "f32"


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_under_an_avx2_cap_the_model_serves_f32_in_a_fresh_process(models, precision):
    """oneDNN reads its ISA cap once per process, so the real check runs in a
    child: without the rule, auto (and an explicit bf16) asked for bf16 there
    and compiling failed."""
    if native_precision() != "bf16":
        pytest.skip("auto is f32 on this CPU with or without a cap")
    code = (
        "import numpy as np, sys\n"
        "from app.inference import OpenVINORuntime, parse_weights\n"
        "r = OpenVINORuntime(parse_weights('random'), sys.argv[1], threads=1,\n"
        "                    precision=sys.argv[2])\n"
        "r.load()\n"
        "p = r(np.zeros((1, 224, 224, 3), np.float32))\n"
        "print(r.precision, p.shape)\n"
    )
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(models), precision],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-3:] == ["f32", "(1,", "1000)"]


def test_a_bf16_result_is_never_served_as_an_f32_one(app, token, classifier, models):
    """The precision that ran is part of the result cache's key."""
    bf16 = build_classifier("random", model_cache_dir=models, openvino_precision="bf16")
    bf16.load()
    client = app.test_client()
    data = photo_bytes(7)

    def post():
        return client.post(
            "/predict",
            data={"image": (io.BytesIO(data), "p.jpg")},
            headers=bearer(token),
        ).get_json()

    first = post()  # the session's f32 classifier
    with app.app_context():
        model_service().use(bf16)
    second = post()
    assert first["model"]["precision"] == "f32"
    assert second["model"]["precision"] == bf16.info.precision
    assert second["results"][0]["cached"] is (bf16.info.precision == "f32")
    system = client.get("/api/system", headers=bearer(token)).get_json()
    assert system["model"]["precision"] == bf16.info.precision
    assert system["model"]["precision_setting"] == "auto"


def test_int8_without_a_quantized_model_names_the_command(tmp_path):
    with pytest.raises(WeightsUnavailable, match="flask quantize-model --images"):
        require_quantized(tmp_path, RANDOM)
    runtime = OpenVINORuntime(RANDOM, tmp_path, threads=1, precision="int8")
    with pytest.raises(WeightsUnavailable, match="--from-history"):
        runtime.load()


@pytest.mark.slow
def test_quantize_model_from_a_folder_is_cached_and_served(
    make_app, models, photos_dir
):
    app = make_app(MODEL_CACHE_DIR=str(models))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["quantize-model", "--images", str(photos_dir)])
    assert result.exit_code == 0, result.output
    calibration = calibration_id(
        [path.read_bytes() for path in sorted(photos_dir.glob("*.jpg"))]
    )
    quantized = require_quantized(models, RANDOM)
    assert quantized.name.endswith(f"-int8-{calibration}.xml")
    assert "from 4 photos" in result.output
    again = runner.invoke(args=["quantize-model", "--images", str(photos_dir)])
    assert "already made" in again.output

    runtime = OpenVINORuntime(RANDOM, models, threads=1, precision="int8")
    runtime.load()
    assert runtime.precision == "int8"
    assert runtime.variant.startswith(f"openvino-int8-{calibration}-")
    # The maps: the int8 model's last conv block, the f32 IR's dense layer;
    # together they give the int8 softmax within int8's error.
    batch = np.stack([preprocess(np.asarray(gradient_image((224, 224))))])
    probabilities, features = runtime.forward(batch)
    assert features.shape == (1, 7, 7, 2048)
    logits = features.mean(axis=(1, 2)) @ runtime.class_weights + runtime.class_bias
    shifted = np.exp(logits - logits.max())
    np.testing.assert_allclose(shifted / shifted.sum(), probabilities, atol=0.05)

    compared = runner.invoke(args=["compare-precision", str(photos_dir)])
    assert compared.exit_code == 0, compared.output
    lines = {line.split()[0]: line for line in compared.output.splitlines()}
    assert {"f32", "bf16", "int8"} <= set(lines)
    assert "100.0%" in lines["f32"] and "0.00000" in lines["f32"]


@pytest.mark.slow
def test_quantize_model_from_history(make_app, models, token):
    app = make_app(MODEL_CACHE_DIR=str(models))
    runner = app.test_cli_runner()
    empty = runner.invoke(args=["quantize-model", "--from-history", "3"])
    assert empty.exit_code != 0 and "no photos" in empty.output
    client = app.test_client()
    for seed in range(3):
        client.post(
            "/predict",
            data={"image": (io.BytesIO(photo_bytes(seed + 10)), "p.jpg")},
            headers=bearer(token),
        )
    result = runner.invoke(args=["quantize-model", "--from-history", "3"])
    assert result.exit_code == 0, result.output
    assert "from 3 photos" in result.output
    both = runner.invoke(
        args=["quantize-model", "--from-history", "3", "--images", "."]
    )
    assert both.exit_code != 0


@pytest.mark.server
def test_server_refuses_int8_without_a_quantized_model(tmp_path, models):
    env = server_env(
        f"sqlite:///{tmp_path / 'never.sqlite3'}",
        models,
        free_port(),
        OPENVINO_PRECISION="int8",
    )
    result = gunicorn_until_exit(env, timeout_s=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Snapclass cannot start." in output
    assert "flask quantize-model" in output and "Traceback" not in output
    assert "Booting worker" not in output
