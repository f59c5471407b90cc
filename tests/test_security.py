"""Security headers, proxies, CSRF on every state-changing route, rate limits,
overload shedding, error handling and security logs."""

from __future__ import annotations

import io
import logging
import re
import time

import pytest

from app.http.params import IdConverter
from tests.helpers import PASSWORD
from tests.helpers import AuthActions
from tests.helpers import bearer
from tests.helpers import create_token
from tests.helpers import make_image_bytes

UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def assert_security_headers(response):
    policy = response.headers["Content-Security-Policy"]
    for directive in (
        "default-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    ):
        assert directive in policy
    assert "unsafe-inline" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_security_headers_on_pages_api_errors_and_static(client, signed_in):
    for response in (
        client.get("/"),
        client.get("/api/predictions"),
        client.get("/no-such-page"),
        client.get("/api/no-such-thing"),
        client.get("/logout"),  # 405
        client.post("/logout"),  # CSRF failure, 400
        client.get("/static/css/app.css"),
        client.get("/healthz"),
    ):
        assert_security_headers(response)
        response.close()
    assert "Strict-Transport-Security" not in client.get("/").headers


def test_unexpected_errors_are_generic_500_with_request_id(make_app, caplog):
    app = make_app()

    @app.route("/boom")
    def boom():
        raise RuntimeError("secret internals")

    for accept in ("application/json", "text/html"):
        with caplog.at_level(logging.ERROR):
            response = app.test_client().get("/boom", headers={"Accept": accept})
        assert response.status_code == 500
        assert_security_headers(response)
        body = response.get_data(as_text=True)
        assert "secret internals" not in body and "Traceback" not in body
        request_id = re.search(r"request id ([0-9a-f]{32})", body).group(1)
        assert request_id in caplog.text and "secret internals" in caplog.text


def test_hsts_and_host_cookie_over_https(make_app):
    app = make_app(SESSION_COOKIE_SECURE=True)
    client = app.test_client()
    response = client.get("/login", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    auth = AuthActions(client)
    page = client.get("/register", base_url="https://localhost")
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
    response = client.post(
        "/register",
        base_url="https://localhost",
        # Flask-WTF checks the Referer on HTTPS (strict CSRF for TLS).
        headers={"Referer": "https://localhost/register"},
        data={
            "username": "hana",
            "password": PASSWORD,
            "confirm": PASSWORD,
            "csrf_token": token,
        },
    )
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-session=")
    assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
    del auth


def test_forwarded_headers_only_from_trusted_proxies(make_app):
    app = make_app(TRUSTED_PROXIES="10.0.0.1")
    client = app.test_client()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    trusted = client.get(
        "/login", headers=forwarded, environ_base={"REMOTE_ADDR": "10.0.0.1"}
    )
    assert "Strict-Transport-Security" in trusted.headers  # believed: https
    spoofed = client.get(
        "/login", headers=forwarded, environ_base={"REMOTE_ADDR": "198.51.100.7"}
    )
    assert "Strict-Transport-Security" not in spoofed.headers  # ignored


def test_bad_trusted_proxy_setting_fails_start_up(make_app):
    with pytest.raises(ValueError, match="not-an-ip"):
        make_app(TRUSTED_PROXIES="not-an-ip")


def fill_url(rule) -> str:
    """A concrete URL for a rule: 1 for ints, 'x' for strings."""
    values = {}
    for name, converter in rule._converters.items():
        values[name] = 1 if isinstance(converter, IdConverter) else "x"
    return rule.build(values, append_unknown=False)[1]


def test_every_state_changing_route_rejects_missing_csrf(app, client, signed_in):
    """Walks the URL map: a cookie-authenticated unsafe request without a CSRF
    token is refused before it reaches the view, on every route."""
    checked = []
    for rule in app.url_map.iter_rules():
        for method in sorted(set(rule.methods) & set(UNSAFE_METHODS)):
            url = fill_url(rule)
            response = client.open(url, method=method, data={"x": "1"})
            assert response.status_code == 400, (method, url, response.status_code)
            assert b"security token" in response.data or b"csrf_failed" in (
                response.data
            ), (method, url)
            checked.append((method, rule.rule))
    assert ("POST", "/predict") in checked and ("POST", "/logout") in checked
    assert any(m == "DELETE" and r.startswith("/api/predictions/") for m, r in checked)
    assert client.get("/api/predictions").status_code == 200  # still signed in


def test_failed_logins_are_throttled_with_retry_after(make_app):
    # A window of 5 s: four sign-ins (argon2 each) on a loaded 2-core machine
    # took most of a 2 s window, and Retry-After counted down to 0.
    app = make_app(LOGIN_LIMIT_ACCOUNT_IP="3 per 5 seconds")
    client = app.test_client()
    auth = AuthActions(client)
    auth.register()
    auth.logout()
    statuses = [auth.login("alice", "wrong password").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    limited = auth.login("alice", PASSWORD)  # even the right password waits
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 5
    # Another address is not locked out by this attacker's failures ...
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.55"
    assert AuthActions(other).login().status_code == 302
    # ... and the lock ends by itself when the window moves on.
    time.sleep(int(limited.headers["Retry-After"]) + 1.1)
    assert auth.login("alice", PASSWORD).status_code == 302


def test_successful_logins_do_not_count(make_app):
    app = make_app(LOGIN_LIMIT_ACCOUNT_IP="2 per minute")
    client = app.test_client()
    auth = AuthActions(client)
    auth.register()
    for _ in range(4):
        auth.logout()
        assert auth.login().status_code == 302


def test_predict_rate_limit_per_user(make_app, caplog):
    app = make_app(PREDICT_RATE_LIMIT="2 per minute")
    client = app.test_client()
    auth = AuthActions(client)
    auth.register()
    first, second = (create_token(client, auth, name) for name in ("a", "b"))
    image = make_image_bytes("JPEG")

    def post(token):
        return client.post(
            "/predict",
            data=image,
            headers={**bearer(token), "Content-Type": "image/jpeg"},
        )

    assert [post(first).status_code for _ in range(2)] == [200, 200]
    with caplog.at_level(logging.WARNING):
        limited = post(first)
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "too_many_requests"
    assert int(limited.headers["Retry-After"]) > 0
    assert "rate limit hit" in caplog.text
    # One budget per user: a second token, or a new one, buys no more.
    assert post(second).status_code == 429


def test_overload_sheds_with_fast_503(app, client, token):
    control = app.extensions["snapclass.admission"]
    taken = 0
    while control.try_enter():
        taken += 1
    assert taken == app.config["MAX_INFLIGHT_PER_WORKER"]
    try:
        started = time.perf_counter()
        response = client.post(
            "/predict",
            data={"image": [(io.BytesIO(make_image_bytes("JPEG")), "a.jpg")]},
            headers=bearer(token),
            content_type="multipart/form-data",
        )
        elapsed = time.perf_counter() - started
    finally:
        for _ in range(taken):
            control.leave()
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "overloaded"
    assert response.headers["Retry-After"] == "1"
    assert elapsed < 0.5
    ok = client.post(
        "/predict",
        data={"image": [(io.BytesIO(make_image_bytes("JPEG")), "a.jpg")]},
        headers=bearer(token),
        content_type="multipart/form-data",
    )
    assert ok.status_code == 200  # slots are given back


def test_log_lines_cannot_be_forged(client, auth, caplog):
    auth.register()
    auth.logout()
    with caplog.at_level(logging.WARNING):
        auth.login("mallory\nINFO forged entry", "wrong password")
    record = next(r for r in caplog.records if "failed sign-in" in r.getMessage())
    assert "\n" not in record.getMessage()


def test_rejected_uploads_are_logged(client, token, caplog):
    with caplog.at_level(logging.WARNING):
        client.post(
            "/predict?filename=evil%0D%0Aname.jpg",
            data=b"not an image",
            headers={**bearer(token), "Content-Type": "image/jpeg"},
        )
    record = next(r for r in caplog.records if "rejected upload" in r.getMessage())
    assert "invalid_image" in record.getMessage()
    assert "\n" not in record.getMessage()
