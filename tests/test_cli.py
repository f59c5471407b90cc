"""The flask commands, and what happens without ImageNet weights."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.inference import WeightsUnavailable
from app.inference import ensure_weights
from app.inference import parse_weights
from app.models import ApiToken
from app.models import User


def test_create_user_and_token(runner, app):
    result = runner.invoke(
        args=["create-user", "Carol", "--password", "carols password"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["create-token", "carol", "backup job"])
    assert result.exit_code == 0
    plain = result.output.strip()
    assert plain.startswith("sc_")
    with app.app_context():
        user = db.session.scalar(sa.select(User))
        token = db.session.scalar(sa.select(ApiToken))
        assert user.username == "carol" and token.name == "backup job"
    response = app.test_client().get(
        "/api/predictions", headers={"Authorization": f"Bearer {plain}"}
    )
    assert response.status_code == 200


def test_create_user_rejects_bad_input(runner):
    assert runner.invoke(
        args=["create-user", "x", "--password", "long enough"]
    ).exit_code
    assert runner.invoke(args=["create-user", "dave", "--password", "short"]).exit_code
    runner.invoke(args=["create-user", "dave", "--password", "long enough"])
    duplicate = runner.invoke(args=["create-user", "dave", "--password", "long enough"])
    assert duplicate.exit_code != 0 and "taken" in duplicate.output


def test_create_token_for_unknown_user_fails(runner):
    result = runner.invoke(args=["create-token", "nobody", "x"])
    assert result.exit_code != 0 and "No user named" in result.output


@pytest.mark.slow
def test_missing_imagenet_weights_explain_what_to_do(tmp_path, monkeypatch):
    # An empty Keras cache and a proxy that refuses connections: offline, always.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    try:
        ensure_weights(parse_weights("imagenet"), timeout_s=120)
    except WeightsUnavailable as exc:
        message = str(exc)
    else:
        raise AssertionError("ensure_weights succeeded without a network")
    assert "MODEL_WEIGHTS=random" in message
    assert "flask fetch-model" in message
    assert "Traceback" not in message and "\n" not in message


def test_create_token_keeps_to_the_per_user_limit(make_app):
    """The command issues tokens under the same cap as the account page, and
    a revoked token frees its place."""
    app = make_app(MAX_TOKENS_PER_USER=2)
    runner = app.test_cli_runner()
    runner.invoke(args=["create-user", "erin", "--password", "erins password"])
    for name in ("a", "b"):
        assert runner.invoke(args=["create-token", "erin", name]).exit_code == 0
    refused = runner.invoke(args=["create-token", "erin", "c"])
    assert refused.exit_code == 1
    assert "2 active tokens" in refused.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(ApiToken.id))) == 2
        db.session.scalar(sa.select(ApiToken)).revoked_at = sa.func.now()
        db.session.commit()
    assert runner.invoke(args=["create-token", "erin", "c"]).exit_code == 0
