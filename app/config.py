"""Settings, read from the environment. Every setting is listed in the README."""

from __future__ import annotations

import os
from datetime import timedelta


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {value!r}") from exc


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
    SECRET_KEY = os.environ.get("SECRET_KEY")

    # Database: SQLite under instance/ unless DATABASE_URL says otherwise.
    SQLALCHEMY_DATABASE_URI = database_url(os.environ.get("DATABASE_URL"))
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # SQLite only: NORMAL syncs the write-ahead log at checkpoints, FULL at
    # every commit (see app/database.py for the trade-off).
    SQLITE_SYNCHRONOUS = os.environ.get("SQLITE_SYNCHRONOUS") or "NORMAL"

    # Sessions and cookies.
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
    # A sign-in ends after this long, however active (absolute timeout) ...
    PERMANENT_SESSION_LIFETIME = timedelta(hours=env_int("SESSION_ABSOLUTE_HOURS", 24))
    # ... or after this long without a request (idle timeout).
    SESSION_IDLE_TIMEOUT = timedelta(minutes=env_int("SESSION_IDLE_MINUTES", 120))
    REMEMBER_COOKIE_HTTPONLY = True
    WTF_CSRF_TIME_LIMIT = None  # tokens live as long as the session does
    # CSRF is checked in app.auth_hooks, where bearer-token requests are exempt.
    WTF_CSRF_CHECK_DEFAULT = False

    # Uploads.
    MAX_CONTENT_LENGTH = env_int("MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
    MAX_FILES_PER_REQUEST = env_int("MAX_FILES_PER_REQUEST", 16)
    MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 40_000_000)
    DEFAULT_TOP_K = 5
    # Answer re-uploads of identical bytes from the database (same model only).
    RESULT_CACHE = env_bool("RESULT_CACHE", True)
    MAX_TOP_K = 20

    # Model.
    MODEL_WEIGHTS = os.environ.get("MODEL_WEIGHTS", "imagenet")
    IMAGENET_LABELS = os.environ.get("IMAGENET_LABELS") or None
    # auto: OpenVINO on CPU, TensorFlow when it can use a visible GPU.
    INFERENCE_BACKEND = os.environ.get("INFERENCE_BACKEND", "auto")
    # auto: bf16 where the CPU runs it natively (AMX, AVX512_BF16), else f32;
    # f32 matches Keras to 1e-6; int8 needs `flask quantize-model` first.
    OPENVINO_PRECISION = os.environ.get("OPENVINO_PRECISION", "auto")
    # Converted models, keyed by the weights' fingerprint (default instance/models).
    MODEL_CACHE_DIR = os.environ.get("MODEL_CACHE_DIR") or None
    # Set by the Gunicorn master after it converted the model (not for people).
    OPENVINO_MODEL = os.environ.get("SNAPCLASS_OPENVINO_MODEL") or None
    # 0 = let TensorFlow decide; gunicorn.conf.py sets these per worker.
    INTRA_OP_THREADS = env_int("INTRA_OP_THREADS", 0)
    INTER_OP_THREADS = env_int("INTER_OP_THREADS", 0)
    # Load the model at start-up (Gunicorn workers) rather than on first use.
    MODEL_LOAD_ON_STARTUP = False

    # Rate limits (Flask-Limiter). memory:// counts per worker; use Redis
    # (redis://127.0.0.1:6379) for limits that hold across workers and instances.
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_HEADERS_ENABLED = True
    # Distinct prefixes let several deployments share one Redis.
    RATELIMIT_KEY_PREFIX = os.environ.get("RATELIMIT_KEY_PREFIX", "snapclass")
    # If Redis is down, limit per process instead of failing requests.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    PREDICT_RATE_LIMIT = os.environ.get("PREDICT_RATE_LIMIT", "600 per minute")
    # Failed sign-ins: per account from one address, per address, per account.
    LOGIN_LIMIT_ACCOUNT_IP = os.environ.get(
        "LOGIN_LIMIT_ACCOUNT_IP", "10 per 15 minutes"
    )
    LOGIN_LIMIT_IP = os.environ.get("LOGIN_LIMIT_IP", "50 per 15 minutes")
    LOGIN_LIMIT_ACCOUNT = os.environ.get("LOGIN_LIMIT_ACCOUNT", "100 per hour")

    # Overload: at most this many /predict requests in a worker at once (being
    # decoded, waiting for or running the model); more get 503 at once. 12 > 10
    # so that 10 clients posting back to back never see a 503, even when they
    # all land on the same worker.
    MAX_INFLIGHT_PER_WORKER = env_int("MAX_INFLIGHT_PER_WORKER", 12)

    # Proxies whose X-Forwarded-For/-Proto are believed (comma-separated
    # addresses or CIDR ranges, e.g. "127.0.0.1,10.0.0.0/8"); none by default.
    TRUSTED_PROXIES = os.environ.get("TRUSTED_PROXIES", "")
    # Strict-Transport-Security on HTTPS responses.
    HSTS_SECONDS = env_int("HSTS_SECONDS", 31536000)

    # Observability. /metrics answers these client addresses (comma-separated
    # addresses or CIDR ranges; empty = none) or "Authorization: Bearer
    # METRICS_TOKEN"; everyone else gets a 404.
    METRICS_ALLOW = os.environ.get("METRICS_ALLOW", "127.0.0.1/32,::1")
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN") or None
    # One JSON line per request on stdout (request id, user, route, status, time).
    REQUEST_LOG = env_bool("REQUEST_LOG", True)

    # Pages.
    HISTORY_PAGE_SIZE = env_int("HISTORY_PAGE_SIZE", 20)
    PASSWORD_MIN_LENGTH = 8
    PASSWORD_MAX_LENGTH = 256

    # Inference speed (issue 15). Batching across requests in each worker: one
    # loop runs up to BATCH_MAX_SIZE queued images at once, waiting at most
    # BATCH_MAX_DELAY_MS after the oldest for more (0: take what is queued).
    # BATCH_MAX_SIZE=1 runs each request alone. Defaults: docs/performance.md.
    BATCH_MAX_SIZE = env_int("BATCH_MAX_SIZE", 4)
    BATCH_MAX_DELAY_MS = env_int("BATCH_MAX_DELAY_MS", 0)


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "testing-secret-key"
    SQLALCHEMY_DATABASE_URI = database_url(
        os.environ.get("TEST_DATABASE_URL", "sqlite:///:memory:")
    )
    MODEL_WEIGHTS = "random"


class ProductionConfig(Config):
    """Refuses to start without an explicit secret key and database."""

    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)

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


def config_from_env() -> type[Config]:
    """The config class selected by ``SNAPCLASS_ENV`` (development by default)."""
    if os.environ.get("SNAPCLASS_ENV", "").lower() == "production":
        ProductionConfig.check()
        return ProductionConfig
    return Config
