"""Load test for Snapclass, in Locust's documented shape.

Each simulated browser registers its own account in ``on_start`` (session
cookie, CSRF token from the page) or signs in to a given one, then mostly posts
images to ``/predict``, sometimes opens its history or a result page.
``ApiUser`` does the same through a bearer token, as a program would.

Usage (against a running server)::

    locust -f locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 10 -r 2 -t 30s BrowserUser

``python -m stress`` (``make stress``) runs this file for you and writes a
report; see docs/stress-testing.md. Add ``--tags predict`` to post images only
(what ``make bench`` measures).

The server answers re-uploads of identical bytes from its result cache: set
``SNAPCLASS_UNIQUE_IMAGES=1`` (or start the server with ``RESULT_CACHE=false``)
to measure the model rather than the cache.

Settings (environment):
    SNAPCLASS_IMAGES        a folder of images to post (default: generated
                            photos, so a fresh clone needs nothing)
    SNAPCLASS_IMAGE_SIZE    size(s) of the generated photos, e.g. 640x480 or
                            "640x480,1365x1365" (default 1365x1365)
    SNAPCLASS_UNIQUE_IMAGES 1: make every posted image's bytes unique (a random
                            JPEG comment), so the server's result cache misses
    SNAPCLASS_WAIT          "between:1:5" (default, the seed profile) or "none"
                            (no think time: saturation)
    SNAPCLASS_USERNAME,     sign in to this existing account instead of
    SNAPCLASS_PASSWORD      registering one per user
    SNAPCLASS_REQUEST_LOG   write one CSV row per request here, with the
                            server's Server-Timing breakdown (used by the report)
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
import uuid
from functools import cache
from pathlib import Path

from locust import FastHttpUser
from locust import between
from locust import constant
from locust import events
from locust import tag
from locust import task

CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
TOKEN_TEXT = re.compile(r"(sc_[A-Za-z0-9_\-]{20,})")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
PASSWORD = "load-test password 1"
# Server-Timing entries that /predict sends, in the order of the log's columns.
TIMING_STAGES = ("decode", "preprocess", "inference", "db", "total")
REQUEST_LOG_COLUMNS = (
    "elapsed_s",
    "start_time",
    "method",
    "name",
    "status",
    "ok",
    "response_ms",
    "response_bytes",
    *(f"{stage}_ms" for stage in TIMING_STAGES),
    "cache_hits",
    "cache_images",
    "error",
)


def wait_time_from_env():
    """The think time between tasks: ``between:LOW:HIGH`` or ``none``."""
    setting = os.environ.get("SNAPCLASS_WAIT", "between:1:5")
    if setting == "none":
        return constant(0)
    _, low, high = setting.split(":")
    return between(float(low), float(high))


def unique_images() -> bool:
    return os.environ.get("SNAPCLASS_UNIQUE_IMAGES", "").lower() in ("1", "true", "yes")


# --------------------------------------------------------------------------
# Images and upload bodies


@cache
def images() -> list[tuple[str, bytes]]:
    """The images to post: from SNAPCLASS_IMAGES, or generated photos."""
    folder = os.environ.get("SNAPCLASS_IMAGES")
    if folder:
        files = sorted(
            p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
        )
        if files:
            return [(p.name, p.read_bytes()) for p in files]
    sizes = os.environ.get("SNAPCLASS_IMAGE_SIZE", "1365x1365")
    return [generated_photo(size.strip()) for size in sizes.split(",") if size.strip()]


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


@cache
def upload_parts() -> list[tuple[bytes, bytes, bytes, str]]:
    """Each image as (multipart head, image, multipart tail, content type).

    Built once, not per request, so the load generator spends its CPU on
    sending; only the image bytes change when they must be unique.
    """
    from urllib3 import encode_multipart_formdata

    parts = []
    for name, data in images():
        body, content_type = encode_multipart_formdata(
            {"image": (name, data, "application/octet-stream")}
        )
        start = body.index(data)
        parts.append((body[:start], data, body[start + len(data) :], content_type))
    return parts


def made_unique(data: bytes) -> bytes:
    """The same picture with different bytes, so its SHA-256 is new.

    JPEG gets a comment (COM) segment right after its start marker, which every
    decoder skips; other formats get a trailer after their end marker, which
    Pillow ignores.
    """
    marker = f"snapclass-load {uuid.uuid4().hex}".encode()
    if data[:2] == b"\xff\xd8":
        length = (len(marker) + 2).to_bytes(2, "big")  # includes the length bytes
        return data[:2] + b"\xff\xfe" + length + marker + data[2:]
    return data + marker


# --------------------------------------------------------------------------
# Per-request log with the server's own timing


def parse_server_timing(header: str | None) -> dict[str, str]:
    """``decode;dur=3.1, ..., cache;desc="0/1"`` -> {"decode": "3.1", ...,
    "cache": "0/1"} (dur, else desc, per metric)."""
    metrics: dict[str, str] = {}
    for entry in (header or "").split(","):
        name, *params = (part.strip() for part in entry.split(";"))
        if not name:
            continue
        values = dict(p.split("=", 1) for p in params if "=" in p)
        metrics[name] = values.get("dur", values.get("desc", "")).strip('"')
    return metrics


def request_log_row(started_at: float, **request) -> list:
    """One row of the request log from the arguments of Locust's request event."""
    response = request.get("response")
    headers = getattr(response, "headers", None) or {}
    timing = parse_server_timing(headers.get("Server-Timing"))
    hits, _, total = timing.get("cache", "").partition("/")
    exception = request.get("exception")
    start = request.get("start_time") or time.time()
    return [
        f"{start - started_at:.3f}",
        f"{start:.3f}",
        request.get("request_type", ""),
        request.get("name", ""),
        getattr(response, "status_code", "") or "",
        0 if exception else 1,
        f"{request.get('response_time') or 0:.1f}",
        request.get("response_length") or 0,
        *(timing.get(stage, "") for stage in TIMING_STAGES),
        hits,
        total,
        str(exception)[:160] if exception else "",
    ]


class RequestLog:
    """Appends one CSV row per request to SNAPCLASS_REQUEST_LOG, if it is set."""

    def __init__(self) -> None:
        self.handle = None
        self.writer = None
        self.started_at = time.time()

    def open(self, **_kwargs) -> None:
        path = os.environ.get("SNAPCLASS_REQUEST_LOG")
        if not path or self.handle:
            return
        self.started_at = time.time()
        # Kept open for the whole run (closed on quit): one write per request.
        self.handle = open(path, "w", newline="")
        self.writer = csv.writer(self.handle)
        self.writer.writerow(REQUEST_LOG_COLUMNS)

    def record(self, **request) -> None:
        if self.writer:
            self.writer.writerow(request_log_row(self.started_at, **request))

    def close(self, **_kwargs) -> None:
        if self.handle:
            self.handle.close()
            self.handle = self.writer = None


request_log = RequestLog()
events.test_start.add_listener(request_log.open)
events.request.add_listener(request_log.record)
events.quitting.add_listener(request_log.close)


@events.init.add_listener
def finish_csv_on_quit(environment, **_kwargs) -> None:
    """With ``--csv``, give Locust's CSV writer one more turn before it closes
    its files.

    It rewrites ``_stats.csv`` once a second, so without this the requests
    that finished in the last second (and during --stop-timeout) are missing
    from the file, though the console summary has them.
    """
    if not getattr(environment.parsed_options, "csv_prefix", None):
        return

    def wait_for_writer(**_kwargs) -> None:
        import gevent
        from locust.stats import CSV_STATS_INTERVAL_SEC

        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.2)

    environment.events.quit.add_listener(wait_for_writer)


# --------------------------------------------------------------------------
# Users


def csrf_token(html: str) -> str:
    match = CSRF_FIELD.search(html)
    if not match:
        raise RuntimeError("no CSRF token on the page")
    return match.group(1)


class SnapclassUser(FastHttpUser):
    abstract = True
    wait_time = wait_time_from_env()

    def on_start(self) -> None:
        self.last_prediction_id: int | None = None
        self.image_index = 0
        self.unique = unique_images()
        username = os.environ.get("SNAPCLASS_USERNAME")
        password = os.environ.get("SNAPCLASS_PASSWORD")
        if username and password:
            self.sign_in(username, password)
        else:
            self.register("load-" + uuid.uuid4().hex[:12])

    def register(self, username: str) -> None:
        fields = {"username": username, "password": PASSWORD, "confirm": PASSWORD}
        self.submit_account_form("/register", fields)

    def sign_in(self, username: str, password: str) -> None:
        self.submit_account_form("/login", {"username": username, "password": password})

    def submit_account_form(self, path: str, fields: dict[str, str]) -> None:
        """Post the sign-up or sign-in form as a browser does (its CSRF token
        from the page), and keep the signed-in page's token for uploads."""
        page = self.client.get(path, name=path)
        response = self.client.post(
            path, data={**fields, "csrf_token": csrf_token(page.text)}, name=path
        )
        self.csrf = csrf_token(response.text)

    def next_body(self) -> tuple[bytes, str]:
        pool = upload_parts()
        self.image_index = (self.image_index + 1) % len(pool)
        head, data, tail, content_type = pool[self.image_index]
        if self.unique:
            data = made_unique(data)
        return head + data + tail, content_type

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

    @task(1)
    def result(self) -> None:
        if self.last_prediction_id is not None:
            self.client.get(
                f"/api/predictions/{self.last_prediction_id}",
                headers=self.bearer,
                name="/api/predictions/[id]",
            )
