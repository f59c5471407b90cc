"""The low-severity findings of the red-team probe (issue 14): sign-up limits,
caching of signed-in pages, /api/system details, per-user /predict budgets
and token caps, invisible characters in file names, secrets in access logs."""

from __future__ import annotations

import io
import os
import re
import runpy
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from app.http.filenames import clean_filename
from tests.helpers import PASSWORD
from tests.helpers import AuthActions
from tests.helpers import bearer
from tests.helpers import create_token
from tests.helpers import make_admin
from tests.helpers import make_image_bytes

ROOT = Path(__file__).resolve().parent.parent


def register(client, name: str):
    return AuthActions(client).register(name)


def test_sign_ups_are_limited_per_address(make_app):
    app = make_app(REGISTER_LIMIT_IP="2 per minute")
    taken = [register(app.test_client(), "alice").status_code for _ in range(2)]
    assert taken == [302, 400]  # the second is a probe of a taken name
    limited = register(app.test_client(), "carol")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert register(other, "dave").status_code == 302


def test_sign_ups_are_limited_in_total(make_app):
    app = make_app(REGISTER_LIMIT_TOTAL="2 per minute")
    statuses = []
    for i in range(3):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"192.0.2.{i + 1}"
        statuses.append(register(client, f"user{i}").status_code)
    assert statuses == [302, 302, 429]


def test_signed_in_responses_are_not_stored(client, signed_in, token, app):
    data = make_image_bytes("JPEG")
    upload = client.post(
        "/predict",
        data={"image": [(io.BytesIO(data), "a.jpg")]},
        headers=bearer(token),
        content_type="multipart/form-data",
    )
    assert upload.headers["Cache-Control"] == "no-store"
    prediction_id = upload.get_json()["results"][0]["id"]
    for path in (
        "/",
        "/history",
        f"/predictions/{prediction_id}",
        f"/results?ids={prediction_id}",
        "/account",
        "/api/predictions",
        f"/api/predictions/{prediction_id}",
    ):
        assert client.get(path).headers["Cache-Control"] == "no-store", path
    api = client.get("/api/predictions", headers=bearer(token))
    assert api.headers["Cache-Control"] == "no-store"
    thumbnail = client.get(f"/predictions/{prediction_id}/thumbnail.jpg")
    assert thumbnail.headers["Cache-Control"] == "private, max-age=300"
    # Nothing of anyone's in static files: caching allowed.
    with client.get("/static/css/app.css") as static:
        assert "no-store" not in static.headers.get("Cache-Control", "")


def test_sign_out_and_account_deletion_clear_the_browser_cache(client, auth, app):
    auth.register()
    assert auth.logout().headers["Clear-Site-Data"] == '"cache"'
    auth.login()
    response = client.post(
        "/account/delete",
        data={"password": PASSWORD, "csrf_token": auth.page_csrf_token()},
    )
    assert response.status_code == 302
    assert response.headers["Clear-Site-Data"] == '"cache"'


SERVER_DETAILS = ("python", "platform", "packages", "server", "database", "cpu_count")


def test_system_details_are_for_admins_only(client, token, runner):
    info = client.get("/api/system", headers=bearer(token)).get_json()
    assert not set(SERVER_DETAILS) & set(info)
    assert info["model"]["name"] == "resnet50"
    assert info["max_upload_bytes"] > 0 and info["rate_limits"]["predict"]
    assert "pid" not in str(info)
    make_admin(runner)
    info = client.get("/api/system", headers=bearer(token)).get_json()
    assert set(SERVER_DETAILS) <= set(info)
    assert info["server"]["pid"] == os.getpid()


def test_tokens_per_user_are_capped(make_app):
    app = make_app(MAX_TOKENS_PER_USER=2)
    client = app.test_client()
    auth = AuthActions(client)
    auth.register()
    create_token(client, auth, "a")
    create_token(client, auth, "b")
    response = client.post(
        "/account/tokens", data={"name": "c", "csrf_token": auth.page_csrf_token()}
    )
    assert response.status_code == 400
    assert "2 active tokens" in response.text
    assert not re.search(r"sc_[A-Za-z0-9_\-]{20,}", response.text)


@pytest.mark.parametrize(
    "char",
    [
        "\u061c",  # Arabic letter mark
        "\u200b",  # zero-width space
        "\u200d",  # zero-width joiner
        "\u2028",  # line separator
        "\u2029",  # paragraph separator
        "\ufeff",  # byte order mark / zero-width no-break space
        "\u00ad",  # soft hyphen
        "\u2060",  # word joiner
        "\U000e0041",  # tag latin capital A
    ],
)
def test_clean_filename_removes_invisible_characters(char):
    assert clean_filename(f"cat{char}.jpg{char}") == "cat.jpg"


def test_clean_filename_keeps_visible_unicode():
    assert clean_filename("Katze über Größe 猫.jpg") == "Katze über Größe 猫.jpg"


# --------------------------------------------------------------------------
# Access logs


def gunicorn_config() -> dict:
    """gunicorn.conf.py's names, without keeping what it sets in os.environ."""
    saved = dict(os.environ)
    try:
        return runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_gunicorn_access_log_leaves_out_share_secrets():
    from gunicorn.config import Config

    config = gunicorn_config()
    cfg = Config()
    cfg.set("logger_class", config["logger_class"])
    cfg.set("accesslog", None)
    logger = cfg.logger_class(cfg)
    secret = "Zm9vYmFyYmF6cXV4c2VjcmV0dG9rZW4"
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/s/{secret}/thumbnail.jpg?x=1",
        "PATH_INFO": f"/s/{secret}/thumbnail.jpg",
        "QUERY_STRING": "x=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_REFERER": f"https://snapclass.example/s/{secret}",
    }
    resp = SimpleNamespace(
        status="200 OK", status_code=200, sent=10, response_length=10, headers=[]
    )
    req = SimpleNamespace(headers=[("REFERER", environ["HTTP_REFERER"])])
    atoms = logger.atoms(resp, req, environ, SimpleNamespace(seconds=0, microseconds=1))
    line = cfg.access_log_format % atoms
    assert secret not in line
    assert "/s/<redacted>/thumbnail.jpg" in line


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.server
def test_shipped_nginx_log_format_leaves_out_share_secrets(tmp_path):
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed")
    shipped = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    logging_part = re.search(
        r"\n(    # A share link.*?access_log [^;]+;)",
        shipped,
        re.S,
    )
    port = free_port()
    log = tmp_path / "access.log"
    config = tmp_path / "nginx.conf"
    config.write_text(
        f"pid {tmp_path}/nginx.pid;\ndaemon off;\nevents {{}}\nhttp {{\n"
        + logging_part.group(1).replace("/dev/stdout", str(log))
        + f"\n    server {{ listen 127.0.0.1:{port}; return 200 ok; }}\n}}\n"
    )
    process = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", config]
    )
    try:
        secret = "c2hhcmUtbGluay1zZWNyZXQtdG9rZW4"
        for _ in range(50):
            try:
                requests.get(f"http://127.0.0.1:{port}/s/{secret}?a=1", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        requests.get(f"http://127.0.0.1:{port}/history", timeout=2)
    finally:
        process.terminate()
        process.wait(timeout=10)
    text = log.read_text()
    assert secret not in text
    assert '"GET /s/<redacted>?a=1 HTTP/1.1"' in text
    assert '"GET /history HTTP/1.1"' in text
