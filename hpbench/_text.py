"""Small helpers for the messages people read."""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``count`` and ``noun`` in agreement: '1 epoch', '2 epochs', '0 workers'; ``nouns``: an irregular plural
    ('1 process', '2 processes')."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"
