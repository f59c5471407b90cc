"""The ``web`` blueprint, shared by the page modules that register views on it
(results.py, history.py, sharing.py, account.py): one blueprint, so that every
page is ``web.<view>`` whichever module holds it."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("web", __name__)

# <id:...> matches 1 to 2**31-1 in ASCII digits (app/http/params.py): anything else
# is a 404, never a query that overflows the database's 32-bit ids.
PREDICTION = "/predictions/<id:prediction_id>"
