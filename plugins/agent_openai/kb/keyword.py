"""A question against the BM25F index: concepts, synonyms, typos, coverage.

A question becomes *concepts*: each content word (or a phrase of ``synonyms.txt``) with
its alternatives (the synonyms' phrases, or the closest indexed term when the word is a
typo nobody indexed). A passage's score adds, for each concept, its best alternative's
BM25F weight. Its *coverage* is the IDF-weighted share of the question's concepts it
matches; a word no document contains counts fully against it, so "какая завтра погода в
Москве" covers little of any passage even though "Москва" is in one. Numbers, phones and
e-mails add to the score when a passage has them but never count against coverage.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from plugins.agent_openai.kb.bm25 import KeywordIndex
from plugins.agent_openai.kb.synonyms import Phrase, Synonyms
from plugins.agent_openai.kb.text import question_tokens, terms

SYNONYM_BOOST = 0.9
TYPO_BOOST = 0.8
CODE_BOOST = 0.5
#: A phrase whose words a passage has, but apart ("track your order ... order number" for
#: "tracking number"), counts this much of a passage where they stand together.
SCATTERED_PHRASE = 0.6
MAX_CONCEPTS = 24
#: What a place name no document mentions stands for: documents speak of "other cities".
PLACE_TERMS = ("город",)


@dataclass(frozen=True, slots=True)
class Concept:
    """One thing the question asks about, with the ways a passage may say it."""

    alternatives: tuple[tuple[Phrase, float], ...]
    code: bool = False


def concepts(question: str, index: KeywordIndex, synonyms: Synonyms) -> list[Concept]:
    """The concepts of ``question`` (duplicates merged)."""
    found = question_tokens(question)
    words = [token.term for token in found if not token.code]
    places = {token.term for token in found if token.place}
    out: list[Concept] = []
    covered: set[int] = set()
    for start, length, others in synonyms.find(words):
        phrase = tuple(words[start : start + length])
        alternatives = [(phrase, 1.0)] + [(other, SYNONYM_BOOST) for other in others]
        out.append(Concept(tuple(alternatives)))
        covered.update(range(start, start + length))
    for position, word in enumerate(words):
        if position in covered:
            continue
        alternatives = [((word,), 1.0)]
        if word not in index and word in places:
            # "доставка в Новосибирск": the documents say "в другие города".
            alternatives.extend(((term,), SYNONYM_BOOST) for term in _place_terms())
        elif word not in index:
            fixed = index.correction(word)
            if fixed is not None:
                alternatives.append(((fixed,), TYPO_BOOST))
                for _, _, others in synonyms.find([fixed]):
                    alternatives.extend((other, TYPO_BOOST * SYNONYM_BOOST) for other in others)
        out.append(Concept(tuple(alternatives)))
    for token in found:
        if token.code:
            out.append(Concept((((token.term,), CODE_BOOST),), code=True))
    unique: dict[tuple[tuple[Phrase, float], ...], Concept] = {}
    for concept in out:
        unique.setdefault(concept.alternatives, concept)
    return list(unique.values())[:MAX_CONCEPTS]


@lru_cache(maxsize=1)
def _place_terms() -> tuple[str, ...]:
    return tuple(term for word in PLACE_TERMS for term in terms(word))


def _phrase(index: KeywordIndex, phrase: Phrase) -> tuple[np.ndarray, float] | None:
    """A phrase's weight per passage (all its terms present; less when they are apart)
    and its IDF, or None."""
    arrays = [index.dense(term) for term in phrase]
    if any(array is None for array in arrays):
        return None
    stacked = np.vstack(arrays)  # type: ignore[arg-type]
    present = np.all(stacked > 0, axis=0)
    together = np.ones(index.size, dtype=bool)
    for first, second in itertools.pairwise(phrase):
        together &= index.adjacent(first, second)
    present = present * np.where(together, 1.0, SCATTERED_PHRASE)
    idf = sum(index.idf[term] for term in phrase) / len(phrase)
    return stacked.sum(axis=0) * present, idf


@dataclass(frozen=True, slots=True)
class Scores:
    """Per passage: BM25F score, coverage (0..1) and how many concepts it matched."""

    total: np.ndarray
    coverage: np.ndarray
    matched: np.ndarray

    def eligible(self, min_coverage: float) -> np.ndarray:
        """Passages relevant enough: ``min_coverage``, or half of it for a passage that
        matches two or more of the question's concepts (a question full of words the
        documents do not use, such as product names, still finds its policy)."""
        enough = self.coverage >= min_coverage
        several = (self.matched >= 2) & (self.coverage >= min_coverage / 2)
        return (enough | several) & (self.total > 0)


def score(question: str, index: KeywordIndex, synonyms: Synonyms) -> Scores | None:
    """The :class:`Scores` of every passage, or None if there is nothing to look for."""
    if index.size == 0:
        return None
    parts = concepts(question, index, synonyms)
    if not any(not concept.code for concept in parts):
        return None
    total = np.zeros(index.size, dtype=np.float32)
    matched = np.zeros(index.size, dtype=np.float32)
    count = np.zeros(index.size, dtype=np.int16)
    weight_sum = 0.0
    for concept in parts:
        best = np.zeros(index.size, dtype=np.float32)
        weight = 0.0
        for phrase, boost in concept.alternatives:
            found = _phrase(index, phrase)
            if found is None:
                continue
            array, idf = found
            np.maximum(best, array * boost, out=best)
            weight = max(weight, idf)
        total += best
        if concept.code:
            continue
        weight = weight or index.unseen_idf
        weight_sum += weight
        matched += (best > 0) * weight
        count += best > 0
    return Scores(total, matched / weight_sum if weight_sum else matched, count)
