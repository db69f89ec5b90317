"""A knowledge-base search result, returned by the ``knowledge_search`` hook."""

# ruff: noqa: RUF001, RUF002  (the citation separator is a typographic angle quote)

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Passage:
    """A piece of a document that matched a query.

    ``source`` is the document's file name (relative to the knowledge folder), ``title``
    the document's title and ``heading_path`` the headings above the passage inside it
    (outermost first). The last two are optional: a plugin that fills only ``text`` and
    ``source`` still works.
    """

    text: str
    source: str
    score: float = 0.0
    title: str = ""
    heading_path: tuple[str, ...] = ()

    @property
    def citation(self) -> str:
        """``Title › Heading › Sub-heading``, else the file name: how to name the source."""
        parts = [part for part in (self.title, *self.heading_path) if part]
        return " › ".join(parts) if parts else self.source
