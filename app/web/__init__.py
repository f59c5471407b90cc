"""Pages for people (blueprint ``web``) and the admin page (``admin``)."""

from .routes import bp

__all__ = ["bp"]
