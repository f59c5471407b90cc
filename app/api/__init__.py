"""The JSON API (blueprint ``api`` in routes.py) and its OpenAPI description
(``docs`` in openapi.py). The factory imports each blueprint's module."""
