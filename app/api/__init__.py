"""The JSON API (blueprint ``api``) and its OpenAPI description (``docs``)."""

from .routes import bp

__all__ = ["bp"]
