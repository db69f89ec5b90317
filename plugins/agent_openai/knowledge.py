"""The knowledge base: documents from a folder, chunked and indexed in SQLite FTS5.

The index lives in ``DATA_DIR/knowledge.db``. :meth:`KnowledgeIndex.sync` re-reads only
files whose content hash changed and drops files that disappeared, so start-up is cheap.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
from loguru import logger

from core import Passage
from plugins.agent_openai.chunking import DEFAULT_TARGET, split_document
from plugins.agent_openai.query import fts_query

SUFFIXES = (".md", ".txt")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    source TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    indexed_at REAL NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks USING fts5(
    title, body, source UNINDEXED,
    tokenize = "unicode61 remove_diacritics 2",
    prefix = '2 3 4'
);
"""


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one :meth:`KnowledgeIndex.sync` did."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


def _documents(folder: Path) -> dict[str, Path]:
    """Every indexable file under ``folder`` by its path relative to it (POSIX style)."""
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.suffix.lower() in SUFFIXES and not path.name.startswith(".")
    }


class KnowledgeIndex:
    """An FTS5 index of a folder of documents. Open it before use, close it after."""

    def __init__(self, db_path: Path, folder: Path, chunk_chars: int = DEFAULT_TARGET) -> None:
        self.db_path = db_path
        self.folder = folder
        self.chunk_chars = chunk_chars
        self._db: aiosqlite.Connection | None = None

    @property
    def is_open(self) -> bool:
        return self._db is not None

    async def open(self) -> None:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.db_path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.executescript(_SCHEMA)
        await self._db.commit()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the knowledge index is not open")
        return self._db

    async def sync(self, *, full: bool = False) -> SyncReport:
        """Bring the index in line with the folder; ``full`` re-reads every file."""
        started = time.perf_counter()
        db = self._conn()
        files = _documents(self.folder)
        async with db.execute("SELECT source, sha256 FROM documents") as cursor:
            known = {source: sha for source, sha in await cursor.fetchall()}
        added = updated = unchanged = chunk_count = 0
        try:
            for source, path in files.items():
                raw = path.read_bytes()
                digest = hashlib.sha256(raw).hexdigest()
                if not full and known.get(source) == digest:
                    unchanged += 1
                    continue
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    logger.warning("knowledge: {} is not UTF-8; undecodable bytes replaced", source)
                    text = raw.decode("utf-8", errors="replace")
                pieces = split_document(text, path.stem.replace("_", " "), self.chunk_chars)
                await db.execute("DELETE FROM chunks WHERE source = ?", (source,))
                await db.executemany(
                    "INSERT INTO chunks (title, body, source) VALUES (?, ?, ?)",
                    [(piece.title, piece.text, source) for piece in pieces],
                )
                await db.execute(
                    "INSERT OR REPLACE INTO documents (source, sha256, chunks, indexed_at) "
                    "VALUES (?, ?, ?, ?)",
                    (source, digest, len(pieces), time.time()),
                )
                chunk_count += len(pieces)
                if source in known:
                    updated += 1
                else:
                    added += 1
            gone = [source for source in known if source not in files]
            for source in gone:
                await db.execute("DELETE FROM chunks WHERE source = ?", (source,))
                await db.execute("DELETE FROM documents WHERE source = ?", (source,))
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        report = SyncReport(
            added, updated, len(gone), unchanged, chunk_count, time.perf_counter() - started
        )
        if report.changed:
            logger.info(
                "knowledge: {} added, {} updated, {} removed, {} unchanged ({} chunks, {:.2f}s)",
                report.added,
                report.updated,
                report.removed,
                report.unchanged,
                report.chunks,
                report.seconds,
            )
        return report

    async def search(self, text: str, limit: int = 5) -> list[Passage]:
        """The passages best matching ``text``; any user text is safe (no FTS syntax)."""
        expression = fts_query(text)
        if expression is None or limit < 1:
            return []
        async with self._conn().execute(
            "SELECT title, body, source, bm25(chunks, 4.0, 1.0) AS rank FROM chunks "
            "WHERE chunks MATCH ? ORDER BY rank LIMIT ?",
            (expression, limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            Passage(text=body, source=source, score=round(-rank, 4), title=title)
            for title, body, source, rank in rows
        ]

    async def counts(self) -> tuple[int, int]:
        """How many documents and chunks are indexed."""
        async with self._conn().execute(
            "SELECT COUNT(*), COALESCE(SUM(chunks), 0) FROM documents"
        ) as cursor:
            row = await cursor.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])
