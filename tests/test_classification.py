"""Pages and API share one classification path (app/web/classify.py): the
same refusals, the same metrics, the same request-log figures."""

from __future__ import annotations

import io
import json

import pytest

from tests.helpers import bearer
from tests.helpers import make_image_bytes
from tests.helpers import scrape
from tests.helpers import value


def page_upload(client, auth, data: bytes, accept: str = "text/html", **fields):
    return client.post(
        "/upload",
        data={
            "image": [(io.BytesIO(data), "x.jpg")],
            "csrf_token": auth.page_csrf_token(),
            **fields,
        },
        headers={"Accept": accept},
        content_type="multipart/form-data",
    )


def api_upload(client, token: str, data: bytes, **fields):
    return client.post(
        "/predict",
        data={"image": [(io.BytesIO(data), "x.jpg")], **fields},
        headers=bearer(token),
        content_type="multipart/form-data",
    )


@pytest.mark.parametrize(
    ("data", "code", "status"),
    [
        (b"just text", "invalid_image", 400),
        (b"%PDF-1.4\n%%EOF", "unsupported_format", 415),
    ],
)
def test_page_and_api_refuse_alike_and_count_alike(
    client, signed_in, token, data, code, status
):
    name = "snapclass_uploads_rejected_total"
    before = scrape(client)
    api = api_upload(client, token, data)
    script = page_upload(client, signed_in, data, accept="application/json")
    page = page_upload(client, signed_in, data)
    after = scrape(client)
    assert api.status_code == script.status_code == page.status_code == status
    assert api.get_json() == script.get_json()
    assert api.get_json()["error"]["code"] == code
    # A browser without the page script gets the error page with the reason.
    html = page.get_data(as_text=True)
    assert page.mimetype == "text/html"
    assert api.get_json()["error"]["message"] in html.replace("&#39;", "'")
    assert value(after, name, reason=code) - value(before, name, reason=code) == 3


def test_page_and_api_parse_parameters_alike(client, signed_in, token):
    photo = make_image_bytes("JPEG", color=(1, 2, 3))
    for response in (
        api_upload(client, token, photo, top_k="١"),
        page_upload(client, signed_in, photo, accept="application/json", top_k="١"),
    ):
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "invalid_top_k"


def test_page_and_api_uploads_reach_the_metrics_and_the_log(
    client, signed_in, token, capsys
):
    name = "snapclass_result_cache_misses_total"
    before = scrape(client)
    capsys.readouterr()
    api = api_upload(client, token, make_image_bytes("JPEG", color=(4, 5, 6)))
    page = page_upload(client, signed_in, make_image_bytes("JPEG", color=(7, 8, 9)))
    assert (api.status_code, page.status_code) == (200, 302)
    after = scrape(client)
    assert value(after, name) - value(before, name) == 2
    lines = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{")
    ]
    for endpoint in ("api.predict", "web.upload"):
        (line,) = [r for r in lines if r["endpoint"] == endpoint]
        assert {"decode", "queue", "inference", "db", "total"} <= set(line["timing_ms"])
        assert line["batch_size"] >= 1
