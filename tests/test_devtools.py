"""The tooling package: one Locust command line, no path tricks (rule 16)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import sqlalchemy as sa
from PIL import Image

from devtools import locust
from devtools.database import reset_schema
from devtools.photos import photo_jpeg
from devtools.tables import table

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".venv", ".git", "reports", "artifacts", "instance", "node_modules"}


def python_files() -> list[Path]:
    return [
        path
        for path in ROOT.rglob("*.py")
        if not SKIP & set(path.relative_to(ROOT).parts)
    ]


def test_locust_command_for_a_profile():
    profile = locust.Profile(10, 2.0, 30, tags=["predict"], user_classes=["ApiUser"])
    command = locust.command("http://h", Path("/out/locust-x"), profile, html=True)
    assert command[1:] == [
        "-f",
        "locustfile.py",
        "--headless",
        *("--host", "http://h", "--csv", "/out/locust-x", "--only-summary"),
        *("--stop-timeout", "10", "--html", "/out/locust-x.html"),
        *("-u", "10", "-r", "2", "-t", "30s", "--tags", "predict", "ApiUser"),
    ]


def test_a_shape_sets_the_users_itself():
    profile = locust.Profile(20, 2, 100, shape="stress/step_shape.py")
    command = locust.command("http://h", Path("p"), profile, html=False)
    assert command[2] == "locustfile.py,stress/step_shape.py"
    assert "-u" not in command and "-t" not in command and "--html" not in command


def test_nothing_edits_the_import_path_and_no_test_imports_a_script():
    needle = "sys." + "path"
    editing = [p for p in python_files() if needle in p.read_text()]
    assert editing == []
    script_import = re.compile(r"^\s*(from|import) scripts\b", re.MULTILINE)
    tests = [p for p in python_files() if p.parts[-2] == "tests"]
    assert [p for p in tests if script_import.search(p.read_text())] == []


def test_reset_schema_drops_every_table(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE alembic_version (v TEXT)"))
        connection.execute(sa.text("CREATE TABLE users (id INTEGER)"))
    reset_schema(engine)
    assert sa.inspect(engine).get_table_names() == []
    engine.dispose()


def test_photo_is_a_jpeg_of_the_asked_size():
    data = photo_jpeg((64, 48))
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size, image.mode) == ("JPEG", (64, 48), "RGB")
    assert photo_jpeg((64, 48)) != data  # noise: each photo is its own


def test_table_is_markdown():
    assert table(["a", "b"], [[1, "x"], [2.5, ""]]) == (
        "| a | b |\n|---|---|\n| 1 | x |\n| 2.5 |  |"
    )
