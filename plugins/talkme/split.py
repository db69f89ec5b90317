"""Splitting a long reply into TalkMe-sized messages.

A part ends, in order of preference, after a paragraph break, a line break, the end of a
sentence, a space, or (nothing else fits) exactly at the limit. Parts are consecutive
slices of the text: joined they give the text back, character for character, so a
delivery that resumes after a confirmed part can split the rest the same way.
"""

from __future__ import annotations

import re

#: Boundaries a part may end after, best first. Each match's end is the cut.
_BOUNDARIES = (
    re.compile(r"\n[ \t]*\n\s*"),  # paragraph
    re.compile(r"\n\s*"),  # line
    re.compile(r"[.!?…](?:[\"'»”)\]]*)\s+"),  # sentence
    re.compile(r"\s+"),  # word
)


def _cut(window: str, min_part: int) -> int:
    """Where to end the next part inside ``window`` (which is exactly ``limit`` long)."""
    for boundary in _BOUNDARIES:
        best = 0
        for match in boundary.finditer(window):
            if match.start() >= min_part:
                best = match.end()
        if best:
            return best
    return len(window)


def split_text(text: str, limit: int) -> list[str]:
    """Parts of at most ``limit`` characters whose concatenation is ``text``.

    A part is never cut shorter than a quarter of the limit to reach a nicer boundary.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    parts: list[str] = []
    rest = text
    min_part = max(1, limit // 4)
    while len(rest) > limit:
        cut = _cut(rest[:limit], min_part)
        if rest[cut - 1 : cut + 1] == "\r\n" and cut > 1:  # never separate CR from LF
            cut -= 1
        parts.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        parts.append(rest)
    return parts
