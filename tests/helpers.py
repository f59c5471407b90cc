"""Helpers that several test files share (fixtures live in conftest.py).

Import them as ``from tests.helpers import ...``: ``python -m pytest`` runs
from the repository root, which is on the import path.
"""

from __future__ import annotations

import io
import os
import re
import struct
import subprocess
import sys
import zlib
from datetime import UTC
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from app.extensions import db
from app.inference import build_classifier
from app.inference.openvino_runtime import converted_model_path
from app.inference.weights import parse_weights
from app.model_service import model_service
from app.models import ApiToken
from app.models import Prediction
from app.models import User
from app.services.storage import thumbnail_id

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


def photo(seed: int, size=(400, 300)) -> bytes:
    """A different photo-like JPEG per seed."""
    image = gradient_image(size).rotate(seed * 37, expand=False)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88 + seed % 5)
    return buffer.getvalue()


def jpeg(name: str = "photo.jpg", **kwargs) -> tuple[io.BytesIO, str]:
    """A JPEG as a form's file field: ``(stream, name)``."""
    return (io.BytesIO(make_image_bytes("JPEG", **kwargs)), name)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body and CRC."""
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_claiming(width: int, height: int) -> bytes:
    """A ~100-byte PNG whose header claims ``width`` x ``height`` pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


ROOT = Path(__file__).resolve().parent.parent


def run_python(
    script: str, *args: str, timeout: float = 120, env: dict | None = None
) -> str:
    """Run ``script`` in a fresh interpreter at the project root (the project
    importable, ``env`` added to this environment); its stdout. A failure
    shows the end of its stderr."""
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


# --------------------------------------------------------------------------
# The app and the model


def model_service_for(app):
    """The app's model service (what ``make_app`` hands the session's model)."""
    with app.app_context():
        return model_service()


def load_classifier(model_cache_dir, precision: str, **batching):
    """The real ResNet50, random weights, from the session's converted model."""
    model = build_classifier(
        "random",
        model_cache_dir=model_cache_dir,
        openvino_precision=precision,
        converted_model=converted_model_path(model_cache_dir, parse_weights("random")),
        **batching,
    )
    model.load()
    return model


# --------------------------------------------------------------------------
# Accounts and the forms of a browser


CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')

PASSWORD = "a long enough password"


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


def registered(app, username: str = "alice", *, signed_out: bool = False):
    """A new client of ``app`` with a new account, signed in (or out again),
    and its :class:`AuthActions`."""
    client = app.test_client()
    auth = AuthActions(client)
    response = auth.register(username)
    assert response.status_code == 302, response.text
    if signed_out:
        auth.logout()
    return client, auth


def make_admin(runner, username="alice"):
    result = runner.invoke(args=["set-admin", username])
    assert result.exit_code == 0, result.output
    return result


def create_token(client, auth, name: str) -> str:
    response = client.post(
        "/account/tokens", data={"name": name, "csrf_token": auth.page_csrf_token()}
    )
    return re.search(r"(sc_[A-Za-z0-9_\-]{20,})", response.text).group(1)


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


# --------------------------------------------------------------------------
# History rows, made directly


NOW = datetime.now(UTC)  # one "now" for a whole run: rows made now sort as equals


def user_id(app, username: str = "alice") -> int:
    with app.app_context():
        return db.session.scalar(sa.select(User.id).where(User.username == username))


def add_prediction(
    app,
    owner: int,
    *,
    label: str = "tabby",
    score: float = 0.5,
    filename: str = "photo.jpg",
    created_at: datetime | None = None,
) -> int:
    """A stored prediction, made directly so labels, scores and dates are known."""
    with app.app_context():
        row = Prediction(
            user_id=owner,
            sha256="0" * 64,
            filename=filename,
            mime_type="image/jpeg",
            size_bytes=1234,
            width=320,
            height=240,
            label_scores=[
                {"class_id": 1, "wnid": "n0", "label": label, "score": score},
                {"class_id": 2, "wnid": "n1", "label": "other", "score": score / 2},
            ],
            top_label=label,
            top_score=score,
            model_name="resnet50",
            weights="random",
            backend="openvino",
            timing_ms={"decode": 1.0, "preprocess": 0.5, "inference": 9.0},
            thumbnail_id=thumbnail_id(make_image_bytes("JPEG", size=(32, 24))),
            created_at=created_at or NOW,
        )
        db.session.add(row)
        db.session.commit()
        return row.id


def shown_filenames(html: str) -> list[str]:
    return re.findall(r'class="card-title"><a href="[^"]+">([^<]+)</a>', html)


def history(client, **args) -> tuple[int, str]:
    response = client.get("/history", query_string=args)
    return response.status_code, response.get_data(as_text=True)


# --------------------------------------------------------------------------
# /metrics


def scrape(client, **kwargs) -> dict[tuple, float]:
    """``/metrics`` as ``{(sample name, ((label, value), ...)): value}``."""
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("text/plain")
    return parse_exposition(response.get_data(as_text=True))


def parse_exposition(text: str) -> dict[tuple, float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, metric: str, /, **labels) -> float:
    """Sum of the samples called ``metric`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(
        v
        for (sample, sample_labels), v in samples.items()
        if sample == metric and wanted <= set(sample_labels)
    )
