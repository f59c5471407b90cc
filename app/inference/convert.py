"""Convert ResNet50 (Keras) to OpenVINO IR: ``python -m app.inference.convert
WEIGHTS TARGET.xml``. Writes to a temporary name and renames, so concurrent
starts never see half a model."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(weights: str, target: str) -> int:
    import warnings

    import openvino as ov

    from app.inference.runtime import TensorFlowRuntime
    from app.inference.weights import parse_weights

    runtime = TensorFlowRuntime(parse_weights(weights), features=False)
    runtime.load()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras' input-structure notice
        model = ov.convert_model(runtime.keras_model)
    temporary = f"{target}.{os.getpid()}.tmp.xml"
    ov.save_model(model, temporary, compress_to_fp16=False)
    os.replace(temporary[: -len(".xml")] + ".bin", target[: -len(".xml")] + ".bin")
    os.replace(temporary, target)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(
            "usage: python -m app.inference.convert WEIGHTS TARGET.xml", file=sys.stderr
        )
        sys.exit(2)
    try:
        sys.exit(main(sys.argv[1], sys.argv[2]))
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
