"""Snapclass's tooling, shared by tests, bench, stress and the scripts.

``devtools.server`` starts a real Gunicorn, ``devtools.locust`` runs Locust
headless, ``devtools.photos`` makes test photos, ``devtools.database`` makes
throw-away databases, ``devtools.rawhttp`` sends exact bytes,
``devtools.tables`` writes the reports' Markdown tables. The operational
runs are modules too: ``python -m devtools.soak``, ``python -m devtools.fault_run``.
"""
