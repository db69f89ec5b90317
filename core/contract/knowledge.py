"""A knowledge-base search result, returned by the ``knowledge_search`` hook."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Passage:
    """A piece of a document that matched a query."""

    text: str
    source: str
    score: float = 0.0
    title: str = ""
