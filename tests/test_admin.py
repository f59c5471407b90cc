"""The admin page and ``flask set-admin``."""

from __future__ import annotations

import io
import math
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Prediction
from app.models import User
from app.models import utcnow
from app.services.storage import thumbnail_id
from app.web.admin import histogram_quantile
from app.web.admin import percentile
from tests.helpers import PASSWORD
from tests.helpers import bearer
from tests.helpers import make_admin
from tests.helpers import make_image_bytes


def add_prediction(user_id, label, *, age, cached=False, ms=(10.0, 2.0, 30.0)):
    decode, preprocess, inference = ms
    db.session.add(
        Prediction(
            user_id=user_id,
            sha256="0" * 64,
            filename="x.jpg",
            mime_type="image/jpeg",
            size_bytes=1,
            width=1,
            height=1,
            label_scores=[],
            top_label=label,
            top_score=0.5,
            model_name="resnet50",
            weights="random",
            backend="openvino",
            cached=cached,
            timing_ms={
                "decode": decode,
                "preprocess": preprocess,
                "inference": inference,
            },
            thumbnail_id=thumbnail_id(b""),
            created_at=utcnow() - age,
        )
    )


def test_anonymous_visitors_get_404(client):
    assert client.get("/admin").status_code == 404


def test_non_admins_get_404(client, signed_in):
    response = client.get("/admin")
    assert response.status_code == 404
    assert "Admin" not in response.get_data(as_text=True)


def test_set_admin_and_revoke(client, signed_in, runner, app):
    result = make_admin(runner)
    assert "alice is an admin" in result.output
    assert client.get("/admin").status_code == 200
    result = runner.invoke(args=["set-admin", "Alice", "--revoke"])
    assert result.exit_code == 0 and "no longer an admin" in result.output
    assert client.get("/admin").status_code == 404
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == "alice"))
        assert user.is_admin is False


def test_set_admin_unknown_user_fails(runner):
    result = runner.invoke(args=["set-admin", "nobody"])
    assert result.exit_code != 0
    assert "No user named" in result.output


def test_new_users_are_not_admins(app, signed_in):
    with app.app_context():
        assert db.session.scalar(sa.select(User.is_admin)) is False


def test_admin_page_reports_windows_from_the_database(client, signed_in, runner, app):
    make_admin(runner)
    assert (
        runner.invoke(args=["create-user", "bob", "--password", PASSWORD]).exit_code
        == 0
    )
    with app.app_context():
        alice, bob = db.session.scalars(sa.select(User.id).order_by(User.id)).all()
        add_prediction(alice, "tabby", age=timedelta(minutes=5), ms=(5, 1, 14))
        add_prediction(alice, "tabby", age=timedelta(minutes=20), cached=True)
        add_prediction(bob, "goldfish", age=timedelta(minutes=50), ms=(10, 2, 88))
        add_prediction(bob, "goldfish", age=timedelta(hours=5), ms=(100, 0, 0))
        add_prediction(bob, "goldfish", age=timedelta(hours=7))
        add_prediction(bob, "volcano", age=timedelta(days=3))  # outside both
        db.session.commit()
    response = client.get("/admin")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    rows = re.findall(r"<tr>\s*<th scope=\"row\">(.*?)</th>(.*?)</tr>", html, re.S)
    cells = {label: re.findall(r"<td>(.*?)</td>", rest, re.S) for label, rest in rows}
    # images, active users, cache hits, model time p50, p95
    assert cells["Last hour"] == ["3", "2", "1 (33.3 %)", "20 ms", "100 ms"]
    assert cells["Last day"] == ["5", "2", "1 (20.0 %)", "42 ms", "100 ms"]
    assert "volcano" not in html
    hour = html[html.index('id="top-labels-1"') : html.index('id="top-labels-2"')]
    assert hour.index("tabby") < hour.index("goldfish")  # 2 before 1
    day = html[html.index('id="top-labels-2"') : html.index('id="instance"')]
    assert day.index("goldfish") < day.index("tabby")  # 3 before 2


def test_admin_page_shows_this_instances_metrics(client, signed_in, runner, token):
    make_admin(runner)
    client.post(
        "/predict",
        data={"image": [(io.BytesIO(b"not an image"), "x.jpg")]},
        headers=bearer(token),
        content_type="multipart/form-data",
    )
    data = make_image_bytes("JPEG", color=(200, 1, 1))
    for _ in range(2):
        client.post(
            "/predict",
            data={"image": [(io.BytesIO(data), "x.jpg")]},
            headers=bearer(token),
            content_type="multipart/form-data",
        )
    html = client.get("/admin").get_data(as_text=True)
    facts = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", html))
    assert int(facts["Requests"]) >= 3
    assert facts["/predict p50"].endswith(" ms")
    assert facts["Cache hit ratio"].endswith("%")
    assert "<code>invalid_image</code>" in html


def test_admin_page_has_no_inline_script_or_style(client, signed_in, runner):
    make_admin(runner)
    html = client.get("/admin").get_data(as_text=True)
    assert "<script" not in html and "style=" not in html and "<style" not in html


def test_percentile_is_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([1.0], 0.95) == 1.0
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.5, 0.0625), (0.25, 0.03125), (0.9, 0.3), (1.0, 0.5)],
)
def test_histogram_quantile_matches_prometheus(q, expected):
    # 40 requests <= 0.05 s, 40 in (0.05, 0.1], 20 in (0.1, 0.5], none above.
    buckets = {0.05: 40.0, 0.1: 80.0, 0.5: 100.0, math.inf: 100.0}
    assert histogram_quantile(q, buckets) == pytest.approx(expected)


def test_histogram_quantile_of_nothing_is_none():
    assert histogram_quantile(0.5, {}) is None
    assert histogram_quantile(0.5, {0.1: 0.0, math.inf: 0.0}) is None
    assert histogram_quantile(0.99, {0.1: 0.0, math.inf: 5.0}) == 0.1
