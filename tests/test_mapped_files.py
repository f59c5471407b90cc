"""The weights file's pages leave a worker's resident set once the model is
compiled, and nothing reads them back."""

from __future__ import annotations

import mmap
import os

import numpy as np
import pytest

from app.inference import OpenVINORuntime
from app.inference import parse_weights
from app.inference.mapped_files import mapped_ranges
from app.inference.mapped_files import release_mapped_file
from app.inference.openvino_runtime import converted_model_path

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc"
)
MB = 1024 * 1024


def resident_bytes(path) -> int:
    """This process's resident bytes of its mappings of ``path`` (smaps)."""
    target = os.path.realpath(path)
    total, inside = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split(maxsplit=5)
            if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
                inside = len(fields) == 6 and fields[5].strip() == target
            elif inside and fields[0] == "Rss:":
                total += int(fields[1]) * 1024
    return total


def test_released_pages_leave_the_resident_set_and_read_back_unchanged(tmp_path):
    path = tmp_path / "weights bin"  # a space: /proc/self/maps keeps it
    content = np.random.default_rng(1).integers(0, 255, 8 * MB, dtype=np.uint8)
    path.write_bytes(content.tobytes())
    with path.open("rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        assert sum(mapped[i] for i in range(0, len(mapped), 4096)) >= 0
        assert resident_bytes(path) >= 7 * MB
        assert len(mapped_ranges(path)) == 1

        assert release_mapped_file(path) >= 8 * MB
        assert resident_bytes(path) < MB
        assert mapped[:] == content.tobytes()  # faulted back from the file
    finally:
        mapped.close()
    assert mapped_ranges(path) == []
    assert release_mapped_file(path) == 0


def test_a_path_that_is_not_mapped_releases_nothing(tmp_path):
    assert release_mapped_file(tmp_path / "absent.bin") == 0


@pytest.mark.parametrize("precision", ["f32", "bf16"])
def test_the_compiled_model_does_not_read_its_weights_file_again(
    classifier, model_cache_dir, precision
):
    """Measured on a 2-core Zen 4: a worker's RSS fell by ~97 MB (the whole
    f32 .bin), and stayed there after batches of 1 to 8."""
    weights = converted_model_path(model_cache_dir, parse_weights("random"))
    runtime = OpenVINORuntime(
        parse_weights("random"), model_cache_dir, threads=1, precision=precision
    )
    runtime.load()
    before = runtime(np.zeros((1, 224, 224, 3), np.float32))
    for size in (1, 4, 8):
        runtime(np.full((size, 224, 224, 3), 100.0, np.float32))
    assert resident_bytes(weights.with_suffix(".bin")) < 4 * MB
    np.testing.assert_array_equal(
        runtime(np.zeros((1, 224, 224, 3), np.float32)), before
    )
