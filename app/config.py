"""Settings, read from the environment. Every setting is listed in the README.

Each setting is read when an app is created (``app.config.from_object``), not
when this module is imported: the Gunicorn master imports the app, then sets
what it decided (the converted model's path) before the workers create theirs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from app.http.params import MAX_DIGITS
from app.http.params import BadParameter
from app.http.params import parse_int
from app.inference import parse_precision
from app.inference import resolve_backend


class FromEnv:
    """A setting read from the environment variable ``name`` each time it is
    looked up; ``default`` when unset or empty, else ``parse(value)``."""

    def __init__(
        self, name: str, default: Any = None, parse: Callable[[str], Any] = str
    ) -> None:
        self.name = name
        self.default = default
        self.parse = parse

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        value = os.environ.get(self.name)
        if value is None or value.strip() == "":
            return self.default
        try:
            return self.parse(value)
        except ValueError as exc:
            raise ValueError(f"{self.name}: {exc}, got {value!r}") from None


def as_bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def as_int(value: str) -> int:
    """A whole number, by the parser requests use (``app/http/params.py``):
    ASCII digits only, so " 7 ", "１２" and "1_0" stop start-up too."""
    try:
        return parse_int(value, "setting", maximum=10**MAX_DIGITS - 1)
    except BadParameter:
        raise ValueError(
            f"must be a whole number of at most {MAX_DIGITS} ASCII digits"
        ) from None


# PRAGMA synchronous levels SQLite accepts, by name.
SQLITE_SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


def sqlite_synchronous(value: str) -> str:
    """``SQLITE_SYNCHRONOUS``, checked at start-up rather than at first query."""
    level = (value or "").strip().upper()
    if level not in SQLITE_SYNCHRONOUS_LEVELS:
        raise ValueError(
            "SQLITE_SYNCHRONOUS must be one of "
            f"{', '.join(SQLITE_SYNCHRONOUS_LEVELS)}, got {value!r}"
        )
    return level


def as_float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError("must be a number") from None


def hours(value: str) -> timedelta:
    return timedelta(hours=as_int(value))


def minutes(value: str) -> timedelta:
    return timedelta(minutes=as_int(value))


def database_url(value: str | None) -> str | None:
    """Accept the ``postgres://`` URLs hosting platforms hand out."""
    if value and value.startswith("postgres://"):
        return "postgresql+psycopg://" + value[len("postgres://") :]
    if value and value.startswith("postgresql://"):
        return "postgresql+psycopg://" + value[len("postgresql://") :]
    return value


class Config:
    """Defaults for a single host; everything can be overridden by environment."""

    # Secrets: SECRET_KEY from the environment, else generated once and kept in
    # instance/secret_key (see app.create_app).
    SECRET_KEY = FromEnv("SECRET_KEY")

    # Database: SQLite under instance/ unless DATABASE_URL says otherwise.
    SQLALCHEMY_DATABASE_URI = FromEnv("DATABASE_URL", None, database_url)
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # SQLite only: NORMAL syncs the write-ahead log at checkpoints, FULL at
    # every commit (see app/database.py for the trade-off).
    SQLITE_SYNCHRONOUS = FromEnv("SQLITE_SYNCHRONOUS", "NORMAL")

    # Sessions and cookies.
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = FromEnv("SESSION_COOKIE_SECURE", False, as_bool)
    # A sign-in ends after this long, however active (absolute timeout) ...
    PERMANENT_SESSION_LIFETIME = FromEnv(
        "SESSION_ABSOLUTE_HOURS", timedelta(hours=24), hours
    )
    # ... or after this long without a request (idle timeout).
    SESSION_IDLE_TIMEOUT = FromEnv(
        "SESSION_IDLE_MINUTES", timedelta(minutes=120), minutes
    )
    REMEMBER_COOKIE_HTTPONLY = True
    WTF_CSRF_TIME_LIMIT = None  # tokens live as long as the session does
    # CSRF is checked in app.auth.security, where bearer-token requests are exempt.
    WTF_CSRF_CHECK_DEFAULT = False

    # Uploads.
    MAX_CONTENT_LENGTH = FromEnv("MAX_UPLOAD_BYTES", 10 * 1024 * 1024, as_int)
    MAX_FILES_PER_REQUEST = FromEnv("MAX_FILES_PER_REQUEST", 16, as_int)
    MAX_IMAGE_PIXELS = FromEnv("MAX_IMAGE_PIXELS", 40_000_000, as_int)
    # Decode bounds (figures in docs/reliability.md): JPEG scans
    # (each walks every block of the image), CPU seconds of one decode (0: no
    # limit), and the estimated peak memory of the decodes a worker runs at
    # once (0: no limit; the rest wait, then 503).
    MAX_JPEG_SCANS = FromEnv("MAX_JPEG_SCANS", 100, as_int)
    DECODE_CPU_BUDGET_S = FromEnv("DECODE_CPU_BUDGET_S", 3.0, as_float)
    DECODE_MEMORY_BUDGET_MB = FromEnv("DECODE_MEMORY_BUDGET_MB", 768, as_int)
    DEFAULT_TOP_K = 5
    # Answer re-uploads of identical bytes from the database (same model only).
    RESULT_CACHE = FromEnv("RESULT_CACHE", True, as_bool)
    MAX_TOP_K = 20

    # Model.
    MODEL_WEIGHTS = FromEnv("MODEL_WEIGHTS", "imagenet")
    IMAGENET_LABELS = FromEnv("IMAGENET_LABELS")
    # auto: OpenVINO on CPU, TensorFlow when it can use a visible GPU.
    INFERENCE_BACKEND = FromEnv("INFERENCE_BACKEND", "auto")
    # auto: bf16 where the CPU runs it natively (AMX, AVX512_BF16), else f32;
    # f32 matches Keras to 1e-6; int8 needs `flask quantize-model` first.
    OPENVINO_PRECISION = FromEnv("OPENVINO_PRECISION", "auto")
    # Converted models, keyed by the weights' fingerprint (default instance/models).
    MODEL_CACHE_DIR = FromEnv("MODEL_CACHE_DIR")
    # Converting ResNet50 takes ~20 s; a stuck conversion stops start-up.
    MODEL_CONVERT_TIMEOUT_S = FromEnv("MODEL_CONVERT_TIMEOUT_S", 900, as_int)
    # Set by the Gunicorn master after it converted the model (not for people).
    OPENVINO_MODEL = FromEnv("SNAPCLASS_OPENVINO_MODEL")
    # 0 = let TensorFlow decide; gunicorn.conf.py sets these per worker.
    INTRA_OP_THREADS = FromEnv("INTRA_OP_THREADS", 0, as_int)
    INTER_OP_THREADS = FromEnv("INTER_OP_THREADS", 0, as_int)

    # Rate limits (Flask-Limiter). memory:// counts per worker; use Redis
    # (redis://127.0.0.1:6379) for limits that hold across workers and instances.
    RATELIMIT_STORAGE_URI = FromEnv("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_HEADERS_ENABLED = True
    # Distinct prefixes let several deployments share one Redis.
    RATELIMIT_KEY_PREFIX = FromEnv("RATELIMIT_KEY_PREFIX", "snapclass")
    # If Redis is down, limit per process instead of failing requests.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    PREDICT_RATE_LIMIT = FromEnv("PREDICT_RATE_LIMIT", "600 per minute")
    # Wrong passwords (sign-in, password change, account deletion together):
    # per account from one address, per address, per account.
    LOGIN_LIMIT_ACCOUNT_IP = FromEnv("LOGIN_LIMIT_ACCOUNT_IP", "10 per 15 minutes")
    LOGIN_LIMIT_IP = FromEnv("LOGIN_LIMIT_IP", "50 per 15 minutes")
    LOGIN_LIMIT_ACCOUNT = FromEnv("LOGIN_LIMIT_ACCOUNT", "100 per hour")

    # Overload: at most this many /predict requests in a worker at once (being
    # decoded, waiting for or running the model); more get 503 at once. 12 > 10
    # so that 10 clients posting back to back never see a 503, even when they
    # all land on the same worker.
    MAX_INFLIGHT_PER_WORKER = FromEnv("MAX_INFLIGHT_PER_WORKER", 12, as_int)

    # Proxies whose X-Forwarded-For/-Proto are believed (comma-separated
    # addresses or CIDR ranges, e.g. "127.0.0.1,10.0.0.0/8"); none by default.
    TRUSTED_PROXIES = FromEnv("TRUSTED_PROXIES", "")
    # Strict-Transport-Security on HTTPS responses.
    HSTS_SECONDS = FromEnv("HSTS_SECONDS", 31536000, as_int)

    # Observability. /metrics answers these client addresses (comma-separated
    # addresses or CIDR ranges; empty = none) or "Authorization: Bearer
    # METRICS_TOKEN"; everyone else gets a 404.
    METRICS_ALLOW = FromEnv("METRICS_ALLOW", "127.0.0.1/32,::1")
    METRICS_TOKEN = FromEnv("METRICS_TOKEN")
    # One JSON line per request on stdout (request id, user, route, status, time).
    REQUEST_LOG = FromEnv("REQUEST_LOG", True, as_bool)

    # /readyz answers 503 when the disk holding a SQLite database has less free.
    READY_MIN_FREE_MB = FromEnv("READY_MIN_FREE_MB", 64, as_int)

    # Pages.
    HISTORY_PAGE_SIZE = FromEnv("HISTORY_PAGE_SIZE", 20, as_int)
    PASSWORD_MIN_LENGTH = 8
    PASSWORD_MAX_LENGTH = 256

    # Security hardening, kept together: see the README's Security section.
    # The result cache answers from any user's identical upload, not only the
    # same user's: saves inference, but tells a user that someone else sent
    # the same bytes before ("cached": true, the shared page's note).
    RESULT_CACHE_SHARED = FromEnv("RESULT_CACHE_SHARED", False, as_bool)
    # Sign-up attempts (each costs an argon2 hash): per address and in total.
    REGISTER_LIMIT_IP = FromEnv("REGISTER_LIMIT_IP", "20 per hour")
    REGISTER_LIMIT_TOTAL = FromEnv("REGISTER_LIMIT_TOTAL", "500 per hour")
    # Batches one user may create (POST /api/batches), and how many of them
    # may stand empty at once; an empty batch older than EMPTY_BATCH_MINUTES
    # is deleted (a folder upload fills its batch within seconds).
    BATCH_RATE_LIMIT = FromEnv("BATCH_RATE_LIMIT", "60 per hour")
    MAX_EMPTY_BATCHES = FromEnv("MAX_EMPTY_BATCHES", 20, as_int)
    EMPTY_BATCH_TTL = FromEnv("EMPTY_BATCH_MINUTES", timedelta(minutes=60), minutes)
    # Active API tokens a user may hold (the /predict limit counts per user).
    MAX_TOKENS_PER_USER = FromEnv("MAX_TOKENS_PER_USER", 20, as_int)
    # What one account may store (its history rows and their distinct
    # thumbnails, app/services/storage.py); past it uploads get 409
    # storage_quota_exceeded until the person deletes history. 0: no cap.
    MAX_STORED_BYTES_PER_USER = FromEnv(
        "MAX_STORED_BYTES_PER_USER", 1024 * 1024 * 1024, as_int
    )
    # Seconds a request body may take to arrive; then 408 and the connection
    # closes (app/http/body_deadline.py). 0 turns the bound off.
    BODY_TIMEOUT_S = FromEnv("BODY_TIMEOUT_S", 30, as_int)
    # Bodies of signed-out clients (sign-in, sign-up) a worker reads at once;
    # more get 503 at once, so slow ones cannot take every thread.
    MAX_ANONYMOUS_BODIES_PER_WORKER = FromEnv(
        "MAX_ANONYMOUS_BODIES_PER_WORKER", 4, as_int
    )
    # Inference speed: batching across requests in each worker. One
    # loop runs up to BATCH_MAX_SIZE queued images at once, waiting at most
    # BATCH_MAX_DELAY_MS after the oldest for more (0: take what is queued).
    # BATCH_MAX_SIZE=1 runs each request alone. Defaults: docs/performance.md.
    BATCH_MAX_SIZE = FromEnv("BATCH_MAX_SIZE", 4, as_int)
    BATCH_MAX_DELAY_MS = FromEnv("BATCH_MAX_DELAY_MS", 0, as_int)


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "testing-secret-key"
    SQLALCHEMY_DATABASE_URI = FromEnv(
        "TEST_DATABASE_URL", "sqlite:///:memory:", database_url
    )
    MODEL_WEIGHTS = "random"


class ProductionConfig(Config):
    """Refuses to start without an explicit secret key and database."""

    SESSION_COOKIE_SECURE = FromEnv("SESSION_COOKIE_SECURE", True, as_bool)

    @classmethod
    def check(cls) -> None:
        missing = [
            name
            for name in ("SECRET_KEY", "SQLALCHEMY_DATABASE_URI")
            if not getattr(cls, name)
        ]
        if missing:
            names = ", ".join(
                "DATABASE_URL" if n.startswith("SQL") else n for n in missing
            )
            raise RuntimeError(
                f"SNAPCLASS_ENV=production requires {names} in the environment."
            )


def settings_of(config_class: type[Config]) -> dict[str, Any]:
    """The settings of ``config_class`` as ``app.config`` would hold them."""
    return {
        name: getattr(config_class, name)
        for name in dir(config_class)
        if name.isupper()
    }


def check_settings(settings: Mapping[str, Any]) -> None:
    """Every setting that can be wrong without touching the disk or network,
    checked once, in one place: by ``create_app`` and by the Gunicorn master
    before it forks (``gunicorn.conf.py``). Raises ValueError naming it."""
    sqlite_synchronous(settings["SQLITE_SYNCHRONOUS"])
    resolve_backend(settings["INFERENCE_BACKEND"])
    parse_precision(settings["OPENVINO_PRECISION"])
    if settings["BATCH_MAX_SIZE"] < 1:
        raise ValueError(
            f"BATCH_MAX_SIZE must be 1 or more, got {settings['BATCH_MAX_SIZE']}"
        )
    if settings["MAX_STORED_BYTES_PER_USER"] < 0:
        raise ValueError(
            "MAX_STORED_BYTES_PER_USER must be 0 (no cap) or more, "
            f"got {settings['MAX_STORED_BYTES_PER_USER']}"
        )
    if settings["MAX_JPEG_SCANS"] < 1:
        raise ValueError(
            f"MAX_JPEG_SCANS must be 1 or more, got {settings['MAX_JPEG_SCANS']}"
        )
    for name in ("DECODE_CPU_BUDGET_S", "DECODE_MEMORY_BUDGET_MB"):
        if settings[name] < 0:
            raise ValueError(f"{name} must be 0 or more, got {settings[name]}")
    if settings["BATCH_MAX_DELAY_MS"] < 0:
        raise ValueError(
            "BATCH_MAX_DELAY_MS must be 0 or more, "
            f"got {settings['BATCH_MAX_DELAY_MS']}"
        )


def config_from_env() -> type[Config]:
    """The config class selected by ``SNAPCLASS_ENV`` (development by default)."""
    if os.environ.get("SNAPCLASS_ENV", "").lower() == "production":
        ProductionConfig.check()
        return ProductionConfig
    return Config
