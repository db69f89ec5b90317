"""``eneca-bot kb eval FILE.jsonl``: how well the knowledge search finds the answer.

Each line of the file is one labelled question::

    {"question": "есть рассрочка?", "lang": "ru", "document": "payment.ru.md",
     "section": "Рассрочка"}
    {"question": "Какая завтра погода?", "document": null}

``document`` is the file (relative to ``KNOWLEDGE_DIR``) that answers the question, or
``null`` when the knowledge base cannot answer it. ``section`` (optional) is the heading of
the passage that answers it (the last part of the heading path). ``lang`` defaults to
``ru`` when the question has Cyrillic letters, else ``en``.

Figures, per language and in total:

- hit@1 / hit@4 / MRR: over the answerable questions, whether the right passage is the
  first / among the first four, and the mean of 1/rank;
- false answers: over all questions, the share whose first passage is a wrong one (for an
  unanswerable question: any passage at all). This is what a visitor of the
  knowledge-only mode would be told wrongly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core import Passage

Search = Callable[[str, int], Awaitable[Sequence[Passage]]]
DEPTH = 4
_CYRILLIC = re.compile("[\u0400-\u04ff]")


class EvalFileError(ValueError):
    """The eval file cannot be read or a line is not a labelled question."""


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    lang: str
    document: str | None
    section: str | None = None


@dataclass(slots=True)
class Tally:
    """Running figures for one language (or the total)."""

    questions: int = 0
    answerable: int = 0
    hit1: int = 0
    hit4: int = 0
    reciprocal: float = 0.0
    false_answers: int = 0

    def add(self, rank: int | None, answerable: bool, wrong_first: bool) -> None:
        self.questions += 1
        if answerable:
            self.answerable += 1
            if rank is not None:
                self.hit1 += rank == 1
                self.hit4 += rank <= DEPTH
                self.reciprocal += 1 / rank
        self.false_answers += wrong_first

    def figures(self) -> dict[str, float]:
        share = self.answerable or 1
        return {
            "questions": self.questions,
            "hit@1": round(self.hit1 / share, 3),
            "hit@4": round(self.hit4 / share, 3),
            "mrr": round(self.reciprocal / share, 3),
            "false_answers": round(self.false_answers / (self.questions or 1), 3),
        }


@dataclass(slots=True)
class EvalResult:
    by_lang: dict[str, Tally] = field(default_factory=dict)
    total: Tally = field(default_factory=Tally)
    misses: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, dict[str, float]]:
        rows = {lang: tally.figures() for lang, tally in sorted(self.by_lang.items())}
        rows["total"] = self.total.figures()
        return rows


def load_questions(path: Path) -> list[Question]:
    """The labelled questions of ``path``; :class:`EvalFileError` names a bad line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalFileError(f"cannot read {path}: {exc}") from exc
    questions = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text = str(row["question"]).strip()
            document = row.get("document")
            section = row.get("section")
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise EvalFileError(f"{path}:{number}: not a labelled question ({exc})") from exc
        if not text or (document is not None and not isinstance(document, str)):
            raise EvalFileError(f"{path}:{number}: needs a question and a document or null")
        lang = str(row.get("lang") or ("ru" if _CYRILLIC.search(text) else "en"))
        questions.append(Question(text, lang, document, section))
    if not questions:
        raise EvalFileError(f"{path} has no questions")
    return questions


def _section_of(passage: Passage) -> str:
    path = getattr(passage, "heading_path", ()) or ()
    if path:
        return str(path[-1])
    return passage.title.rsplit(" / ", 1)[-1].strip()


def matches(passage: Passage, question: Question) -> bool:
    """Whether ``passage`` is the labelled answer of ``question``."""
    if question.document is None or passage.source != question.document:
        return False
    if question.section is None:
        return True
    return _section_of(passage).casefold() == question.section.casefold()


async def evaluate(questions: Sequence[Question], search: Search) -> EvalResult:
    """Ask every question and tally the ranks of the labelled answers."""
    result = EvalResult()
    for question in questions:
        passages = list(await search(question.text, DEPTH))
        rank = next(
            (n for n, passage in enumerate(passages, 1) if matches(passage, question)), None
        )
        answerable = question.document is not None
        wrong_first = bool(passages) and rank != 1
        tally = result.by_lang.setdefault(question.lang, Tally())
        for target in (tally, result.total):
            target.add(rank, answerable, wrong_first)
        if rank != 1 and (answerable or passages):
            got = f"{passages[0].source} / {_section_of(passages[0])}" if passages else "nothing"
            want = question.document or "nothing"
            if question.section:
                want += f" / {question.section}"
            result.misses.append(f"{question.text!r}: expected {want}, got {got}")
    return result


def format_report(result: EvalResult) -> str:
    """A plain-text table of the figures."""
    header = f"{'':<6} {'n':>4} {'hit@1':>6} {'hit@4':>6} {'MRR':>6} {'false':>6}"
    lines = [header]
    for lang, row in result.figures().items():
        lines.append(
            f"{lang:<6} {row['questions']:>4} {row['hit@1']:>6.3f} {row['hit@4']:>6.3f} "
            f"{row['mrr']:>6.3f} {row['false_answers']:>6.3f}"
        )
    return "\n".join(lines)
