"""Helpers that several test files share (fixtures live in conftest.py).

Import them as ``from tests.helpers import ...``: ``python -m pytest`` runs
from the repository root, which is on the import path.
"""

from __future__ import annotations

import io
import re

import sqlalchemy as sa
from PIL import Image

from app.extensions import db
from app.model_service import model_service
from app.models import ApiToken
from app.models import User

CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
PASSWORD = "a long enough password"


# --------------------------------------------------------------------------
# Images


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
    image = Image.linear_gradient("L").resize(size)
    red = image
    green = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    blue = Image.radial_gradient("L").resize(size)
    return Image.merge("RGB", (red, green, blue))


def jpeg(name: str = "photo.jpg", **kwargs) -> tuple[io.BytesIO, str]:
    """A JPEG as a form's file field: ``(stream, name)``."""
    return (io.BytesIO(make_image_bytes("JPEG", **kwargs)), name)


# --------------------------------------------------------------------------
# The app


def model_service_for(app):
    """The app's model service (what ``make_app`` hands the session's model)."""
    with app.app_context():
        return model_service()


# --------------------------------------------------------------------------
# Accounts and the forms of a browser


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


# --------------------------------------------------------------------------
# The JSON API


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def issue_token(app, username: str = "alice", name: str = "tests") -> str:
    """A new API token for ``username``, made directly in the database."""
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == username))
        row, plain = ApiToken.issue(user, name)
        db.session.add(row)
        db.session.commit()
    return plain


class ApiClient:
    """The JSON API as a program calls it: a test client and, when given, a
    bearer token sent with every request. ``headers=`` adds to (or, for
    ``Authorization``, replaces) the token's header on any call."""

    def __init__(self, client, token: str | None = None):
        self.client = client
        self.token = token

    def headers(self, extra: dict | None = None) -> dict:
        return {**(bearer(self.token) if self.token else {}), **(extra or {})}

    def predict(self, *images, headers: dict | None = None, **fields):
        """``POST /predict`` as multipart, ``fields`` as form fields. Each image
        is bytes (sent as ``img<i>.jpg``) or a ``(bytes or stream, name)`` pair;
        no image at all sends one JPEG."""
        if not images:
            images = (make_image_bytes("JPEG"),)
        files = [file_field(image, f"img{i}.jpg") for i, image in enumerate(images)]
        return self.client.post(
            "/predict",
            data={"image": files, **fields},
            headers=self.headers(headers),
            content_type="multipart/form-data",
        )

    def get(self, path: str, headers: dict | None = None, **kwargs):
        return self.client.get(path, headers=self.headers(headers), **kwargs)

    def post_json(self, path: str, body=None, headers: dict | None = None):
        return self.client.post(path, json=body, headers=self.headers(headers))

    def put_json(self, path: str, body=None, headers: dict | None = None):
        return self.client.put(path, json=body, headers=self.headers(headers))

    def delete(self, path: str, headers: dict | None = None):
        return self.client.delete(path, headers=self.headers(headers))


def file_field(image, default_name: str) -> tuple:
    """``(stream, name)`` for a form's file field, from bytes or a pair."""
    data, name = (image, default_name) if isinstance(image, bytes) else image
    return (io.BytesIO(data) if isinstance(data, bytes) else data, name)
