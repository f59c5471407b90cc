"""Fixtures: app, client, runner, auth, api, images, and one real model per
session. Helpers that test files share live in tests/helpers.py."""

from __future__ import annotations

import os

import pytest
from argon2 import PasswordHasher

from app import create_app
from app.auth import passwords
from app.config import TestingConfig
from app.extensions import db
from app.inference import build_classifier
from devtools.database import database_for_test
from devtools.server import LiveServer
from devtools.server import start_server
from tests.helpers import ApiClient
from tests.helpers import AuthActions
from tests.helpers import issue_token
from tests.helpers import make_image_bytes
from tests.helpers import model_service_for


@pytest.fixture(autouse=True)
def cheap_password_hashes(request, monkeypatch):
    """argon2id with one pass over 1 MiB in the test process: the production
    cost (64 MiB, 3 passes) is ~0.18 s of CPU per sign-up or sign-in, which
    was a third of the quick suite. Tests about the hash itself are marked
    ``real_password_hash``; real servers always hash at full cost."""
    if request.node.get_closest_marker("real_password_hash"):
        return
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", cheap)


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory):
    """Converted models for this test run (never the developer's instance/)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def new_server(tmp_path_factory, model_cache_dir):
    """Start a real Gunicorn with ``new_server(name, **settings)``: its own
    folder and database ``snapclass_<name>`` (PostgreSQL in CI's pass), and the
    session's converted model, so that no server converts it again. The
    caller stops it. ``settings`` go to :func:`devtools.server.start_server`."""

    def start(name: str, **settings: str) -> LiveServer:
        folder = tmp_path_factory.mktemp(name)
        return start_server(
            folder,
            database_for_test(folder, f"snapclass_{name}"),
            model_cache_dir=model_cache_dir,
            **settings,
        )

    return start


@pytest.fixture(scope="session")
def keras_classifier():
    """ResNet50 in TensorFlow/Keras with random weights: the reference."""
    model = build_classifier("random", backend="tensorflow")
    model.load()
    return model


@pytest.fixture(scope="session")
def classifier(model_cache_dir):
    """The real ResNet50 on the default backend (as the server runs it), random
    weights, loaded once for the whole run. f32, whatever the CPU: the tests
    hold it to Keras' scores (bf16 and int8 have tests of their own)."""
    model = build_classifier(
        "random", model_cache_dir=model_cache_dir, openvino_precision="f32"
    )
    model.load()
    return model


@pytest.fixture
def database_url(tmp_path):
    """PostgreSQL when TEST_DATABASE_URL is set (CI runs both), else SQLite."""
    return (
        os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'test.sqlite3'}"
    )


@pytest.fixture
def make_app(classifier, database_url):
    """Build apps with settings overridden (``make_app(TRUSTED_PROXIES=...)``);
    they share the test database, which is reset once per test."""
    apps = []

    def factory(**overrides):
        settings = {"SQLALCHEMY_DATABASE_URI": database_url, **overrides}
        config = type("Config", (TestingConfig,), settings)
        app = create_app(config)
        model_service_for(app).use(classifier)
        if not apps:
            with app.app_context():
                db.drop_all()
                db.create_all()
        apps.append(app)
        return app

    yield factory
    for index, app in enumerate(apps):
        with app.app_context():
            db.session.remove()
            if index == 0:
                db.drop_all()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def signed_in(auth):
    """A registered, signed-in user 'alice'; returns the auth helper."""
    response = auth.register()
    assert response.status_code == 302
    return auth


@pytest.fixture
def token(app, signed_in):
    """A bearer token for the signed-in user alice."""
    return issue_token(app)


@pytest.fixture
def api(client, token):
    """The JSON API as alice's program calls it: ``api.predict(*images, **fields)``,
    ``api.get(path)``, ``api.post_json(path, body)``, ... with her bearer token."""
    return ApiClient(client, token)


@pytest.fixture
def image_bytes():
    return make_image_bytes
