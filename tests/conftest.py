"""Fixtures: app, client, runner, auth, images, and one real model per session."""

from __future__ import annotations

import io
import os
import re

import pytest
from PIL import Image

from app import create_app
from app.config import TestingConfig
from app.extensions import db
from app.inference import build_classifier
from app.model_service import model_service
from devtools.database import database_for_test
from devtools.server import LiveServer
from devtools.server import start_server

CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
PASSWORD = "a long enough password"


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


def model_service_for(app):
    with app.app_context():
        return model_service()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def csrf_token_from(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


class AuthActions:
    """Register, sign in and out through the real forms, CSRF included."""

    def __init__(self, client):
        self._client = client

    def csrf_token(self, path: str = "/login") -> str:
        return csrf_token_from(self._client.get(path).get_data(as_text=True))

    def register(self, username: str = "alice", password: str = PASSWORD):
        return self._client.post(
            "/register",
            data={
                "username": username,
                "password": password,
                "confirm": password,
                "csrf_token": self.csrf_token("/register"),
            },
        )

    def login(self, username: str = "alice", password: str = PASSWORD, next_url=None):
        path = "/login" + (f"?next={next_url}" if next_url else "")
        return self._client.post(
            path,
            data={
                "username": username,
                "password": password,
                "csrf_token": self.csrf_token(),
            },
        )

    def logout(self):
        token = csrf_token_from(self._client.get("/").get_data(as_text=True))
        return self._client.post("/logout", data={"csrf_token": token})

    def page_csrf_token(self) -> str:
        """A CSRF token for the signed-in session (from the upload page)."""
        return csrf_token_from(self._client.get("/").get_data(as_text=True))


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def signed_in(auth):
    """A registered, signed-in user 'alice'; returns the auth helper."""
    response = auth.register()
    assert response.status_code == 302
    return auth


def make_image_bytes(
    fmt: str = "JPEG",
    size: tuple[int, int] = (320, 240),
    mode: str = "RGB",
    color=(200, 30, 30),
    exif_orientation: int | None = None,
    **save_options,
) -> bytes:
    """An image made with Pillow: no files from outside the repository."""
    image = Image.new(mode, size, color)
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        save_options["exif"] = exif
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_options)
    return buffer.getvalue()


def gradient_image(size=(320, 240)) -> Image.Image:
    """A photo-like RGB image with structure, so resizes differ measurably."""
    width, height = size
    image = Image.linear_gradient("L").resize(size)
    red = image
    green = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    blue = Image.radial_gradient("L").resize(size)
    return Image.merge("RGB", (red, green, blue))


@pytest.fixture
def token(app, signed_in):
    """A bearer token for the signed-in user alice."""
    import sqlalchemy as sa

    from app.models import ApiToken
    from app.models import User

    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == "alice"))
        row, plain = ApiToken.issue(user, "tests")
        db.session.add(row)
        db.session.commit()
    return plain


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def image_bytes():
    return make_image_bytes
