"""Markdown-like text into passages that know their document title and heading path.

Headings start a section; the first level-1 heading is the document's title. A section's
paragraphs are packed into passages of about ``target`` characters; a longer section is
cut at paragraph, then sentence ends, and each further passage repeats the last sentence
of the one before (``overlap``) so an answer that straddles the cut is still found whole.
Soft line breaks inside a paragraph are joined (a source wrapped at 80 columns reads as
prose in a chat bubble); list items and paragraphs stay on their own lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_TARGET = 800

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?…;])\s+")


@dataclass(frozen=True, slots=True)
class Section:
    """One passage: the document title, the headings above it, its text."""

    title: str
    headings: tuple[str, ...]
    text: str

    @property
    def label(self) -> str:
        """``Title / Heading / Sub-heading`` as shown in citations."""
        return " / ".join((self.title, *self.headings))


def prose(lines: list[str]) -> list[str]:
    """Paragraphs of ``lines``: soft breaks joined, list items each on their own line."""
    paragraphs: list[str] = []
    current: list[str] = []

    def close() -> None:
        if current:
            paragraphs.append("\n".join(current))
            current.clear()

    for raw in lines:
        line = raw.strip()
        if not line:
            close()
        elif _LIST_ITEM.match(line) or line.startswith("|"):
            current.append(line)
        elif current and not _LIST_ITEM.match(current[-1]) and not current[-1].startswith("|"):
            current[-1] = f"{current[-1]} {line}"
        else:
            current.append(line)
    close()
    return paragraphs


def _sentences(paragraph: str, target: int) -> list[str]:
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        while len(sentence) > target:  # no sentence end in sight: cut at a space
            cut = sentence.rfind(" ", 0, target)
            cut = cut if cut > target // 2 else target
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    return pieces


def _pack(paragraphs: list[str], target: int, overlap: bool) -> list[str]:
    chunks: list[str] = []
    current = ""
    for paragraph in paragraphs:
        units = [paragraph] if len(paragraph) <= target else _sentences(paragraph, target)
        for number, unit in enumerate(units):
            joiner = "\n\n" if number == 0 else " "
            if current and len(current) + len(joiner) + len(unit) > target:
                chunks.append(current)
                tail = _SENTENCE_END.split(current)[-1] if overlap else ""
                keep = tail if tail and len(tail) + 1 + len(unit) <= target else ""
                current = f"{keep} {unit}".strip() if keep else unit
            else:
                current = f"{current}{joiner}{unit}" if current else unit
    if current:
        chunks.append(current)
    return chunks


def split_sections(
    text: str,
    default_title: str,
    target: int = DEFAULT_TARGET,
    *,
    title: str | None = None,
    overlap: bool = True,
) -> list[Section]:
    """The passages of one document, in order."""
    doc_title = title
    stack: list[tuple[int, str]] = []
    blocks: list[tuple[tuple[str, ...], list[str]]] = [((), [])]
    for line in text.replace("\r\n", "\n").split("\n"):
        match = _HEADING.match(line)
        if not match:
            blocks[-1][1].append(line)
            continue
        level, heading = len(match.group(1)), match.group(2).strip()
        if doc_title is None and level == 1:
            doc_title = heading
            stack = []
        elif heading != doc_title:
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading))
        blocks.append((tuple(h for _, h in stack), []))
    final_title = doc_title or default_title
    sections = []
    for headings, lines in blocks:
        for piece in _pack(prose(lines), target, overlap):
            sections.append(Section(final_title, headings, piece))
    return sections
