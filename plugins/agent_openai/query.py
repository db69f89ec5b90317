"""Turning free user text into a safe SQLite FTS5 query that tolerates inflections.

User text never reaches FTS5 as syntax: words are extracted, each becomes a quoted prefix
term (``"достав"*``), and terms are joined with ``OR`` (bm25 ranks passages matching more
of them first). Russian words lose a short ending before the prefix star, so "доставки"
finds "доставка" and "Оплата" finds "оплатить"; English words lose a plural or verb
ending. Very common words are dropped unless nothing else is left.
"""

# ruff: noqa: RUF001  (Russian word lists and ranges are intended)
from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_ENGLISH_SUFFIXES = ("ies", "ing", "es", "ed", "ly", "s")
MAX_TERMS = 16

STOPWORDS = frozenset(
    """
    a an and are as at be by can could do does did for from how i if in is it its me my
    of on or our please the their there this to was we what when where which who why will
    with would you your
    а без бы был была были было в вам вас во вот все всё вы где да для до его ее её если
    есть еще ещё же за и из или им их к как какая какие какой когда кто ли либо мне мной
    можно мой мы на над надо не нет ни но ну о об он она они от очень по под пожалуйста
    при про с со так там то тоже только ты у уже хочу чем что чтобы эта эти это этот я
    """.split()
)


def _stem(word: str) -> str:
    """A prefix of ``word`` that its inflected forms share."""
    if _CYRILLIC.search(word):
        if len(word) >= 6:
            return word[:-2]
        if len(word) >= 4:
            return word[:-1]
        return word
    for suffix in _ENGLISH_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def query_terms(text: str) -> list[str]:
    """The distinct lower-cased words of ``text`` worth searching for, in order."""
    words = [w.lower() for w in _WORD.findall(text)]
    seen: dict[str, None] = {}
    for word in words:
        if word not in STOPWORDS:
            seen.setdefault(word)
    if not seen:
        seen = dict.fromkeys(words)
    return list(seen)[:MAX_TERMS]


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression for ``text``, or ``None`` when it has no words."""
    stems: dict[str, None] = dict.fromkeys(_stem(term) for term in query_terms(text))
    if not stems:
        return None
    return " OR ".join(f'"{stem}"*' for stem in stems)
