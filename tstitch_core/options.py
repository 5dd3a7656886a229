"""Separating what a sampler adds to model options at run time from what a model brought."""

from __future__ import annotations

from typing import Any


def compute_runtime_additions(runtime: dict, base: dict) -> dict:
    """The entries of ``runtime`` that ``base`` does not hold, compared by identity.

    ``runtime`` is expected to be a nested copy of ``base`` (dicts and lists copied, leaves
    shared) plus additions: new keys, replaced leaves, and items appended to lists (how
    CFG++ samplers add their post-CFG hook). Appended items come back as a list of just
    those items, so merging the result onto another model's options extends its lists.
    """
    additions: dict[str, Any] = {}
    for key, value in runtime.items():
        if key not in base:
            additions[key] = value
            continue
        old = base[key]
        if value is old:
            continue
        if isinstance(value, dict) and isinstance(old, dict):
            nested = compute_runtime_additions(value, old)
            if nested:
                additions[key] = nested
        elif isinstance(value, list) and isinstance(old, list) and _starts_with(value, old):
            if len(value) > len(old):
                additions[key] = value[len(old):]
        else:
            additions[key] = value
    return additions


def _starts_with(items: list, prefix: list) -> bool:
    return len(items) >= len(prefix) and all(a is b for a, b in zip(items, prefix))
