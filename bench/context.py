"""What every section of the report reads (``Bench``), and how a section starts."""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import program
from devtools.photos import photo_jpeg

SHARED_IMAGES = program.ROOT.parent / "shared" / "images"
DEFAULT_IMAGE = SHARED_IMAGES / "bay-1365x1365.jpg"
PHONE_IMAGE = SHARED_IMAGES / "phone-4032x3024-exif-rotated.jpg"


@dataclass
class Bench:
    """What every step reads: the options, the folders and the photo."""

    args: argparse.Namespace
    workdir: Path  # raw files: Locust's CSVs, the servers' logs
    cache: Path  # converted models
    image: Path  # the photo, as a file
    name: str
    data: bytes
    backends: list[str]

    @property
    def openvino(self) -> bool:
        return "openvino" in self.backends


def load_image(path: Path | None, fallback: tuple[int, int]) -> tuple[str, bytes]:
    """The photo at ``path``, or a generated one of size ``fallback``."""
    if path and path.is_file():
        return path.name, path.read_bytes()
    width, height = fallback
    return f"generated-{width}x{height}.jpg", photo_jpeg(fallback)


def prepare(args: argparse.Namespace) -> Bench:
    """A folder for the raw files, the model cache and the photo on disk."""
    from app.inference.backends import openvino_available

    workdir = Path(tempfile.mkdtemp(prefix="snapclass-bench-"))
    image = args.image or DEFAULT_IMAGE
    name, data = load_image(image, (1365, 1365))
    if not image.is_file():
        image = workdir / name
        image.write_bytes(data)
    backends = ["tensorflow"] + (["openvino"] if openvino_available() else [])
    return Bench(args, workdir, program.model_cache(), image, name, data, backends)


def section(title: str) -> None:
    print(f"\n## {title}\n", flush=True)
