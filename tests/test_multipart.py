"""Multipart bodies read whole by ReadBodyAtOnce parse as Werkzeug parses them,
with files kept in memory (app/http/request.py, app/http/whole_body.py)."""

from __future__ import annotations

import io

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request as WerkzeugRequest

from app.http.request import UploadRequest
from app.http.whole_body import ReadBodyAtOnce
from tests.helpers import bearer
from tests.helpers import make_image_bytes

B = b"xYz-boundary"
CONFIG = {"MAX_CONTENT_LENGTH": 10 * 1024 * 1024}


def part(headers: bytes, data: bytes) -> bytes:
    return b"--" + B + b"\r\n" + headers + b"\r\n\r\n" + data + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--" + B + b"--\r\n"


def image_part(filename: bytes = b"photo.jpg", data: bytes = b"\xff\xd8 jpeg") -> bytes:
    return part(
        b'Content-Disposition: form-data; name="image"; filename="'
        + filename
        + b'"\r\n'
        b"Content-Type: image/jpeg",
        data,
    )


def field_part(name: bytes, value: bytes, extra: bytes = b"") -> bytes:
    return part(b'Content-Disposition: form-data; name="' + name + b'"' + extra, value)


def environ(raw: bytes, boundary: bytes = B) -> dict:
    return {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": "multipart/form-data; boundary=" + boundary.decode(),
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }


def parse_like_the_app(raw: bytes, boundary: bytes = B):
    """Form and files as our request class sees them behind ReadBodyAtOnce."""
    seen = {}

    def app(env, start_response):
        request = UploadRequest(env)
        request.max_form_parts = 1000
        request.max_form_memory_size = 500_000
        seen["form"] = list(request.form.items(multi=True))
        seen["files"] = [
            (name, f.filename, f.content_type, f.read())
            for name, f in request.files.items(multi=True)
        ]
        seen["in_memory"] = all(
            isinstance(f.stream, io.BytesIO) for f in request.files.values()
        )
        seen["rest"] = env["wsgi.input"].read()
        start_response("200 OK", [])
        return [b""]

    ReadBodyAtOnce(app, CONFIG)(environ(raw, boundary), lambda *a: None)
    return seen


class WerkzeugInMemory(WerkzeugRequest):
    """Werkzeug's own parsing; files in memory so that a body it gives up on
    halfway leaves no temporary file open."""

    def _get_file_stream(self, *args, **kwargs):
        return io.BytesIO()


def parse_like_werkzeug(raw: bytes, boundary: bytes = B):
    request = WerkzeugInMemory(environ(raw, boundary))
    request.max_form_parts = 1000
    request.max_form_memory_size = 500_000
    try:
        return {
            "form": list(request.form.items(multi=True)),
            "files": [
                (name, f.filename, f.content_type, f.read())
                for name, f in request.files.items(multi=True)
            ],
        }
    finally:
        request.close()


WELL_FORMED = {
    "one file": body(image_part()),
    "empty preamble": b"\r\n" + body(image_part()),
    "files and fields": body(
        field_part(b"csrf_token", b"abc.def"),
        image_part(b"a.jpg", bytes(range(256)) * 40),
        image_part(b"b.png", b"\r\n\r\n--" + B[:-1] + b"\r\n"),  # near-boundary data
        field_part(b"top_k", b"3"),
    ),
    "empty file and value": body(image_part(b"", b""), field_part(b"note", b"")),
    "utf-8 filename": body(image_part("Fotó ☀.jpg".encode())),
    "rfc 5987 filename": body(
        part(
            b'Content-Disposition: form-data; name="image"; '
            b"filename*=UTF-8''f%C3%B6.jpg",
            b"data",
        )
    ),
    "latin-1 field": body(
        field_part(
            b"note",
            "café".encode("latin-1"),
            b"\r\nContent-Type: text/plain; charset=iso-8859-1",
        )
    ),
}


@pytest.mark.parametrize("name", WELL_FORMED)
def test_well_formed_bodies_parse_as_werkzeug_parses_them(name):
    raw = WELL_FORMED[name]
    expected = parse_like_werkzeug(raw)
    seen = parse_like_the_app(raw)
    assert seen["form"] == expected["form"]
    assert seen["files"] == expected["files"]
    assert seen["rest"] == b""  # the body is consumed
    assert seen["in_memory"]


UNUSUAL = {
    "preamble": b"hello\r\n" + body(image_part()),
    "epilogue": body(image_part()) + b"trailing words",
    "blanks after boundary": body(image_part()).replace(
        b"--" + B + b"\r\n", b"--" + B + b"  \r\n", 1
    ),
    "boundary inside data": body(image_part(data=b"a\r\n--" + B + b"x b")),
    "folded header": body(
        part(b'Content-Disposition: form-data;\r\n name="image"; filename="a"', b"x")
    ),
    "bare LF in headers": body(
        part(b'Content-Disposition: form-data; name="a"\nX-Other: 1', b"x")
    ),
    "not utf-8 header": body(
        part(b'Content-Disposition: form-data; name="image"; filename="\xff.jpg"', b"x")
    ),
    "no disposition": body(part(b"Content-Type: text/plain", b"x")),
    "no final boundary": b"".join([image_part()]),
    "too many parts": body(*[field_part(b"f", b"1")] * 11),
    "field too large": body(field_part(b"f", b"x" * 1001)),
}


@pytest.mark.parametrize("name", UNUSUAL)
def test_unusual_bodies_parse_as_werkzeug_parses_them(name):
    raw = UNUSUAL[name]
    seen = parse_like_the_app(raw)
    expected = parse_like_werkzeug(raw)
    assert (seen["form"], seen["files"]) == (expected["form"], expected["files"])


def test_limits_answer_413(make_app, token):
    app = make_app(MAX_FORM_PARTS=5)
    client = app.test_client()
    raw = body(*[field_part(b"f", b"1")] * 6, image_part(data=make_image_bytes()))
    response = client.post(
        "/predict",
        data=raw,
        content_type="multipart/form-data; boundary=" + B.decode(),
        headers=bearer(token),
    )
    assert response.status_code == 413


def test_predict_a_body_in_the_layout_browsers_send(client, token):
    """A real upload from Werkzeug's test client (the layout requests and
    browsers send), read whole, is classified."""
    builder = EnvironBuilder(
        method="POST",
        data={
            "image": (io.BytesIO(make_image_bytes()), "photo.jpg"),
            "top_k": "3",
        },
    )
    env = builder.get_environ()
    response = client.post(
        "/predict",
        data=env["wsgi.input"].read(),
        content_type=env["CONTENT_TYPE"],
        headers=bearer(token),
    )
    assert response.status_code == 200, response.get_json()
    result = response.get_json()["results"][0]
    assert result["filename"] == "photo.jpg"
    assert len(result["predictions"]) == 3
