"""Sign-in, sign-up and passwords (blueprint ``auth``); sessions, tokens and
CSRF (security.py)."""

from .routes import bp

__all__ = ["bp"]
