"""Uploaded file names, made safe to display."""

from __future__ import annotations

import re
import unicodedata

# Controls (Cc), format characters (Cf: bidi overrides and marks such as the
# U+202E that makes "photo\u202egpj.exe" display as "photoexe.jpg", zero-width
# characters, U+FEFF) and line and paragraph separators (Zl, Zp).
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def clean_filename(name: str | None, fallback: str = "upload") -> str:
    """The last path component, without control, format or separator
    characters, at most 255 chars.

    The name is only ever displayed (escaped), never used as a path.
    """
    name = "".join(
        ch for ch in name or "" if unicodedata.category(ch) not in _INVISIBLE_CATEGORIES
    )
    name = re.split(r"[\\/]", name)[-1].strip()
    return name[:255] or fallback
