"""How error messages echo what the user typed: quoted, and cut short, so that a huge input gives a short message."""

from __future__ import annotations

QUOTE_LIMIT = 200  # characters of an input a message quotes; a 1 MB input must not become a 1 MB message


def quote_input(text, limit: int = QUOTE_LIMIT) -> str:
    """``repr(text)``, or its first ``limit`` characters quoted and the whole length said, for error messages."""
    text = str(text)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"
