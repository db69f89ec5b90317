"""Splitting a long reply into Telegram-sized messages.

Telegram counts a message's length in UTF-16 code units (an emoji outside the BMP counts
two), so that is what is measured here. Parts break after a newline or a space when one
is in the second half of the window, otherwise mid-word.
"""

from __future__ import annotations


def _units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in parts of at most ``limit`` UTF-16 units; joined they give ``text``."""
    parts: list[str] = []
    start = 0
    while start < len(text):
        used = 0
        end = start
        while end < len(text) and used + _units(text[end]) <= limit:
            used += _units(text[end])
            end += 1
        if end < len(text):
            window = text[start:end]
            cut = max(window.rfind("\n"), window.rfind(" "))
            if cut >= len(window) // 2:
                end = start + cut + 1
        parts.append(text[start:end])
        start = end
    return parts
