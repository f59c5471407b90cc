"""CPU time of our in-memory multipart parser against Werkzeug's, per /predict.

``python -m bench.multipart`` posts the same multipart body (a 1365x1365 JPEG
at quality 100, about 1.1 MB, or ``--image PATH``) to ``/predict`` through the
whole WSGI stack (Flask's test client, the real network with random weights,
result cache off), once with the app's request class and once with the same
class told to leave the body to Werkzeug's form parser (files still kept in
memory, as the app keeps them). It also times the parsing alone. The answer,
one JSON line: CPU ms per request and per parse for each parser, and the
parser's saving as a share of a request's CPU time. Turns take turns so that
the machine's drift hits both alike; CPU time is the process's, inference
threads included.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path

from bench import program

SHARED_PHOTO = Path(__file__).resolve().parent.parent.parent / "shared/images"
BOUNDARY = "snapclass-bench-boundary"


def photo(path: Path | None) -> bytes:
    """``path``, else the shared 1.1 MB bay photo, else a generated one."""
    if path is not None:
        return path.read_bytes()
    shared = SHARED_PHOTO / "bay-1365x1365.jpg"
    if shared.is_file():
        return shared.read_bytes()
    from devtools.photos import photo_jpeg

    return photo_jpeg((1365, 1365), quality=100)


def multipart_body(image: bytes) -> bytes:
    """The body a browser sends for one file in the form field ``image``."""
    return (
        (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def cpu_ms(step, runs: int) -> list[float]:
    """Process CPU ms of each of ``runs`` calls of ``step``."""
    out = []
    for _ in range(runs):
        started = time.process_time()
        step()
        out.append((time.process_time() - started) * 1000)
    return out


def measure(cache: Path, threads: int, image: Path | None, rounds: int) -> dict:
    from werkzeug.test import EnvironBuilder

    from app import create_app
    from app.auth.passwords import hash_password
    from app.config import TestingConfig
    from app.extensions import db
    from app.http.request import UploadRequest
    from app.http.whole_body import ReadBodyAtOnce
    from app.models import User
    from app.services.tokens import issue_token

    class WerkzeugParsed(UploadRequest):
        """The app's request class, with every multipart body left to
        Werkzeug's parser (files still in memory)."""

        def _parse_whole_multipart(self):
            return None

    folder = Path(tempfile.mkdtemp(prefix="bench-multipart-"))
    settings = {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.sqlite3'}",
        "MODEL_CACHE_DIR": str(cache),
        "RESULT_CACHE": False,
        "REQUEST_LOG": False,
        "INTRA_OP_THREADS": threads,
        "OPENVINO_PRECISION": os.environ.get("OPENVINO_PRECISION", "auto"),
        "PREDICT_RATE_LIMIT": "1000000 per minute",
    }
    app = create_app(type("BenchConfig", (TestingConfig,), settings))
    with app.app_context():
        db.create_all()
        user = User(username="bench", password_hash=hash_password("bench password"))
        db.session.add(user)
        db.session.commit()
        token = issue_token(user, "bench", 1)
    app.extensions["snapclass.model"].load()
    body = multipart_body(photo(image))
    headers = {"Authorization": f"Bearer {token}"}
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    client = app.test_client()

    def post(request_class):
        def step():
            app.request_class = request_class
            response = client.post(
                "/predict", data=body, content_type=content_type, headers=headers
            )
            assert response.status_code == 200, response.get_data(as_text=True)

        return step

    def parse(request_class):
        environ = EnvironBuilder(
            method="POST", data=body, content_type=content_type
        ).get_environ()

        def step():
            environ["wsgi.input"] = io.BytesIO(body)
            seen = {}

            def application(env, start_response):
                request = request_class(env)
                seen["bytes"] = len(request.files["image"].stream.getvalue())
                start_response("200 OK", [])
                return [b""]

            ReadBodyAtOnce(application, {"MAX_CONTENT_LENGTH": 10 << 20})(
                environ, lambda *a: None
            )
            assert seen["bytes"] == len(body) - len(multipart_body(b""))

        return step

    variants = {"ours": UploadRequest, "werkzeug": WerkzeugParsed}
    requests = {key: [] for key in variants}
    parses = {key: [] for key in variants}
    for request_class in variants.values():  # warm both
        post(request_class)()
        parse(request_class)()
    for _ in range(rounds):
        for key, request_class in variants.items():
            requests[key] += cpu_ms(post(request_class), 4)
            parses[key] += cpu_ms(parse(request_class), 20)
    request_ms = {key: program.median(v) for key, v in requests.items()}
    parse_ms = {key: program.median(v) for key, v in parses.items()}
    saved = parse_ms["werkzeug"] - parse_ms["ours"]
    return {
        "body_bytes": len(body),
        "precision": app.extensions["snapclass.model"].classifier.info.precision,
        "request_cpu_ms": {k: round(v, 2) for k, v in request_ms.items()},
        "parse_cpu_ms": {k: round(v, 3) for k, v in parse_ms.items()},
        "parse_saving_ms": round(saved, 3),
        "saving_share_of_request": round(saved / request_ms["werkzeug"], 4),
        "request_difference_share": round(
            (request_ms["werkzeug"] - request_ms["ours"]) / request_ms["werkzeug"], 4
        ),
        "samples": {"requests": len(requests["ours"]), "parses": len(parses["ours"])},
    }


def options():
    out = program.parser("multipart", __doc__)
    out.add_argument("--image", type=Path, default=None, help="a photo to post")
    out.add_argument(
        "--rounds", type=int, default=10, help="turns of each parser (default 10)"
    )
    return out


if __name__ == "__main__":
    raise SystemExit(program.main(options(), measure))
