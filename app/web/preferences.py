"""A person's page preferences, kept in their session."""

from __future__ import annotations

from flask import session

# Below this top score a result is shown as "not sure", unless the person
# chose another threshold.
DEFAULT_MIN_CONFIDENCE = 0.2
MIN_CONFIDENCE_KEY = "min_confidence"


def current_min_confidence() -> float:
    """The person's "not sure" threshold, from 0 to 1."""
    value = session.get(MIN_CONFIDENCE_KEY)
    if isinstance(value, int | float) and 0.0 <= value <= 1.0:
        return float(value)
    return DEFAULT_MIN_CONFIDENCE
