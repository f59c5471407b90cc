"""A refused upload leaves the client's connection usable (app/http/connections.py).

The real cases run a real Gunicorn and a real ``requests.Session``, because
the failure they guard against (the server dropping a kept-alive connection
whose body it did not read) only shows on a server's sockets.
"""

from __future__ import annotations

import io
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app.http.connections import CountingInput
from app.http.connections import unread_bytes
from devtools.photos import photo_jpeg
from tests.helpers import bearer

BIG = b"\xff\xd8" + b"x" * (256 * 1024)  # past Gunicorn's own 64 KiB drain


def test_counting_input_counts_reads_and_the_end():
    body = CountingInput(io.BytesIO(b"abcdef\nghi"))
    assert body.readline() == b"abcdef\n"
    assert body.read(2) == b"gh"
    assert (body.consumed, body.at_end) == (9, False)
    assert body.read() == b"i"
    assert body.read() == b""
    assert (body.consumed, body.at_end) == (10, True)


@pytest.mark.parametrize(
    ("environ", "read", "expected"),
    [
        ({"CONTENT_LENGTH": "100"}, 40, 60),
        ({"CONTENT_LENGTH": "100"}, 100, 0),
        ({"CONTENT_LENGTH": ""}, 0, 0),
        ({}, 0, 0),
        ({"HTTP_TRANSFER_ENCODING": "chunked"}, 10, None),
        ({"CONTENT_LENGTH": "１２"}, 0, 0),  # not ASCII digits: no body was read
    ],
)
def test_unread_bytes(environ, read, expected):
    body = CountingInput(io.BytesIO(b"x" * read))
    body.read(read)
    assert unread_bytes(environ, body) == expected


def test_chunked_body_read_to_its_end_is_not_unread():
    body = CountingInput(io.BytesIO(b"x" * 10))
    while body.read(4):
        pass
    assert unread_bytes({"HTTP_TRANSFER_ENCODING": "chunked"}, body) == 0


def test_refused_large_upload_says_connection_close(client):
    response = client.post("/predict", data=BIG, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 401
    assert response.headers["Connection"] == "close"


def test_refused_small_upload_closes_the_connection_too(client):
    # Gunicorn would wait up to 5 s for a slow client's leftover: never worth it.
    response = client.post(
        "/predict", data=b"\xff\xd8tiny", headers={"Content-Type": "image/jpeg"}
    )
    assert response.status_code == 401
    assert response.headers["Connection"] == "close"


def test_refusal_without_a_body_keeps_the_connection(client):
    response = client.get("/api/predictions")
    assert response.status_code == 401
    assert "Connection" not in response.headers


def test_read_upload_keeps_the_connection(client, token):
    response = client.post(
        "/predict",
        data=photo_jpeg((640, 640)),
        headers={"Content-Type": "image/jpeg", **bearer(token)},
    )
    assert response.status_code == 200
    assert "Connection" not in response.headers


# --------------------------------------------------------------------------
# A real Gunicorn and a real requests.Session


@pytest.fixture(scope="module")
def server(new_server):
    server = new_server(
        "connections",
        MAX_INFLIGHT_PER_WORKER="4",
        PREDICT_RATE_LIMIT="40 per minute",
    )
    yield server
    server.stop()


def post_photo(session: requests.Session, url: str, body: bytes, **headers):
    return session.post(
        url + "/predict",
        data=body,
        headers={"Content-Type": "image/jpeg", **headers},
        timeout=60,
    )


@pytest.mark.server
def test_session_goes_on_after_refusals(server):
    """401, 401, 401, 401 (the old server: 401, ConnectionError, 401, ...), then
    a 413 and a signed-in 200 on the same session."""
    body = photo_jpeg()
    assert len(body) > 64 * 1024
    session = requests.Session()
    statuses = [post_photo(session, server.url, body).status_code for _ in range(4)]
    assert statuses == [401] * 4
    too_large = session.post(
        server.url + "/predict",
        data=b"x" * (10 * 1024 * 1024 + 1),
        headers={"Content-Type": "image/jpeg", **server.headers},
        timeout=60,
    )
    assert too_large.status_code == 413
    assert too_large.headers["Connection"] == "close"
    assert post_photo(session, server.url, body, **server.headers).status_code == 200


@pytest.mark.server
def test_hundred_threads_on_one_session_get_only_http_answers(server):
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=100)
    session.mount("http://", adapter)
    session.headers.update(server.headers)
    body = photo_jpeg((900, 900))

    def attempt(_):
        try:
            return post_photo(session, server.url, body).status_code
        except requests.ConnectionError as exc:
            return f"connection error: {exc}"

    outcomes = Counter()
    with ThreadPoolExecutor(100) as pool:
        for _ in range(2):  # the second round reuses the first round's connections
            outcomes.update(pool.map(attempt, range(100)))
    assert set(outcomes) <= {200, 429, 503}, outcomes
    assert outcomes[503], "100 at once must exceed the in-flight bound"
    assert outcomes[200]
