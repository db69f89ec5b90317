"""BM25F over the passages, in memory: one numpy array of weights per term.

Each passage has three fields: the document title, its heading path and its body. A term's
weight in a passage is the BM25F saturation of its field-weighted, length-normalised count,
times its IDF; it is computed once when the index is loaded, so a search only adds a few
arrays together (well under a millisecond for 10,000 passages).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: Field weights: title, heading path, body. A word of a heading says more about the
#: passage than a word of its body; the title is shared by every passage of a document.
FIELD_WEIGHTS = (1.5, 3.0, 1.0)
#: Length normalisation per field (titles and headings are short and similar in length).
FIELD_B = (0.3, 0.3, 0.75)
K1 = 1.2
UNSEEN_SHARE = 0.5
UNSEEN_FLOOR = 1.0


@dataclass(frozen=True, slots=True)
class Posting:
    ids: np.ndarray  # passage numbers (int32)
    weights: np.ndarray  # BM25F weight of the term in each (float32)


def _damerau_ok(a: str, b: str, limit: int) -> bool:
    """Whether the optimal-string-alignment distance of ``a`` and ``b`` is <= ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return False
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return False
        previous2, previous = previous, current
    return previous[-1] <= limit


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


Fields = tuple[Sequence[str], Sequence[str], Sequence[str]]


class KeywordIndex:
    """BM25F weights of every term in every passage."""

    def __init__(self, passages: Sequence[Fields]) -> None:
        self.size = len(passages)
        counts: dict[str, dict[int, float]] = defaultdict(dict)
        pairs: dict[tuple[str, str], set[int]] = defaultdict(set)
        lengths = np.zeros((3, max(self.size, 1)), dtype=np.float64)
        for number, fields in enumerate(passages):
            for field, words in enumerate(fields):
                lengths[field, number] = len(words)
        averages = np.maximum(lengths.mean(axis=1), 1.0)
        for number, fields in enumerate(passages):
            for field, words in enumerate(fields):
                if not words:
                    continue
                norm = (
                    1 - FIELD_B[field] + FIELD_B[field] * lengths[field, number] / averages[field]
                )
                share = FIELD_WEIGHTS[field] / norm
                row_counts = counts
                for word in words:
                    row = row_counts[word]
                    row[number] = row.get(number, 0.0) + share
                for pair in itertools.pairwise(words):
                    pairs[pair].add(number)
        self.idf: dict[str, float] = {}
        self.postings: dict[str, Posting] = {}
        for term, row in counts.items():
            df = len(row)
            idf = math.log(1 + (self.size - df + 0.5) / (df + 0.5))
            tf = np.fromiter(row.values(), dtype=np.float64, count=df)
            weights = idf * tf * (K1 + 1) / (tf + K1)
            ids = np.fromiter(row.keys(), dtype=np.int32, count=df)
            self.idf[term] = idf
            self.postings[term] = Posting(ids, weights.astype(np.float32))
        #: How much a question's word that no passage has counts against coverage: a bit
        #: more than half the rarest indexed term ("стоит", "accept" are often just filler,
        #: "погода" is not, and two of them outweigh one word that matched).
        #: A floor keeps a tiny knowledge base (where every IDF is small) from answering
        #: a question of which it knows one word.
        self.unseen_idf = max(UNSEEN_SHARE * max(self.idf.values(), default=1.0), UNSEEN_FLOOR)
        self._deletes: dict[str, list[str]] | None = None
        #: Passages where two terms stand next to each other (stop words aside): a phrase
        #: of the synonyms file ("tracking number") matches only where it is written as one.
        self.pairs = {
            pair: np.fromiter(ids, dtype=np.int32, count=len(ids)) for pair, ids in pairs.items()
        }

    def adjacent(self, first: str, second: str) -> np.ndarray:
        """Whether ``first`` is followed by ``second`` in each passage (a boolean array)."""
        out = np.zeros(self.size, dtype=bool)
        ids = self.pairs.get((first, second))
        if ids is not None:
            out[ids] = True
        return out

    def __contains__(self, term: str) -> bool:
        return term in self.postings

    def dense(self, term: str) -> np.ndarray | None:
        """The term's weight in every passage (zeros where absent), or None if unknown."""
        posting = self.postings.get(term)
        if posting is None:
            return None
        out = np.zeros(self.size, dtype=np.float32)
        out[posting.ids] = posting.weights
        return out

    def correction(self, word: str) -> str | None:
        """The indexed term closest to an unknown ``word`` (a typo), if one is close."""
        if len(word) < 5 or not word.isalpha():
            return None
        if self._deletes is None:
            self._deletes = self._build_deletes(self.postings)
        limit = 1 if len(word) < 8 else 2
        candidates: set[str] = set()
        probes = {word} | _deletes(word)
        if limit > 1:
            probes |= {d for p in list(probes) for d in _deletes(p)}
        for probe in probes:
            candidates.update(self._deletes.get(probe, ()))
        # A typo rarely hits the first letter; insisting on it avoids most wrong guesses.
        close = [t for t in candidates if t[0] == word[0] and _damerau_ok(word, t, limit)]
        if not close:
            return None
        # Closest first, then the more frequent (lower IDF) reading, then alphabetical.
        close.sort(key=lambda t: (not _damerau_ok(word, t, 1), self.idf[t], t))
        return close[0]

    @staticmethod
    def _build_deletes(terms: Iterable[str]) -> dict[str, list[str]]:
        table: dict[str, list[str]] = defaultdict(list)
        for term in terms:
            if len(term) < 3 or not term.isalpha():
                continue
            table[term].append(term)
            for deleted in _deletes(term):
                table[deleted].append(term)
        return dict(table)
