"""Download ResNet50's ImageNet weights and labels into Keras' cache.

Run as ``python -m app.inference.fetch`` (what ``flask fetch-model`` and the
Gunicorn master do), so that TensorFlow is imported in a short-lived process.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    from keras.applications import imagenet_utils
    from keras.applications import resnet50

    resnet50.ResNet50(weights="imagenet")
    try:
        imagenet_utils.decode_predictions(_dummy_predictions(), top=1)
    except Exception as exc:  # labels are optional: the UI degrades without them
        print(f"warning: could not fetch ImageNet labels: {exc}", file=sys.stderr)
    return 0


def _dummy_predictions():
    import numpy as np

    return np.zeros((1, 1000), dtype="float32")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
