"""The searchable state of the knowledge base, in memory, rebuilt after each change.

A :class:`Snapshot` is immutable: a reindex builds a new one and swaps it in, so searches
running meanwhile keep reading the old one. Keyword ranking is BM25F with a coverage
threshold; vector ranking is the cosine similarity with a threshold; ``hybrid`` fuses the
two ranked lists by reciprocal rank fusion (k = 60).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from core import Passage
from plugins.agent_openai.kb.bm25 import KeywordIndex
from plugins.agent_openai.kb.keyword import score
from plugins.agent_openai.kb.synonyms import Synonyms

SearchMode = Literal["keyword", "hybrid", "vector"]
RRF_K = 60
CANDIDATES = 50
#: Score factor of a passage in another language than the question's.
OTHER_LANGUAGE = 0.6
_CYRILLIC = re.compile("[\u0400-\u04ff]")


def is_mostly_cyrillic(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return sum(1 for c in letters if _CYRILLIC.match(c)) * 2 > len(letters)


@dataclass(frozen=True, slots=True)
class StoredPassage:
    source: str
    title: str
    headings: tuple[str, ...]
    text: str

    def passage(self, score: float) -> Passage:
        return Passage(
            text=self.text,
            source=self.source,
            score=round(score, 4),
            title=self.title,
            heading_path=self.headings,
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    passages: tuple[StoredPassage, ...] = ()
    keyword: KeywordIndex = field(default_factory=lambda: KeywordIndex([]))
    synonyms: Synonyms = field(default_factory=Synonyms)
    #: Unit vectors, one row per passage (zeros where none was computed), or None.
    vectors: np.ndarray | None = None
    #: Whether each passage is mostly Cyrillic text.
    russian: np.ndarray | None = None

    def keyword_ranking(self, query: str, min_coverage: float) -> list[tuple[int, float]]:
        """(passage number, BM25F score) best first, of passages covering enough."""
        scored = score(query, self.keyword, self.synonyms)
        if scored is None:
            return []
        # A passage that says everything the question asks beats one that says part of it
        # louder (in a heading, say): rank by score times coverage.
        totals = scored.total * scored.coverage
        if self.russian is not None and self.russian.size == totals.size:
            # Prefer passages in the question's language (a bilingual knowledge base has the
            # same policy twice; "mastercard" is in both).
            asked_russian = bool(_CYRILLIC.search(query))
            totals = totals * np.where(self.russian == asked_russian, 1.0, OTHER_LANGUAGE)
        eligible = np.flatnonzero(scored.eligible(min_coverage))
        if eligible.size == 0:
            return []
        ranked = eligible[np.argsort(-totals[eligible], kind="stable")][:CANDIDATES]
        return [(int(n), float(totals[n])) for n in ranked]

    def vector_ranking(self, query: np.ndarray, min_similarity: float) -> list[tuple[int, float]]:
        """(passage number, cosine similarity) best first, above ``min_similarity``."""
        if self.vectors is None or self.vectors.shape[0] == 0:
            return []
        if query.shape[0] != self.vectors.shape[1]:
            return []
        similarity = self.vectors @ query
        count = min(CANDIDATES, similarity.shape[0])
        top = np.argpartition(-similarity, count - 1)[:count]
        top = top[np.argsort(-similarity[top], kind="stable")]
        return [(int(n), float(similarity[n])) for n in top if similarity[n] >= min_similarity]

    def results(self, ranking: list[tuple[int, float]], limit: int) -> list[Passage]:
        return [self.passages[n].passage(value) for n, value in ranking[:limit]]


def fuse(*rankings: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: sum of 1 / (k + rank) over the lists a passage is in."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (number, _) in enumerate(ranking, 1):
            fused[number] = fused.get(number, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: -item[1])
