"""The Markdown tables that the bench and stress reports print."""

from __future__ import annotations


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table: the header row, its rule, then one line per row."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
