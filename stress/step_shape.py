"""Step load for Locust: add users in steps until a maximum, then stop.

Loaded beside the locustfile so that the plain profile keeps using
``-u/-r/-t`` (a shape class in the locustfile itself would always take over);
Locust's own HTML report then shows response times against the users::

    SNAPCLASS_WAIT=none locust -f locustfile.py,stress/step_shape.py
        --headless --host URL --tags predict --html step-load.html

Settings (environment):
    SNAPCLASS_STEP_USERS    users added per step (default 2)
    SNAPCLASS_STEP_SECONDS  length of a step (default 10)
    SNAPCLASS_STEP_MAX      users in the last step (default 20)
"""

from __future__ import annotations

import os

from locust import LoadTestShape


def step_settings() -> tuple[int, float, int]:
    """(users per step, seconds per step, maximum users) from the environment."""
    return (
        int(os.environ.get("SNAPCLASS_STEP_USERS", 2)),
        float(os.environ.get("SNAPCLASS_STEP_SECONDS", 10)),
        int(os.environ.get("SNAPCLASS_STEP_MAX", 20)),
    )


class StepLoadShape(LoadTestShape):
    """``step`` users more every ``seconds``, up to ``maximum``, then stop."""

    def tick(self) -> tuple[int, float] | None:
        step_users, seconds, maximum = step_settings()
        step = int(self.get_run_time() // seconds)
        users = step_users * (step + 1)
        if users > maximum:
            return None
        # Spawn a whole step at once: each step should be measured at its
        # nominal user count for as much of its length as possible.
        return users, float(step_users)
