"""A description of the running instance, read from the process itself."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from app.extensions import db
from app.model_service import ModelService

PACKAGES = (
    "flask",
    "werkzeug",
    "gunicorn",
    "sqlalchemy",
    "numpy",
    "pillow",
    "openvino",
    "nncf",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def system_info(
    config: Mapping[str, Any], service: ModelService, *, admin: bool = False
) -> dict:
    """Model, limits and cache for every user; versions, platform, workers and
    database kind for admins only (they help an attacker pick an exploit).
    Never URLs or secrets. ``config`` is the app's settings, ``service`` its
    model."""
    classifier = service.classifier
    public = {
        "model": {
            **classifier.info.as_dict(),
            "fingerprint": classifier.fingerprint,
            # What was asked for; "precision" above is what runs.
            "precision_setting": config["OPENVINO_PRECISION"],
            "batch_max_size": config["BATCH_MAX_SIZE"],
            "batch_max_delay_ms": config["BATCH_MAX_DELAY_MS"],
            "ready": service.ready,
        },
        "result_cache": config["RESULT_CACHE"],
        "result_cache_shared": config["RESULT_CACHE_SHARED"],
        "rate_limits": {"predict": config["PREDICT_RATE_LIMIT"]},
        "max_upload_bytes": config["MAX_CONTENT_LENGTH"],
        "max_files_per_request": config["MAX_FILES_PER_REQUEST"],
    }
    if not admin:
        return public
    return {
        **public,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": package_versions(),
        "model": {**public["model"], "load_seconds": classifier.load_seconds},
        "server": {
            "software": os.environ.get("SERVER_SOFTWARE", "unknown"),
            "workers": os.environ.get("SNAPCLASS_WORKERS"),
            "threads": os.environ.get("SNAPCLASS_THREADS"),
            "intra_op_threads": config["INTRA_OP_THREADS"],
            "pid": os.getpid(),
        },
        "database": db.engine.dialect.name,
        "rate_limits": {
            "storage": config["RATELIMIT_STORAGE_URI"].split(":", 1)[0],
            # memory:// counts per worker process: not a global limit.
            "shared": not config["RATELIMIT_STORAGE_URI"].startswith("memory://"),
            "predict": config["PREDICT_RATE_LIMIT"],
        },
    }
