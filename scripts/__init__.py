"""Operational scripts: fault runs and soak runs against a real server."""
