"""Pages for people (blueprints ``web`` in routes.py, ``batches`` and ``admin``;
their forms in forms.py). The factory imports each blueprint's module."""
