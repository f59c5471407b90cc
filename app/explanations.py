"""Why this label: the class activation maps stored with a prediction.

The classifier gives each image's raw maps (``app/inference/cam.py``); a row
stores them scaled to 0..1 per label, in the order of its ``label_scores``, so
that a cache hit asking for fewer labels copies the first maps. The API and
the pages read them from here.
"""

from __future__ import annotations

import numpy as np

from app.inference.cam import MAP_SIZE
from app.inference.cam import normalise

# Three decimals: finer than any colour step, and ~1.8 KB per row for 5 labels.
DECIMALS = 3
# Cells at or above this share of the map's maximum count as "where it looked".
STRONG = 0.5


def stored(raw_maps: np.ndarray | None) -> dict | None:
    """What a row keeps: ``{"size": [7, 7], "maps": [k 7x7 grids]}``."""
    if raw_maps is None:
        return None
    # float64 before rounding: float32 0.323 prints as 0.3230000138282776.
    scaled = np.round(normalise(raw_maps).astype(np.float64), DECIMALS)
    return {"size": list(MAP_SIZE), "maps": scaled.tolist()}


def trimmed(explanation: dict | None, top_k: int) -> dict | None:
    """The maps of the first ``top_k`` labels (a cache hit asking for fewer)."""
    if not explanation:
        return None
    return {**explanation, "maps": explanation["maps"][:top_k]}


def api_dict(label_scores: list[dict], explanation: dict | None) -> dict | None:
    """``{"size": [7, 7], "maps": {label: grid}}`` for the API.

    ImageNet names two classes "crane" and two "maillot"; where both are among
    the labels, the map of the higher-scored one is given.
    """
    if not explanation:
        return None
    maps: dict[str, list] = {}
    for item, grid in zip(label_scores, explanation["maps"], strict=False):
        maps.setdefault(item["label"], grid)
    return {"size": explanation["size"], "maps": maps}


def page_maps(label_scores: list[dict], explanation: dict | None) -> list[dict]:
    """Per label, what the "Why?" overlay shows: label, grid and a description."""
    if not explanation:
        return []
    return [
        {
            "label": item["label"],
            "score": item["score"],
            "grid": grid,
            "description": describe(grid),
        }
        for item, grid in zip(label_scores, explanation["maps"], strict=False)
    ]


ROWS = ("upper", "middle", "lower")
COLUMNS = ("left", "centre", "right")


def region(row: int, column: int, size: tuple[int, int] = MAP_SIZE) -> str:
    """The part of the photo a cell lies in, in words ("upper left", "centre")."""
    vertical = ROWS[min(2, row * 3 // size[0])]
    horizontal = COLUMNS[min(2, column * 3 // size[1])]
    if vertical == "middle" and horizontal == "centre":
        return "centre"
    if vertical == "middle":
        return f"middle {horizontal}"
    if horizontal == "centre":
        return f"{vertical} centre"
    return f"{vertical} {horizontal}"


def describe(grid: list[list[float]]) -> str:
    """The map in words, for screen readers: where it is strongest and how much
    of the photo it covers, e.g. "strongest in the upper left; covers about 20%
    of the photo"."""
    values = np.asarray(grid, dtype=np.float32)
    if values.size == 0 or float(values.max()) <= 0.0:
        return "the map is flat: no part of the photo stands out"
    row, column = np.unravel_index(int(np.argmax(values)), values.shape)
    strong = float((values >= STRONG * values.max()).mean())
    where = region(int(row), int(column), values.shape)
    return f"strongest in the {where}; covers about {round(strong * 100)}% of the photo"
