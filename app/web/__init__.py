"""Pages for people: the ``web`` blueprint (blueprint.py), its views by what
they show (results.py, history.py, sharing.py, account.py), and the
``batches`` and ``admin`` blueprints; their forms in forms.py. The factory
imports each module that registers views."""
