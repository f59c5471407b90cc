"""Settings (app/config.py): read when an app is created, not at import."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app import create_app
from app.config import Config
from app.config import FromEnv
from app.config import ProductionConfig
from app.config import TestingConfig
from app.config import check_settings
from app.config import config_from_env
from app.config import settings_of
from app.config import sqlite_synchronous
from app.inference import WeightsUnavailable
from app.inference import ensure_converted
from app.inference import parse_precision
from app.inference import parse_weights
from app.inference import resolve_backend
from app.model_service import EXTENSION_KEY


def test_what_the_master_sets_after_import_reaches_the_app(monkeypatch, tmp_path):
    """The Gunicorn master imports the app, converts the model, then sets
    SNAPCLASS_OPENVINO_MODEL; each worker's app must see that path."""
    import wsgi  # noqa: F401  (what gunicorn's master imports first)

    monkeypatch.setenv("SNAPCLASS_OPENVINO_MODEL", "/models/resnet50-x.xml")
    monkeypatch.setenv("MAX_FILES_PER_REQUEST", "3")
    settings = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'a.sqlite3'}"}
    app = create_app(type("Config", (Config,), settings))
    assert app.config["OPENVINO_MODEL"] == "/models/resnet50-x.xml"
    assert app.config["MAX_FILES_PER_REQUEST"] == 3
    service = app.extensions[EXTENSION_KEY]
    assert service._settings["converted_model"] == "/models/resnet50-x.xml"


def test_from_env_defaults_parses_and_names_the_setting(monkeypatch):
    class Settings:
        LIMIT = FromEnv("SNAPCLASS_TEST_LIMIT", 7, int)
        IDLE = FromEnv(
            "SNAPCLASS_TEST_IDLE",
            timedelta(minutes=5),
            lambda v: timedelta(minutes=int(v)),
        )

    assert Settings.LIMIT == 7
    monkeypatch.setenv("SNAPCLASS_TEST_LIMIT", " ")
    assert Settings.LIMIT == 7  # empty means the default
    monkeypatch.setenv("SNAPCLASS_TEST_LIMIT", "12")
    monkeypatch.setenv("SNAPCLASS_TEST_IDLE", "30")
    assert (Settings.LIMIT, Settings.IDLE) == (12, timedelta(minutes=30))
    monkeypatch.setenv("SNAPCLASS_TEST_LIMIT", "twelve")
    with pytest.raises(ValueError, match="SNAPCLASS_TEST_LIMIT"):
        _ = Settings.LIMIT


def test_a_bad_number_setting_stops_create_app_with_its_name(monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "10MB")
    with pytest.raises(ValueError, match="MAX_UPLOAD_BYTES"):
        create_app(TestingConfig)


def test_production_reads_its_requirements_when_asked(monkeypatch):
    monkeypatch.setenv("SNAPCLASS_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY, DATABASE_URL"):
        config_from_env()
    monkeypatch.setenv("SECRET_KEY", "s" * 32)
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db/snapclass")
    assert config_from_env() is ProductionConfig
    assert (
        ProductionConfig.SQLALCHEMY_DATABASE_URI
        == "postgresql+psycopg://u@db/snapclass"
    )


def test_a_conversion_timeout_is_a_start_up_message_not_a_traceback(tmp_path):
    with pytest.raises(WeightsUnavailable, match="MODEL_CONVERT_TIMEOUT_S"):
        ensure_converted(parse_weights("random"), Path(tmp_path), timeout_s=0.01)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("SQLITE_SYNCHRONOUS", "sometimes"),
        ("INFERENCE_BACKEND", "cuda"),
        ("OPENVINO_PRECISION", "fp32"),
        ("BATCH_MAX_SIZE", 0),
        ("BATCH_MAX_DELAY_MS", -1),
    ],
)
def test_one_validator_names_each_bad_setting(setting, value):
    """The same check runs in create_app and in the Gunicorn master."""
    settings = {**settings_of(TestingConfig), setting: value}
    with pytest.raises(ValueError, match=setting):
        check_settings(settings)
    with pytest.raises(ValueError, match=setting):
        create_app(type("Config", (TestingConfig,), {setting: value}))


# Where each checked setting ends up: the model service's settings, or app.config.
CHECKED = {
    "SQLITE_SYNCHRONOUS": None,
    "INFERENCE_BACKEND": "backend",
    "OPENVINO_PRECISION": "openvino_precision",
    "BATCH_MAX_SIZE": "batch_max_size",
    "BATCH_MAX_DELAY_MS": "batch_max_delay_ms",
}


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        (None, None),  # every default as it is
        ("SQLITE_SYNCHRONOUS", " full "),
        ("INFERENCE_BACKEND", "OpenVINO"),
        ("OPENVINO_PRECISION", "F32"),
        ("BATCH_MAX_SIZE", 1),
        ("BATCH_MAX_DELAY_MS", 0),
    ],
)
def test_the_defaults_and_the_edge_values_reach_the_model_as_given(setting, value):
    """What the validator accepts (the defaults, any case and spacing, the
    smallest batch and delay) starts an app whose model gets the value."""
    overrides = {setting: value} if setting else {}
    check_settings({**settings_of(Config), **overrides})  # raises if refused
    app = create_app(type("Config", (TestingConfig,), overrides))
    expected = {**settings_of(TestingConfig), **overrides}
    service = app.extensions[EXTENSION_KEY]
    for name, key in CHECKED.items():
        got = service._settings[key] if key else app.config[name]
        assert got == expected[name], name


def test_accepted_spellings_mean_the_canonical_value():
    assert sqlite_synchronous(" full ") == "FULL"
    assert resolve_backend(" OpenVINO ") == "openvino"
    assert parse_precision("F32") == "f32"
