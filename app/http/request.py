"""The application's request class: uploads stay in memory."""

from __future__ import annotations

import io
from typing import Any

from flask import Request

from app.http.json_bodies import json_loading_failed


class UploadRequest(Request):
    """Keeps uploaded files in memory instead of spooling them to disk.

    Werkzeug writes every file over 500 KB to a temporary file, and we read it
    straight back: each upload is hashed, decoded and stored as bytes. Bodies
    are capped at MAX_CONTENT_LENGTH either way, so memory stays bounded, and
    a photo no longer costs a write and a read (docs/performance.md, "Request
    bodies"). Werkzeug's own parser splits the body: a parser of our own for
    bodies already in memory saved too little to keep (same page).
    """

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        json_loading_failed(e)
        return super().on_json_loading_failed(e)

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> io.BytesIO:
        return io.BytesIO()
