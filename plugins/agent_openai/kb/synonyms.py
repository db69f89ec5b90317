"""``synonyms.txt`` in the knowledge folder: words and phrases a visitor may use instead.

One group per line, phrases separated by ``=``; ``#`` starts a comment::

    рассрочка = частями = в кредит
    refund = money back

A question that contains one phrase of a group also searches for the others (each phrase
is analysed like any text, so inflected forms match). The file is read again whenever the
knowledge base is reindexed and its content changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from plugins.agent_openai.kb.text import terms

FILE_NAME = "synonyms.txt"

Phrase = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Synonyms:
    """Groups of equivalent phrases, each phrase as its search terms."""

    groups: tuple[tuple[Phrase, ...], ...] = ()
    #: first term of a phrase -> the (phrase, group number) pairs starting with it
    _starts: dict[str, list[tuple[Phrase, int]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Synonyms:
        groups: list[tuple[Phrase, ...]] = []
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if "=" not in line:
                continue
            phrases = tuple(
                dict.fromkeys(tuple(terms(part)) for part in line.split("=") if terms(part))
            )
            if len(phrases) > 1:
                groups.append(phrases)
        starts: dict[str, list[tuple[Phrase, int]]] = {}
        for number, group in enumerate(groups):
            for phrase in group:
                starts.setdefault(phrase[0], []).append((phrase, number))
        for entries in starts.values():
            entries.sort(key=lambda entry: -len(entry[0]))  # longest phrase first
        return cls(tuple(groups), starts)

    @classmethod
    def load(cls, folder: Path) -> Synonyms:
        path = folder / FILE_NAME
        try:
            return cls.parse(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError) as exc:
            logger.error("knowledge: cannot read {}: {}", path, exc)
            return cls()

    def find(self, sequence: list[str]) -> list[tuple[int, int, tuple[Phrase, ...]]]:
        """Phrases of ``sequence`` found in a group: (start, length, the other phrases)."""
        found = []
        position = 0
        while position < len(sequence):
            entries = self._starts.get(sequence[position], ())
            for phrase, _ in entries:
                if tuple(sequence[position : position + len(phrase)]) == phrase:
                    # Every group the phrase is in ("сломанный" and "сломался" share a stem).
                    others = {
                        other: None
                        for same, number in entries
                        if same == phrase
                        for other in self.groups[number]
                        if other != phrase
                    }
                    found.append((position, len(phrase), tuple(others)))
                    position += len(phrase) - 1
                    break
            position += 1
        return found
