"""Snapclass: image classification for people and programs."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from flask import Flask

from app.config import Config
from app.config import check_settings
from app.config import config_from_env
from app.extensions import db
from app.extensions import migrate
from app.http.body_deadline import BodyDeadline
from app.http.connections import CloseAfterUnreadBody
from app.http.json_bodies import SafeJSONProvider
from app.http.params import IdConverter
from app.http.proxies import trust_proxies
from app.http.request import UploadRequest
from app.http.whole_body import ReadBodyAtOnce
from app.model_service import ModelService
from app.model_service import model_service
from app.observability.metrics import MetricsEndpoint
from app.version import __version__

__all__ = ["__version__", "create_app"]


def create_app(config_class: type[Config] | None = None) -> Flask:
    """Application factory."""
    app = Flask(
        __name__,
        template_folder="../templates",
        static_folder="../static",
        instance_relative_config=True,
    )
    app.request_class = UploadRequest
    app.json = SafeJSONProvider(app)
    app.config.from_object(config_class or config_from_env())
    check_settings(app.config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    configure_defaults(app)
    configure_logging(app)
    register_observability(app)
    register_extensions(app)
    app.url_map.converters["id"] = IdConverter
    register_blueprints(app)
    register_errorhandlers(app)
    register_template_context(app)
    register_commands(app)
    register_middleware(app)
    return app


def register_middleware(app: Flask) -> None:
    """The WSGI layers around Flask, innermost first; a request passes them
    from the last to the first."""
    # The first read of an upload takes it whole from the server, not in
    # Werkzeug's 64 KB reads (each of which Gunicorn pays a copy for).
    app.wsgi_app = ReadBodyAtOnce(app.wsgi_app, app.config)
    # /metrics for allowed scrapers, answered before Flask.
    app.wsgi_app = MetricsEndpoint(
        app.wsgi_app, app.config, model_info=model_service(app).model_info
    )
    # Every body must arrive within BODY_TIMEOUT_S (408 otherwise).
    app.wsgi_app = BodyDeadline(app.wsgi_app, app.config)
    # X-Forwarded-* believed from TRUSTED_PROXIES only.
    app.wsgi_app = trust_proxies(app, app.wsgi_app)
    # Outermost, so that it sees the server's own start_response: a response
    # that leaves body unread closes the connection.
    app.wsgi_app = CloseAfterUnreadBody(app.wsgi_app)


def configure_defaults(app: Flask) -> None:
    """Fill in what has a safe default on a single host: secret and database."""
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = instance_secret_key(Path(app.instance_path))
    if not app.config.get("MODEL_CACHE_DIR"):
        app.config["MODEL_CACHE_DIR"] = str(Path(app.instance_path) / "models")
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        path = Path(app.instance_path) / "snapclass.sqlite3"
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{path}"


def instance_secret_key(instance: Path) -> str:
    """Read ``instance/secret_key``, creating it once (race-safe across workers)."""
    path = instance / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if key:
            return key
        raise RuntimeError(f"{path} is empty; delete it or set SECRET_KEY") from None
    key = secrets.token_hex(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def configure_logging(app: Flask) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


def register_extensions(app: Flask) -> None:
    from app import database
    from app.auth import ratelimits
    from app.auth import security
    from app.http import headers
    from app.http import overload
    from app.observability import metrics

    db.init_app(app)
    database.init_app(app)
    migrate.init_app(app, db, directory=str(Path(app.root_path).parent / "migrations"))
    headers.init_app(app)
    # Authentication first: the rate-limit keys need to know who is asking.
    security.init_app(app)
    # After authentication: a request nobody signed is refused unread by its
    # view, so it must not hold an inference slot meanwhile.
    overload.init_app(app)
    ratelimits.init_app(app)
    # The metrics count each network batch: the service hands their callback
    # to every classifier it builds.
    ModelService(app, observe_batch=metrics.observe_batch)


def register_observability(app: Flask) -> None:
    """Request ids, JSON request log and metrics. First, so that their hooks see
    every request, including those refused by authentication or rate limits."""
    from app.observability import metrics
    from app.observability import request_log

    request_log.init_app(app)
    metrics.init_app(app)


def register_blueprints(app: Flask) -> None:
    from app.api import openapi
    from app.api import routes as api
    from app.auth import routes as auth
    from app.web import account
    from app.web import admin
    from app.web import batches
    from app.web import blueprint as web
    from app.web import history
    from app.web import results
    from app.web import sharing

    # The page modules register their views on the one ``web`` blueprint.
    del account, history, results, sharing
    app.register_blueprint(auth.bp)
    app.register_blueprint(web.bp)
    app.register_blueprint(batches.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp, url_prefix="/admin")
    app.register_blueprint(openapi.bp)


def register_errorhandlers(app: Flask) -> None:
    from app.errors import register_errorhandlers as register

    register(app)


def register_template_context(app: Flask) -> None:
    @app.context_processor
    def model_context():
        # Never let a model problem break every page, error pages included.
        return {"model_info": model_service().model_info()}


def register_commands(app: Flask) -> None:
    from app.cli import register_commands as register

    register(app)
