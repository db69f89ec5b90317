"""Words to search terms, the same way for documents and for questions.

A word is lower-cased, ``ё`` becomes ``е``; a Russian word is reduced to its dictionary
form by pymorphy3 ("пришёл" -> "прийти", "платит" -> "платить") and then stemmed by the
Snowball Russian stemmer, so a verb and its noun meet ("оплатить" and "оплата" -> "оплат");
a word the dictionary does not know is only stemmed. English words go through the
Snowball English stemmer. Stop words are dropped. Numbers, phone numbers, e-mail addresses
and web addresses are kept apart as *codes*: a question's codes never count as content
words (see :mod:`plugins.agent_openai.kb.query`).
"""

# ruff: noqa: RUF001, RUF002  (Russian word lists are intended)
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

#: Bump when the analysis changes: stored terms are then rebuilt at the next sync.
ANALYZER_VERSION = "2"

_CODE = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail
    r"|https?://\S+|www\.\S+"  # web address
    r"|(?:\+|№|#)?\d[\d\s()\-]{5,}\d"  # phone or long number written with spaces/dashes
    r"|[№#]\s?\d+"  # order number
)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
_CYRILLIC = re.compile("[а-я]")

STOPWORDS = frozenset(
    """
    a about am an and any anything are as at be been but by can could did do does doing
    for from get got have has had how i i'm if in into is it it's its just me my of on or
    our please so some than that the their them then there these they this to too us was
    we were what whats what's when where which who why will with would you your yours
    hi hello hey thanks thank tell know want need long much many take takes make go
    come give after before during within
    а без бы был была были было быть в вам вас весь вот все всё всего вы где да даже для
    до его ее её если есть еще ещё же за здравствуйте и из или им их к как какая какие
    какой какую каком ли либо мне мной можно мой моя мои мы на над надо не нет ни но ну о
    об он она они оно от очень по под подскажите пожалуйста привет при про с со спасибо
    так там то тоже только ты у уже хочу хотел хотела чем что чтобы эта эти это этот я
    ваш ваша ваше ваши вашем свой сам сама самому быть мочь нужно нужен нужна сколько
    который которая которые когда кто куда почему зачем скажите подскажите добрый день
    делать сделать через после один одна одно одном одной одну два две двух три трех четыре пять
    one two three four five
    """.split()
)


@dataclass(frozen=True, slots=True)
class Token:
    """One term of a text: ``code`` terms are numbers, phones, e-mails, addresses."""

    term: str
    code: bool = False
    #: A Russian place name ("Новосибирске"): a question about a city the documents do
    #: not name is about "other cities" (see :mod:`plugins.agent_openai.kb.keyword`).
    place: bool = False


class _Stemmers:
    """pymorphy3 and the Snowball stemmers, loaded once on first use (about 0.3 s)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Snowball stemmer objects keep state while stemming: indexing (a worker thread)
        #: and searching (the event loop) must not use one at the same time.
        self._use = threading.Lock()
        self._morph: Any = None
        self._ru: Any = None
        self._en: Any = None

    def load(self) -> None:
        with self._lock:
            if self._morph is not None:
                return
            import pymorphy3
            import snowballstemmer

            self._ru = snowballstemmer.stemmer("russian")
            self._en = snowballstemmer.stemmer("english")
            self._morph = pymorphy3.MorphAnalyzer(lang="ru")

    def russian(self, word: str) -> str:
        if self._morph is None:
            self.load()
        parse = self._morph.parse(word)[0]
        lemma = parse.normal_form.replace("ё", "е")  # guessed by analogy when unknown
        if lemma in STOPWORDS:  # "будет" -> "быть"
            return ""
        with self._use:
            return str(self._ru.stemWord(lemma))

    def is_place(self, word: str) -> bool:
        if self._morph is None:
            self.load()
        return "Geox" in self._morph.parse(word)[0].tag

    def english(self, word: str) -> str:
        if self._en is None:
            self.load()
        with self._use:
            return str(self._en.stemWord(word))


STEMMERS = _Stemmers()


def fold(text: str) -> str:
    """Lower case, ``ё`` as ``е``."""
    return text.lower().replace("ё", "е")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The search term of one lower-cased word."""
    if _CYRILLIC.search(word):
        return STEMMERS.russian(word)
    if word.isascii() and word.isalpha():
        return STEMMERS.english(word.replace("’", "'"))
    return word


@lru_cache(maxsize=50_000)
def is_place(word: str) -> bool:
    """Whether a lower-cased Russian word is a geographical name (pymorphy3's Geox)."""
    return bool(_CYRILLIC.search(word)) and STEMMERS.is_place(word)


def _digits(code: str) -> str:
    return re.sub(r"\D", "", code)


def tokens(text: str, *, keep_stopwords: bool = False) -> list[Token]:
    """The terms of ``text`` in order (content words stemmed, codes as digits or text)."""
    folded = fold(text)
    out: list[Token] = []
    position = 0
    for match in _CODE.finditer(folded):
        out.extend(_words(folded[position : match.start()], keep_stopwords))
        code = match.group(0)
        digits = _digits(code)
        out.append(Token(code if "@" in code or "/" in code else digits or code, code=True))
        position = match.end()
    out.extend(_words(folded[position:], keep_stopwords))
    return out


def _words(text: str, keep_stopwords: bool) -> list[Token]:
    out = []
    for word in _WORD.findall(text):
        word = word.replace("’", "'")
        if word.isdigit():
            out.append(Token(word, code=True))
        elif keep_stopwords or word not in STOPWORDS:
            term = stem(word)
            if term:
                out.append(Token(term, place=is_place(word)))
    return out


#: Words that name a code written next to them ("мой телефон +7999...", "order #123"):
#: dropped from a question when a code follows, so they do not pull in the contacts page.
CODE_LABELS = frozenset(
    {"телефон", "тел", "номер", "мобильн", "почт", "email", "mail", "phone", "number", "mobil"}
)


def question_tokens(text: str) -> list[Token]:
    """:func:`tokens` of a question, without the words that only introduce a code."""
    found = tokens(text)
    return [
        token
        for position, token in enumerate(found)
        if not (
            token.term in CODE_LABELS and position + 1 < len(found) and found[position + 1].code
        )
    ]


def terms(text: str) -> list[str]:
    """The search terms of a document's text (what the index stores)."""
    return [token.term for token in tokens(text)]
