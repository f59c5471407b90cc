"""``make stress`` / ``python -m stress``: a measured stress-test report.

``stress.measure`` starts the app (or targets ``--host``) and runs Locust
through ``devtools.locust``; ``stress.report`` turns the recorded data into
``reports/stress-<time>/``. See docs/stress-testing.md.
"""
