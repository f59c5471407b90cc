"""ImageNet class labels (Keras' ``imagenet_class_index.json``)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from .weights import keras_cache_dir

log = logging.getLogger(__name__)

NUM_CLASSES = 1000
LABELS_FILENAME = "imagenet_class_index.json"


@dataclass(frozen=True)
class Labels:
    """Class id -> (wnid, name). Without a label file names are ``class <id>``."""

    entries: tuple[tuple[str | None, str], ...]
    available: bool
    source: str | None = None

    def __getitem__(self, class_id: int) -> tuple[str | None, str]:
        return self.entries[class_id]

    @classmethod
    def unavailable(cls) -> Labels:
        return cls(tuple((None, f"class {i}") for i in range(NUM_CLASSES)), False)


def parse_labels(text: str) -> tuple[tuple[str | None, str], ...]:
    """Parse Keras' label file: ``{"0": ["n01440764", "tench"], ...}``."""
    raw = json.loads(text)
    entries = []
    for class_id in range(NUM_CLASSES):
        wnid, name = raw[str(class_id)]
        entries.append((str(wnid), str(name)))
    return tuple(entries)


def default_labels_path() -> Path:
    """Where ``keras.applications.imagenet_utils`` caches the label file."""
    return keras_cache_dir() / LABELS_FILENAME


def load_labels(path: str | Path | None = None) -> Labels:
    """Load labels from ``path`` or Keras' cache; degrade to class numbers."""
    candidate = Path(path) if path else default_labels_path()
    try:
        entries = parse_labels(candidate.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("ImageNet labels not found at %s; showing class numbers", candidate)
        return Labels.unavailable()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ImageNet labels at %s are unreadable (%s)", candidate, exc)
        return Labels.unavailable()
    return Labels(entries, True, str(candidate))
