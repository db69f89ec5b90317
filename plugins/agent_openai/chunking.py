"""Splitting a document into passages of about ``target`` characters.

Markdown headings start a new section (the heading becomes the passage's title);
paragraphs of a section are packed together up to the target size; a paragraph longer
than that is cut at sentence ends, then at spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_TARGET = 800

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


@dataclass(frozen=True, slots=True)
class DocumentChunk:
    """One passage of a document: its section title and text."""

    title: str
    text: str


def _paragraphs(lines: list[str]) -> list[str]:
    text = "\n".join(lines)
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _cut(paragraph: str, target: int) -> list[str]:
    """A paragraph longer than ``target`` as pieces no longer than it."""
    if len(paragraph) <= target:
        return [paragraph]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(paragraph):
        while len(sentence) > target:  # a sentence longer than a passage: cut at a space
            cut = sentence.rfind(" ", 0, target)
            cut = cut if cut > target // 2 else target
            head, sentence = sentence[:cut].strip(), sentence[cut:].strip()
            if current:
                pieces.append(current)
                current = ""
            pieces.append(head)
        if current and len(current) + 1 + len(sentence) > target:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces


def _pack(paragraphs: list[str], target: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for paragraph in paragraphs:
        for piece in _cut(paragraph, target):
            if current and len(current) + 2 + len(piece) > target:
                chunks.append(current)
                current = piece
            else:
                current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def split_document(
    text: str, default_title: str, target: int = DEFAULT_TARGET
) -> list[DocumentChunk]:
    """The passages of one document, in order. ``default_title`` names text before any
    heading (usually the file name)."""
    sections: list[tuple[str, list[str]]] = []
    doc_title = default_title
    title = default_title
    lines: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        match = _HEADING.match(line)
        if match:
            sections.append((title, lines))
            heading = match.group(2).strip()
            if len(match.group(1)) == 1 and doc_title == default_title:
                doc_title = heading
                title = heading
            else:
                title = heading if heading == doc_title else f"{doc_title} / {heading}"
            lines = []
        else:
            lines.append(line)
    sections.append((title, lines))
    chunks: list[DocumentChunk] = []
    for section_title, section_lines in sections:
        for piece in _pack(_paragraphs(section_lines), target):
            chunks.append(DocumentChunk(section_title, piece))
    return chunks
