"""Sign-in, sign-up and passwords (blueprint ``auth`` in routes.py, forms in
forms.py); sessions, tokens and CSRF (security.py); rate limits (ratelimits.py).

The factory imports the blueprint from ``routes``; importing this package
imports nothing else, so that ``app.auth.security`` costs no views."""
