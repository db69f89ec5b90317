"""Building the knowledge base's parts from the settings, and what ``check`` reports."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from plugins.agent_openai.kb.embeddings import Embedder
from plugins.agent_openai.knowledge import document_files
from plugins.agent_openai.settings import OpenAIAgentSettings

OPENAI_URL = "https://api.openai.com/v1"


def embedder_for(settings: OpenAIAgentSettings) -> Embedder | None:
    """The embeddings client when ``EMBEDDINGS_MODEL`` is set and the search uses it."""
    if not settings.embeddings_model or settings.knowledge_search == "keyword":
        return None
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return Embedder(
        settings.openai_base_url or OPENAI_URL,
        settings.embeddings_model,
        key or None,
        settings.openai_timeout_s,
    )


def indexed_documents(db_path: Path) -> int:
    """How many documents the index at ``db_path`` holds (0 when there is none yet)."""
    if not db_path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
            row = db.execute("SELECT COUNT(*) FROM kb_documents").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0


def knowledge_problems(settings: OpenAIAgentSettings, db_path: Path) -> list[str]:
    """Lines ``eneca-bot check`` fails with: a missing folder, or an empty one that would
    empty a non-empty index."""
    folder = settings.knowledge_dir
    if not folder.is_dir():
        return [
            f"KNOWLEDGE_DIR: the knowledge folder {folder} does not exist "
            "(set KNOWLEDGE_DIR, or KNOWLEDGE_MODE=off for no knowledge base)"
        ]
    indexed = indexed_documents(db_path)
    if indexed and not document_files(folder):
        return [
            f"KNOWLEDGE_DIR: the knowledge folder {folder} has no documents but the index "
            f"holds {indexed}; run `eneca-bot kb reindex --allow-empty` to empty it"
        ]
    return []
