"""Load test for Snapclass, in Locust's documented shape.

Each simulated browser registers its own account in ``on_start`` (session
cookie, CSRF token from the page), then mostly posts images to ``/predict``,
sometimes opens its history or a result page. ``ApiUser`` does the same
through a bearer token, as a program would.

Usage (against a running server)::

    locust -f locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 10 -r 2 -t 30s BrowserUser

Add ``--tags predict`` to post images only (the profile of the old stress
report, and what ``make bench`` measures).

The server answers re-uploads of identical bytes from its result cache; start
it with ``RESULT_CACHE=false`` to measure the model rather than the cache.

Settings (environment):
    SNAPCLASS_IMAGES     a folder of images to post (default: one generated
                         1365x1365 JPEG photo, so a fresh clone needs nothing)
    SNAPCLASS_IMAGE_SIZE size of the generated photo, e.g. 640x480
    SNAPCLASS_WAIT       "between:1:5" (default, the seed profile) or "none"
                         (no think time: saturation)
"""

from __future__ import annotations

import io
import os
import re
import uuid
from functools import cache
from pathlib import Path

from locust import FastHttpUser
from locust import between
from locust import constant
from locust import tag
from locust import task

CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
TOKEN_TEXT = re.compile(r"(sc_[A-Za-z0-9_\-]{20,})")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
PASSWORD = "load-test password 1"


def wait_time_from_env():
    setting = os.environ.get("SNAPCLASS_WAIT", "between:1:5")
    if setting == "none":
        return constant(0)
    _, low, high = setting.split(":")
    return between(float(low), float(high))


@cache
def upload_bodies() -> list[tuple[bytes, str]]:
    """Each image as a ready multipart body (built once, not per request, so
    the load generator spends its CPU on sending, not on encoding)."""
    from urllib3 import encode_multipart_formdata

    return [
        encode_multipart_formdata({"image": (name, data, "application/octet-stream")})
        for name, data in images()
    ]


@cache
def images() -> list[tuple[str, bytes]]:
    """The images to post: from SNAPCLASS_IMAGES, or one generated photo."""
    folder = os.environ.get("SNAPCLASS_IMAGES")
    if folder:
        files = sorted(
            p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
        )
        if files:
            return [(p.name, p.read_bytes()) for p in files]
    return [generated_photo(os.environ.get("SNAPCLASS_IMAGE_SIZE", "1365x1365"))]


def generated_photo(size: str) -> tuple[str, bytes]:
    """A photo-like JPEG (gradients and noise, so it compresses like a photo)."""
    from PIL import Image

    width, height = (int(v) for v in size.lower().split("x"))
    base = Image.merge(
        "RGB",
        (
            Image.linear_gradient("L").resize((width, height)),
            Image.radial_gradient("L").resize((width, height)),
            Image.effect_noise((width, height), 40),
        ),
    )
    buffer = io.BytesIO()
    base.save(buffer, "JPEG", quality=90)
    return f"generated-{width}x{height}.jpg", buffer.getvalue()


def csrf_token(html: str) -> str:
    match = CSRF_FIELD.search(html)
    if not match:
        raise RuntimeError("no CSRF token on the page")
    return match.group(1)


class SnapclassUser(FastHttpUser):
    abstract = True
    wait_time = wait_time_from_env()

    def on_start(self) -> None:
        self.username = "load-" + uuid.uuid4().hex[:12]
        self.last_prediction_id: int | None = None
        self.image_index = 0
        page = self.client.get("/register", name="/register")
        response = self.client.post(
            "/register",
            data={
                "username": self.username,
                "password": PASSWORD,
                "confirm": PASSWORD,
                "csrf_token": csrf_token(page.text),
            },
            name="/register",
        )
        self.csrf = csrf_token(response.text)

    def next_body(self) -> tuple[bytes, str]:
        pool = upload_bodies()
        self.image_index = (self.image_index + 1) % len(pool)
        return pool[self.image_index]

    def post_image(self, headers: dict) -> None:
        body, content_type = self.next_body()
        with self.client.post(
            "/predict",
            data=body,
            headers={**headers, "Content-Type": content_type},
            name="/predict",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return
            self.last_prediction_id = response.json()["results"][0]["id"]


class BrowserUser(SnapclassUser):
    """A person in a browser: session cookie plus the CSRF header."""

    weight = 3

    @tag("predict")
    @task(10)
    def predict(self) -> None:
        self.post_image({"X-CSRFToken": self.csrf})

    @task(2)
    def history(self) -> None:
        self.client.get("/history", name="/history")

    @task(1)
    def result_page(self) -> None:
        if self.last_prediction_id is not None:
            self.client.get(
                f"/predictions/{self.last_prediction_id}", name="/predictions/[id]"
            )


class ApiUser(SnapclassUser):
    """A program: creates an API token once, then sends it as a bearer token."""

    weight = 1

    def on_start(self) -> None:
        super().on_start()
        response = self.client.post(
            "/account/tokens",
            data={"name": "locust", "csrf_token": self.csrf},
            name="/account/tokens",
        )
        match = TOKEN_TEXT.search(response.text)
        if not match:
            raise RuntimeError("could not create an API token")
        self.bearer = {"Authorization": f"Bearer {match.group(1)}"}
        self.client.cookiejar.clear()  # from here on, the token alone

    @tag("predict")
    @task(10)
    def predict(self) -> None:
        self.post_image(self.bearer)

    @task(2)
    def history(self) -> None:
        self.client.get(
            "/api/predictions", headers=self.bearer, name="/api/predictions"
        )
