"""Snapclass's version, written here only: pyproject.toml reads it
(``[tool.setuptools.dynamic]``), the app, the OpenAPI description and the
container image's tag import it. The app runs from a checkout, never
installed, so ``importlib.metadata`` has nothing to read, and the image holds
no pyproject.toml."""

__version__ = "0.1.0"
