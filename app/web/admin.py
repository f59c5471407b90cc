"""The admin page: traffic, errors, latency, cache and labels at a glance.

Two sources: the database (every instance writes there, so those numbers cover
the whole deployment) and this instance's Prometheus metrics (since it started;
Grafana shows them for all instances). Only users flagged with ``flask
set-admin`` see the page; everyone else gets the ordinary 404.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import timedelta

import sqlalchemy as sa
from flask import Blueprint
from flask import abort
from flask import make_response
from flask import render_template
from flask_login import current_user

from app.extensions import db
from app.models import Prediction
from app.models import utcnow
from app.observability.metrics import collect_samples
from app.services import feedback

bp = Blueprint("admin", __name__)

WINDOWS = (("Last hour", timedelta(hours=1)), ("Last day", timedelta(days=1)))
# Latency percentiles read at most this many recent rows per window.
LATENCY_SAMPLE = 5000
TOP_LABELS = 10
STAGES = ("decode", "preprocess", "inference")


@bp.before_request
def require_admin():
    """404, not 403: the page's existence is nobody else's business."""
    if not (current_user.is_authenticated and current_user.is_admin):
        abort(404)


@bp.route("")
def index():
    """Usage from the database and this instance's metrics."""
    now = utcnow()
    windows = [
        {"label": label, **window_stats(now - length)} for label, length in WINDOWS
    ]
    response = make_response(
        render_template(
            "admin/index.html",
            windows=windows,
            instance=instance_stats(),
            agreement=feedback.agreement(),
            generated_at=now,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def window_stats(since) -> dict:
    """Predictions stored since ``since``: count, cache ratio, users, latency."""
    recent = Prediction.created_at >= since
    images, cached, users = db.session.execute(
        sa.select(
            sa.func.count(Prediction.id),
            sa.func.coalesce(
                sa.func.sum(sa.case((Prediction.cached.is_(True), 1), else_=0)), 0
            ),
            sa.func.count(sa.distinct(Prediction.user_id)),
        ).where(recent)
    ).one()
    count = sa.func.count(Prediction.id)
    labels = db.session.execute(
        sa.select(Prediction.top_label, count)
        .where(recent)
        .group_by(Prediction.top_label)
        .order_by(count.desc(), Prediction.top_label)
        .limit(TOP_LABELS)
    ).all()
    timings = db.session.scalars(
        sa.select(Prediction.timing_ms)
        .where(recent, Prediction.cached.is_(False))
        .order_by(Prediction.id.desc())
        .limit(LATENCY_SAMPLE)
    ).all()
    model_ms = sorted(
        sum(float((t or {}).get(stage) or 0.0) for stage in STAGES) for t in timings
    )
    return {
        "images": images,
        "cached": int(cached),
        "cache_ratio": cached / images if images else None,
        "active_users": users,
        "p50_ms": percentile(model_ms, 0.50),
        "p95_ms": percentile(model_ms, 0.95),
        "top_labels": [
            {"label": label, "count": n, "share": n / images} for label, n in labels
        ],
    }


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' ``histogram_quantile``: cumulative ``{le: count}`` -> seconds."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] == 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def instance_stats() -> dict:
    """This instance's counters since start, summed over its workers."""
    samples = collect_samples()

    def sample_values(name: str) -> list[tuple[dict, float]]:
        return samples.get(name, [])

    def summed(name: str) -> float:
        return sum(value for _, value in sample_values(name))

    by_status: dict[str, float] = defaultdict(float)
    for labels, value in sample_values("snapclass_http_requests_total"):
        by_status[labels["status"]] += value
    total = sum(by_status.values())
    errors_5xx = sum(v for s, v in by_status.items() if s.startswith("5"))
    errors_4xx = sum(v for s, v in by_status.items() if s.startswith("4"))
    latency: dict[str, dict[float, float]] = {"all": {}, "predict": {}}
    buckets = sample_values("snapclass_http_request_duration_seconds_bucket")
    for labels, value in buckets:
        bound = float(labels["le"])
        keys = ["all"] + (["predict"] if labels["route"] == "/predict" else [])
        for key in keys:
            latency[key][bound] = latency[key].get(bound, 0.0) + value
    hits = summed("snapclass_result_cache_hits_total")
    misses = summed("snapclass_result_cache_misses_total")
    rejected = defaultdict(float)
    for labels, value in sample_values("snapclass_uploads_rejected_total"):
        rejected[labels["reason"]] += value
    overload = defaultdict(float)
    for labels, value in sample_values("snapclass_http_overload_responses_total"):
        overload[labels["status"]] += value
    return {
        "requests": int(total),
        "error_rate_5xx": errors_5xx / total if total else None,
        "error_rate_4xx": errors_4xx / total if total else None,
        "latency": {
            key: {
                "p50_ms": _ms(histogram_quantile(0.50, buckets)),
                "p95_ms": _ms(histogram_quantile(0.95, buckets)),
            }
            for key, buckets in latency.items()
        },
        "cache_hits": int(hits),
        "cache_misses": int(misses),
        "cache_ratio": hits / (hits + misses) if hits + misses else None,
        "in_flight": int(summed("snapclass_http_requests_in_flight")),
        "too_many_requests": int(overload.get("429", 0)),
        "unavailable": int(overload.get("503", 0)),
        "uploads_rejected": sorted(
            ((reason, int(n)) for reason, n in rejected.items()),
            key=lambda item: (-item[1], item[0]),
        ),
        "worker_restarts": int(summed("snapclass_worker_restarts_total")),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
