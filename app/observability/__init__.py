"""What the app tells its operators: Prometheus metrics and the JSON request log."""
