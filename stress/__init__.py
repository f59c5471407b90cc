"""``make stress`` / ``python -m stress``: a measured stress-test report.

``stress.runner`` starts the app (or targets ``--host``) and drives Locust,
``stress.report`` turns the recorded data into ``reports/stress-<time>/``.
See docs/stress-testing.md.
"""
