"""Class activation maps: where in the photo the network saw each label.

ResNet50 ends in a global average pool and one dense layer, so the map is
exact and needs no gradients (Zhou et al., 2016): for class ``c``,
``CAM_c(y, x) = sum_k w[k, c] * A_k(y, x)`` over the last convolutional
block's 7x7x2048 output ``A``, and ``mean(CAM_c) + b_c`` is the logit of ``c``.
"""

from __future__ import annotations

import numpy as np

# The last convolutional block's spatial size for a 224x224 input.
MAP_SIZE = (7, 7)


def activation_maps(
    features: np.ndarray, weights: np.ndarray, class_ids: np.ndarray
) -> np.ndarray:
    """Raw maps of the given classes, one batched matrix product.

    :param features: ``(N, H, W, C)`` last conv block output.
    :param weights: ``(C, classes)`` dense-layer kernel.
    :param class_ids: ``(N, k)`` the classes to map, per image.
    :return: ``(N, k, H, W)`` float32.
    """
    n, height, width, channels = features.shape
    ids = np.asarray(class_ids, dtype=np.intp).reshape(n, -1)
    selected = np.moveaxis(weights[:, ids], 0, 1)  # (N, C, k)
    flat = features.reshape(n, height * width, channels).astype(np.float32)
    maps = np.matmul(flat, selected.astype(np.float32, copy=False))  # (N, HW, k)
    return maps.transpose(0, 2, 1).reshape(n, ids.shape[1], height, width)


def normalise(maps: np.ndarray) -> np.ndarray:
    """Each map scaled to 0..1 on its own (a flat map becomes all zeros)."""
    maps = np.asarray(maps, dtype=np.float32)
    low = maps.min(axis=(-2, -1), keepdims=True)
    span = maps.max(axis=(-2, -1), keepdims=True) - low
    return np.divide(maps - low, span, out=np.zeros_like(maps), where=span > 0)
