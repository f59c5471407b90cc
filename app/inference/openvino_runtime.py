"""ResNet50 on OpenVINO, converted once from the Keras model.

Workers that use this runtime import only OpenVINO (~300 MB less memory than
TensorFlow, and about twice as fast on CPU). Conversion needs TensorFlow, so it
runs in a separate short-lived process (``python -m app.inference.convert``)
and the result is cached on disk, keyed by the weights' fingerprint.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from .errors import WeightsUnavailable
from .mapped_files import release_mapped_file
from .mapped_files import resident_bytes
from .weights import WeightsSpec
from .weights import fingerprint

log = logging.getLogger(__name__)

# auto: what OpenVINO itself runs by default on this CPU, bf16 where the CPU
# has it natively (AMX or AVX512_BF16), else f32. f32 keeps every softmax
# score within 1e-6 of Keras; bf16 and int8 trade a little of that for speed
# (``flask compare-precision`` measures how much on your photos).
DEFAULT_PRECISION = "auto"
# What OpenVINO's CPU plugin accepts as INFERENCE_PRECISION_HINT.
HINTS = ("f32", "bf16", "f16")
# int8 serves the model ``flask quantize-model`` made (NNCF post-training).
PRECISIONS = ("auto", *HINTS, "int8")
QUANTIZE_HELP = (
    "Make one with 'flask quantize-model --images DIR' (a folder of ~300 "
    "photos like the ones users send) or 'flask quantize-model --from-history "
    "300' (the deployment's own recent uploads)."
)


def parse_precision(value: str | None) -> str:
    """``OPENVINO_PRECISION``, checked before any worker starts: a typo would
    otherwise only surface when each worker compiles the model."""
    precision = (value or DEFAULT_PRECISION).strip().lower()
    if precision not in PRECISIONS:
        raise ValueError(
            f"OPENVINO_PRECISION must be one of {', '.join(PRECISIONS)}, got {value!r}"
        )
    return precision


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) that still have native bf16 kernels.
# Below them the plugin still reports BF16, but a bf16 model either fails to
# compile (AVX2) or runs emulated, ~3x slower than f32 (AVX512_CORE). Any
# other value (AVX2_VNNI_2, a typo) also means f32: slower at worst, never a
# model that does not compile.
_BF16_ISA_PREFIXES = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX")
_BF16_ISA_PREFIXES += ("AVX10", "ALL", "DEFAULT")


def onednn_isa_cap(environ=os.environ) -> str | None:
    """The instruction set oneDNN is capped at, as oneDNN reads it, or None."""
    return environ.get("ONEDNN_MAX_CPU_ISA") or environ.get("DNNL_MAX_CPU_ISA")


def isa_cap_allows_bf16(environ=os.environ) -> bool:
    """False when the operator capped oneDNN below native bf16 (e.g.
    ``ONEDNN_MAX_CPU_ISA=AVX2``, as on a CPU without AVX-512)."""
    cap = onednn_isa_cap(environ)
    return not cap or cap.strip().upper().startswith(_BF16_ISA_PREFIXES)


def native_precision(core=None, environ=os.environ) -> str:
    """bf16 where OpenVINO's CPU plugin runs it natively (the CPU reports the
    BF16 capability: AMX or AVX512_BF16, and no oneDNN ISA cap rules it
    out), else f32."""
    if core is None:
        import openvino as ov

        core = ov.Core()
    capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    native = "BF16" in capabilities and isa_cap_allows_bf16(environ)
    return "bf16" if native else "f32"


def quantized_model_path(cache_dir: Path, spec: WeightsSpec, calibration: str) -> Path:
    """Where the INT8 model for these weights and this calibration set lives."""
    return Path(cache_dir) / f"resnet50-{fingerprint(spec)}-int8-{calibration}.xml"


def find_quantized(cache_dir: Path, spec: WeightsSpec) -> Path | None:
    """The newest INT8 model made for these weights, if any."""
    pattern = f"resnet50-{fingerprint(spec)}-int8-*.xml"
    found = [
        path
        for path in Path(cache_dir).glob(pattern)
        if path.with_suffix(".bin").is_file()
    ]
    return max(found, key=lambda path: path.stat().st_mtime) if found else None


def require_quantized(cache_dir: Path, spec: WeightsSpec) -> Path:
    """The INT8 model to serve, or an error that says which command makes one."""
    path = find_quantized(cache_dir, spec)
    if path is None:
        raise WeightsUnavailable(
            f"OPENVINO_PRECISION=int8 needs a quantized model for the weights "
            f"{fingerprint(spec)!r}, and {cache_dir} has none. {QUANTIZE_HELP}"
        )
    return path


def calibration_of(path: Path) -> str:
    """The calibration-set id in a quantized model's file name."""
    return path.stem.rpartition("-int8-")[2]


def converted_model_path(cache_dir: Path, spec: WeightsSpec) -> Path:
    """Where the OpenVINO IR for these weights lives (``.xml`` + ``.bin``)."""
    return Path(cache_dir) / f"resnet50-{fingerprint(spec)}.xml"


def ensure_converted(
    spec: WeightsSpec, cache_dir: Path, timeout_s: float = 900
) -> Path:
    """Convert the Keras model to OpenVINO IR unless it is cached already.

    Runs the conversion in a child process so that this process (the Gunicorn
    master, or a worker) never imports TensorFlow.
    """
    target = converted_model_path(cache_dir, spec)
    if target.is_file() and target.with_suffix(".bin").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    weights_arg = str(spec.path) if spec.kind == "file" else spec.kind
    command = [
        sys.executable,
        "-m",
        "app.inference.convert",
        weights_arg,
        str(target),
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise WeightsUnavailable(
            f"Converting the model to OpenVINO did not finish within {timeout_s:g} s "
            "(MODEL_CONVERT_TIMEOUT_S); the converted model is cached once it "
            "finishes, so a later start is fast."
        ) from None
    if result.returncode != 0 or not target.is_file():
        lines = (result.stderr or result.stdout or "").strip().splitlines()
        reason = lines[-1][:300] if lines else f"exit code {result.returncode}"
        raise WeightsUnavailable(f"Converting the model to OpenVINO failed: {reason}")
    return target


class OpenVINORuntime:
    """A compiled OpenVINO model with one infer request, used by one thread at
    a time."""

    name = "openvino"

    def __init__(
        self,
        weights: WeightsSpec,
        cache_dir: Path,
        *,
        threads: int = 0,
        precision: str = DEFAULT_PRECISION,
        model_path: Path | None = None,
        features: bool = True,
    ) -> None:
        self.weights = weights
        self.cache_dir = Path(cache_dir)
        # Set when the Gunicorn master converted the model before forking.
        self.model_path = Path(model_path) if model_path else None
        self.threads = threads
        # Also output the last conv block (class activation maps). Added to
        # the model when it is compiled, so the cached IR stays as converted.
        self.features = features
        self.class_weights: np.ndarray | None = None
        self.class_bias: np.ndarray | None = None
        self._channels_first = False  # the IR's layout of that output
        # What was asked for (auto, f32, ...); ``precision`` becomes what ran.
        self.requested = parse_precision(precision)
        self.precision = self.requested
        self.variant = f"openvino-{self.precision}"
        self._compiled = None
        self._request = None
        self._lock = threading.Lock()
        self._infer_lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._compiled is not None:
                return
            import openvino as ov

            core = ov.Core()
            native = native_precision(core)
            if self.requested == "int8":
                self.model_path = require_quantized(self.cache_dir, self.weights)
            elif self.model_path is None or not self.model_path.is_file():
                self.model_path = ensure_converted(self.weights, self.cache_dir)
            hint = self._hint(native)
            model = core.read_model(str(self.model_path))
            if self.features:
                self._add_features_output(core, model)
            model.reshape([-1, 224, 224, 3])  # any batch size, one compiled model
            config = {
                "PERFORMANCE_HINT": "LATENCY",
                "NUM_STREAMS": "1",
                "INFERENCE_PRECISION_HINT": hint,
                # OpenVINO pins its inference threads to cores by default, and
                # every Gunicorn worker picks the same ones: two one-thread
                # workers then share core 0 (measured 213 ms per image each,
                # instead of 93 ms unpinned, on 2 cores). The OS scheduler
                # spreads unpinned workers over the cores.
                "ENABLE_CPU_PINNING": False,
            }
            if self.threads:
                config["INFERENCE_NUM_THREADS"] = str(self.threads)
            self._compiled = core.compile_model(model, "CPU", config)
            self._request = self._compiled.create_infer_request()
            self._use_compiled_precision(hint)
            log.info(
                "OpenVINO model %s compiled (threads=%s, OPENVINO_PRECISION=%s, "
                "running %s; the CPU's native precision is %s)",
                self.model_path.name,
                self.threads or "auto",
                self.requested,
                self.variant.removeprefix("openvino-"),
                native,
            )

    def release_unused_memory(self) -> None:
        """Drop the weights file's pages from this process's resident set.

        Call it after the warm-up: the CPU plugin packs the weights into its
        kernels' layout on the first inference and does not read the file
        after that (a test checks batches of 1 to 8), but the mapping keeps
        its pages resident: ~100 MB of f32 weights per worker.
        """
        if self._compiled is None or self.model_path is None:
            return
        weights = self.model_path.with_suffix(".bin")
        before = resident_bytes(weights)
        release_mapped_file(weights)
        log.info(
            "%.0f MB of %s's resident pages released (the compiled model holds "
            "its own copy)",
            (before - resident_bytes(weights)) / 1e6,
            weights.name,
        )

    def _hint(self, native: str) -> str:
        """The INFERENCE_PRECISION_HINT to compile with.

        int8 layers run in int8 and the rest, as with auto, in the CPU's
        native precision. A reduced precision the CPU does not run natively
        runs in f32: the plugin would fall back by itself on such a CPU, but
        under a oneDNN ISA cap it fails to compile instead.
        """
        if self.requested in ("auto", "int8"):
            return native
        if self.requested != "f32" and native == "f32":
            cap = onednn_isa_cap()
            log.warning(
                "OPENVINO_PRECISION=%s is not native on this CPU%s; running f32",
                self.requested,
                f" (oneDNN capped at {cap})" if cap else "",
            )
            return "f32"
        return self.requested

    def _use_compiled_precision(self, hint: str) -> None:
        """Name the precision the CPU plugin chose, not the one asked for.

        The plugin falls back silently (f16 runs as bf16 on CPUs without
        native f16, bf16 as f32 on CPUs without bf16), and the variant keys the
        result cache: results must be filed under what really ran.
        """
        value = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        compiled = value.get_type_name()  # openvino.Type -> "f32", "bf16", "f16"
        if compiled != hint:
            log.warning(
                "OPENVINO_PRECISION=%s is not supported natively by this CPU; "
                "OpenVINO runs %s instead",
                hint,
                compiled,
            )
        if self.requested == "int8":
            # The calibration set changes the scores: it is part of the variant.
            self.precision = "int8"
            calibration = calibration_of(self.model_path)
            self.variant = f"openvino-int8-{calibration}-{compiled}"
        else:
            self.precision = compiled
            self.variant = f"openvino-{compiled}"

    def _add_features_output(self, core, model) -> None:
        """Output what feeds the global average pool (the last conv block), and
        read the dense layer's kernel and bias from the f32 IR.

        A quantized model's dense layer holds int8 constants, so its kernel
        and bias come from the f32 IR it was made from. Without them the
        runtime serves scores only (no maps), and says so in the log.
        """
        dense_source = model
        if self.requested == "int8":
            f32_path = converted_model_path(self.cache_dir, self.weights)
            found = f32_path.is_file()
            dense_source = core.read_model(str(f32_path)) if found else None
        try:
            pool = _global_pool(model)
            if dense_source is None:
                raise LookupError("no f32 model to read the dense layer from")
            self.class_weights, self.class_bias = dense_constants(dense_source)
        except LookupError as exc:
            log.warning("class activation maps are off: %s", exc)
            self.features = False
            return
        features = pool.input_value(0)
        # The IR computes in NCHW (the converter transposes Keras' NHWC): the
        # maps want channels last, as Keras gives them.
        shape = features.get_partial_shape()
        self._channels_first = shape[1].is_static and (
            shape[1].get_length() == self.class_weights.shape[0]
        )
        model.add_outputs([features])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.forward(batch)[0]

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self._request is None:
            raise RuntimeError("runtime not loaded")
        # One inference at a time per worker, on INFERENCE_NUM_THREADS threads:
        # an infer request per Gunicorn thread would let a busy worker run
        # several at once (more threads than cores); the other threads
        # meanwhile decode the next uploads.
        with self._infer_lock:
            outputs = self._request.infer({0: np.ascontiguousarray(batch)})
            probabilities = np.array(outputs[0], copy=True)
            if not self.features:
                return probabilities, None
            features = outputs[1]
            if self._channels_first:
                features = features.transpose(0, 2, 3, 1)
            return probabilities, np.ascontiguousarray(features)


def _global_pool(model):
    """ResNet50's global average pool: the last ReduceMean over a 4-D tensor."""
    pools = [
        node
        for node in model.get_ordered_ops()
        if node.get_type_name() == "ReduceMean"
        and node.input_value(0).get_partial_shape().rank.get_length() == 4
    ]
    if not pools:
        raise LookupError("the model has no global average pool")
    return pools[-1]


def _constant_input(node):
    """The node's one Constant input and its index, or None."""
    for index, value in enumerate(node.input_values()):
        if value.get_node().get_type_name() == "Constant":
            return index, value.get_node().get_data()
    return None


def dense_constants(model) -> tuple[np.ndarray, np.ndarray]:
    """The kernel ``(channels, classes)`` and bias ``(classes,)`` of the dense
    layer after the global average pool, read from the IR's constants."""
    node = _global_pool(model)
    kernel = bias = None
    for _ in range(8):  # pool -> [Reshape] -> MatMul -> Add -> Softmax
        targets = list(node.output(0).get_target_inputs())
        if len(targets) != 1:
            break
        node = next(iter(targets)).get_node()
        kind = node.get_type_name()
        if kind == "MatMul" and kernel is None:
            found = _constant_input(node)
            if found is None:
                break
            index, data = found
            attributes = node.get_attributes()
            transposed = attributes.get("transpose_b" if index == 1 else "transpose_a")
            # Copies: the constants' memory belongs to the model object.
            kernel = np.array(data, dtype=np.float32, copy=True)
            kernel = np.ascontiguousarray(kernel.T if transposed else kernel)
        elif kind == "Add" and kernel is not None:
            found = _constant_input(node)
            if found is None:
                break
            bias = np.array(found[1], dtype=np.float32, copy=True).reshape(-1)
            break
        elif kind == "Softmax":
            if kernel is not None:  # a zero bias is folded away on conversion
                bias = np.zeros(kernel.shape[1], dtype=np.float32)
            break
    if kernel is None or bias is None or kernel.shape[1] != bias.shape[0]:
        raise LookupError("the dense layer's constants were not found")
    return kernel, bias
