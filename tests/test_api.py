"""The JSON API: /predict, predictions, health, and every error status."""

from __future__ import annotations

import io
import subprocess

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ApiToken
from app.models import Prediction
from app.models import User
from devtools.rawhttp import MULTIPART_TYPE
from devtools.rawhttp import multipart
from tests.helpers import ApiClient
from tests.helpers import bearer
from tests.helpers import jpeg
from tests.helpers import make_image_bytes
from tests.helpers import png_claiming


def count_predictions(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count(Prediction.id)))


def test_predict_with_bearer_token(api, app, classifier):
    response = api.predict(jpeg(size=(640, 480)))
    assert response.status_code == 200
    body = response.get_json()
    assert body["model"] == {
        "name": "resnet50",
        "weights": "random",
        "backend": classifier.info.backend,
        "random_weights": True,
        "labels_available": False,
        "precision": classifier.info.precision,
    }
    (result,) = body["results"]
    assert result["filename"] == "photo.jpg"
    assert (result["width"], result["height"]) == (640, 480)
    assert len(result["sha256"]) == 64
    assert len(result["predictions"]) == 5
    scores = [p["score"] for p in result["predictions"]]
    assert scores == sorted(scores, reverse=True)
    assert set(result["predictions"][0]) == {"class_id", "wnid", "label", "score"}
    assert {"decode", "inference", "total"} <= set(result["timing_ms"])
    assert "inference;dur=" in response.headers["Server-Timing"]
    assert "queue;dur=" in response.headers["Server-Timing"]
    assert count_predictions(app) == 1


class CountingStream(io.BytesIO):
    """A server's request stream that counts the application's reads."""

    reads = 0

    def read(self, size=-1):
        self.reads += 1
        return super().read(size)

    def readinto(self, buffer):
        self.reads += 1
        return super().readinto(buffer)


def post_large_upload(client, headers):
    """POST a 1024x1024 noise JPEG (over 512 KB) as multipart from a
    CountingStream (the test client would spool a body this size to a file
    of its own); returns the response and the stream."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.effect_noise((1024, 1024), 80).convert("RGB").save(buffer, "JPEG")
    assert buffer.tell() > 512 * 1024
    body = multipart([(b"noise.jpg", buffer.getvalue())])
    stream = CountingStream(body)
    response = client.post(
        "/predict",
        input_stream=stream,
        content_length=len(body),
        headers=headers,
        content_type=MULTIPART_TYPE.decode(),
    )
    return response, stream


def test_large_upload_is_classified_without_a_temporary_file(
    client, token, monkeypatch
):
    """Werkzeug spools files over 500 KB to disk; ours stay in memory."""
    import werkzeug.formparser

    def no_disk(*args, **kwargs):
        raise AssertionError("an upload was spooled to a temporary file")

    monkeypatch.setattr(werkzeug.formparser, "SpooledTemporaryFile", no_disk)
    response, _ = post_large_upload(client, bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    (result,) = response.get_json()["results"]
    assert (result["width"], result["height"]) == (1024, 1024)


def test_an_upload_is_read_from_the_server_in_one_call(client, token):
    """Werkzeug reads 64 KB at a time; Gunicorn copies its buffer on each."""
    response, stream = post_large_upload(client, bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert stream.reads == 1


def test_a_refused_upload_is_not_read(client):
    """A 401 (likewise 429 and 503) answers without waiting for the body."""
    response, stream = post_large_upload(client, {})
    assert response.status_code == 401
    assert stream.reads == 0


def test_predict_raw_body(client, token):
    response = client.post(
        "/predict?top_k=3",
        data=make_image_bytes("PNG"),
        headers={**bearer(token), "Content-Type": "image/png"},
    )
    assert response.status_code == 200
    assert len(response.get_json()["results"][0]["predictions"]) == 3


def test_several_images_come_back_in_order_as_one_batch(api):
    files = [
        jpeg("a.jpg", color=(250, 0, 0)),
        (io.BytesIO(make_image_bytes("PNG", color=(0, 250, 0))), "b.png"),
        (io.BytesIO(make_image_bytes("WEBP", color=(0, 0, 250))), "c.webp"),
    ]
    response = api.predict(*files)
    assert response.status_code == 200
    body = response.get_json()
    assert body["batch_size"] == 3
    assert [r["filename"] for r in body["results"]] == ["a.jpg", "b.png", "c.webp"]
    ids = [r["id"] for r in body["results"]]
    assert ids == sorted(ids)


def test_predict_with_session_needs_csrf_header(client, signed_in):
    without = ApiClient(client).predict(jpeg())
    assert without.status_code == 400
    assert without.get_json()["error"]["code"] == "csrf_failed"
    with_header = ApiClient(client).predict(
        jpeg(), headers={"X-CSRFToken": signed_in.page_csrf_token()}
    )
    assert with_header.status_code == 200


def test_predict_without_auth_is_401_json(client):
    response = ApiClient(client).predict(jpeg())
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "header", ["Bearer sc_not-a-real-token", "Basic abc", "Bearer "]
)
def test_bad_tokens_are_401(client, header):
    response = client.post("/predict", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_is_401(api, app):
    with app.app_context():
        row = db.session.scalar(sa.select(ApiToken))
        from app.models import utcnow

        row.revoked_at = utcnow()
        db.session.commit()
    assert api.predict(jpeg()).status_code == 401


def text_file():
    return (io.BytesIO(b"just some text\n"), "notes.jpg")


def truncated_jpeg():
    data = make_image_bytes("JPEG", size=(640, 480))
    return (io.BytesIO(data[: len(data) // 2]), "cut.jpg")


@pytest.mark.parametrize(
    ("files", "status", "code"),
    [
        ([(io.BytesIO(b""), "empty.jpg")], 400, "invalid_image"),
        ([text_file()], 400, "invalid_image"),
        ([truncated_jpeg()], 400, "invalid_image"),
        (
            [(io.BytesIO(b"<svg xmlns='http://www.w3.org/2000/svg'/>"), "x.jpg")],
            415,
            "unsupported_format",
        ),
        ([(io.BytesIO(b"%PDF-1.4\n%%EOF"), "doc.jpg")], 415, "unsupported_format"),
        (
            [(io.BytesIO(b"%!PS-Adobe-3.0 EPSF-3.0"), "art.jpg")],
            415,
            "unsupported_format",
        ),
        (
            [(io.BytesIO(png_claiming(10_000, 10_000)), "bomb.png")],
            413,
            "image_too_large",
        ),
    ],
)
def test_bad_images_get_clear_errors_and_store_nothing(api, app, files, status, code):
    response = api.predict(*files)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["code"] == code
    assert files[0][1] in error["message"]
    assert count_predictions(app) == 0


def test_one_bad_file_rejects_the_whole_batch(api, app):
    response = api.predict(jpeg("good.jpg"), text_file())
    assert response.status_code == 400
    assert "notes.jpg" in response.get_json()["error"]["message"]
    assert count_predictions(app) == 0


def test_no_file_is_400(client, token):
    response = client.post(
        "/predict",
        data={"other": "x"},
        headers=bearer(token),
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "no_file"


def test_wrong_content_type_is_415(client, token):
    response = client.post(
        "/predict",
        data="hello",
        headers={**bearer(token), "Content-Type": "text/plain"},
    )
    assert response.status_code == 415


def test_too_many_files_is_400(api, app):
    app.config["MAX_FILES_PER_REQUEST"] = 2
    response = api.predict(jpeg(), jpeg(), jpeg())
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "too_many_files"


def test_oversized_body_is_413(api, app):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = api.predict(jpeg(size=(800, 800)))
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("top_k", ["0", "21", "-1", "five", "2.5"])
def test_bad_top_k_is_400(api, top_k):
    response = api.predict(jpeg(), top_k=top_k)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_top_k"


def test_top_k_bounds_are_accepted(api):
    for top_k in (1, 20):
        response = api.predict(jpeg(), top_k=str(top_k))
        assert len(response.get_json()["results"][0]["predictions"]) == top_k


def test_get_on_predict_is_405_json(api):
    response = api.get("/predict")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_list_get_and_delete_own_predictions(api):
    ids = [api.predict(jpeg()).get_json()["results"][0]["id"] for _ in range(3)]
    listing = api.get("/api/predictions?per_page=2").get_json()
    assert listing["total"] == 3 and listing["pages"] == 2
    assert [item["id"] for item in listing["items"]] == ids[::-1][:2]
    one = api.get(f"/api/predictions/{ids[0]}").get_json()
    assert one["id"] == ids[0] and one["model"]["random_weights"] is True
    deleted = api.delete(f"/api/predictions/{ids[0]}")
    assert deleted.status_code == 204
    again = api.get(f"/api/predictions/{ids[0]}")
    assert again.status_code == 404


def test_other_users_predictions_are_404(client, api, app):
    prediction_id = api.predict(jpeg()).get_json()["results"][0]["id"]
    with app.app_context():
        from app.auth.passwords import hash_password

        bob = User(username="bob", password_hash=hash_password("bobs password"))
        db.session.add(bob)
        db.session.commit()
        _, bob_token = _issue(bob)
    for method in ("get", "delete"):
        response = getattr(client, method)(
            f"/api/predictions/{prediction_id}", headers=bearer(bob_token)
        )
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"
    assert api.get(f"/api/predictions/{prediction_id}").status_code == 200


def _issue(user):
    row, plain = ApiToken.issue(user, "t")
    db.session.add(row)
    db.session.commit()
    return row, plain


def test_healthz_needs_nothing(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def count_statements(app, run) -> list[str]:
    """The SQL statements ``run()`` sends to the app's database."""
    statements = []
    with app.app_context():
        engine = db.engine

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return statements


@pytest.mark.parametrize(
    "authorization", ["Bearer not-a-token", "Basic dXNlcjpwYXNz", "garbage"]
)
def test_healthz_never_touches_authentication_or_the_database(
    app, client, signed_in, authorization
):
    """Load balancers send what they are configured to send, cookies included."""
    responses = []

    def probe():
        responses.append(
            client.get("/healthz", headers={"Authorization": authorization})
        )

    assert count_statements(app, probe) == []
    assert responses[0].status_code == 200
    assert responses[0].get_json() == {"status": "ok"}


def test_readyz_is_not_refused_for_an_unknown_token(client):
    response = client.get("/readyz", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 200


def test_readyz_reports_model_database_schema_and_writes(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready",
        "checks": {"model": True, "database": True, "schema": True, "writable": True},
    }


def test_readyz_writes_nothing(app, client):
    statements = count_statements(app, lambda: client.get("/readyz"))
    assert statements
    assert not [
        s for s in statements if not s.lstrip().upper().startswith(("SELECT", "PRAGMA"))
    ], statements


def test_readyz_reads_the_catalog_once(app, client):
    """Probes come every few seconds: the schema check is one table listing,
    not a query per table."""
    client.get("/readyz")  # the first probe may also ping a new connection
    statements = count_statements(app, lambda: client.get("/readyz"))
    catalog = [
        s
        for s in statements
        if any(word in s for word in ("sqlite_master", "table_", "pg_catalog"))
    ]
    assert len(catalog) == 1, statements


def test_missing_schema_is_named_by_readyz_and_a_500_not_a_retryable_503(
    app, client, caplog
):
    with app.app_context():
        db.drop_all()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["schema"] is False
    assert body["reasons"]["schema"] == (
        "the database has no schema: run `flask db upgrade`"
    )
    response = client.get("/api/predictions", headers=bearer("some-token"))
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "database_schema_missing"
    assert "Retry-After" not in response.headers
    assert "run `flask db upgrade`" in caplog.text


def test_readyz_is_503_when_the_disk_is_nearly_full(make_app, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("the free-space check is for SQLite files")
    client = make_app(READY_MIN_FREE_MB=2**40).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["checks"]["writable"] is False
    assert "READY_MIN_FREE_MB" in body["reasons"]["writable"]


def test_readyz_is_503_when_the_sqlite_file_is_immutable(app, client, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite file permissions")
    path = database_url.removeprefix("sqlite:///")
    client.get("/readyz")
    if subprocess.run(["chattr", "+i", path], check=False).returncode != 0:
        pytest.skip("chattr is not permitted here")
    try:
        response = client.get("/readyz")
    finally:
        subprocess.run(["chattr", "-i", path], check=True)
    assert response.status_code == 503
    assert "read-only" in response.get_json()["reasons"]["writable"]


def test_readyz_is_503_when_postgresql_is_read_only(app, make_app, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL (CI's second pass)")
    # `app` created the tables; this second app sees them read-only.
    read_only = {"options": "-c default_transaction_read_only=on"}
    client = make_app(
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True, "connect_args": read_only}
    ).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "PostgreSQL accepts no writes" in response.get_json()["reasons"]["writable"]


def test_readyz_is_503_when_model_not_loaded(app, client):
    from app.inference import build_classifier
    from app.model_service import model_service

    with app.app_context():
        model_service().use(build_classifier("random"))  # built, never loaded
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["model"] is False


def test_unknown_api_route_is_json_404(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_system_info_describes_the_instance_without_secrets(api, app, runner):
    runner.invoke(args=["set-admin", "alice"])  # the details are for admins
    response = api.get("/api/system")
    assert response.status_code == 200
    info = response.get_json()
    assert info["model"]["name"] == "resnet50" and info["model"]["ready"] is True
    assert info["model"]["weights"] == "random"
    assert info["database"] in ("sqlite", "postgresql")
    assert "flask" in info["packages"] and "numpy" in info["packages"]
    text = response.get_data(as_text=True)
    assert app.config["SECRET_KEY"] not in text
    assert "sqlite:///" not in text and "postgresql+psycopg" not in text


def test_system_info_needs_auth(client):
    assert client.get("/api/system").status_code == 401


def test_chunked_raw_body_over_the_limit_is_413(client, token, app):
    app.config["MAX_CONTENT_LENGTH"] = 4096
    body = make_image_bytes("JPEG") + b"\0" * 8192
    # A stream without Content-Length, as a chunked request arrives.
    response = client.post(
        "/predict",
        input_stream=io.BytesIO(body),
        headers={**bearer(token), "Content-Type": "image/jpeg"},
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    small = client.post(
        "/predict",
        input_stream=io.BytesIO(make_image_bytes("JPEG", size=(40, 30))),
        headers={**bearer(token), "Content-Type": "image/jpeg"},
    )
    assert small.status_code == 200


def test_whole_body_reads_the_server_once_and_serves_every_byte():
    from app.http.whole_body import WholeBody

    body = bytes(range(256)) * 1000 + b"\nlast line\n"
    server = CountingStream(body)
    whole = WholeBody(server, len(body))
    parts = [whole.read(1000), whole.readline()]
    chunk = bytearray(70_000)
    while count := whole.readinto(chunk):
        parts.append(bytes(chunk[:count]))
    assert b"".join(parts) == body
    assert whole.read() == b"" and whole.readline() == b""
    assert server.reads == 1
