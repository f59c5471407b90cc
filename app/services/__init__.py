"""The work behind the views: classify and store, history, sharing, batches,
feedback. Views call these; they raise, and app/errors.py answers."""
