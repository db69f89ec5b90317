"""The knowledge base: documents from a folder, split into sections, searched in memory.

The index lives in ``DATA_DIR/knowledge.db`` (SQLite): documents with their SHA-256,
passages with their analysed terms, and embeddings keyed by the passage's content hash and
model. :meth:`KnowledgeIndex.sync` re-reads only files whose content changed and drops
files that disappeared; it refuses to empty a non-empty index unless told to. Searching
reads an in-memory :class:`~plugins.agent_openai.kb.snapshot.Snapshot` rebuilt after each
change.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
import numpy as np
from loguru import logger

from core import Passage
from plugins.agent_openai.kb.bm25 import KeywordIndex
from plugins.agent_openai.kb.documents import SUFFIXES, UnreadableDocument, read_document
from plugins.agent_openai.kb.embeddings import Embedder, EmbeddingsUnavailable
from plugins.agent_openai.kb.errors import UnsafeReindex
from plugins.agent_openai.kb.sections import DEFAULT_TARGET, Section, split_sections
from plugins.agent_openai.kb.snapshot import (
    SearchMode,
    Snapshot,
    StoredPassage,
    fuse,
    is_mostly_cyrillic,
)
from plugins.agent_openai.kb.synonyms import FILE_NAME as SYNONYMS_FILE
from plugins.agent_openai.kb.synonyms import Synonyms
from plugins.agent_openai.kb.text import ANALYZER_VERSION, terms

_SCHEMA = """
DROP TABLE IF EXISTS chunks;
DROP TABLE IF EXISTS documents;
CREATE TABLE IF NOT EXISTS kb_documents (
    source TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    passages INTEGER NOT NULL,
    indexed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS kb_passages (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    title TEXT NOT NULL,
    headings TEXT NOT NULL,
    body TEXT NOT NULL,
    title_terms TEXT NOT NULL,
    heading_terms TEXT NOT NULL,
    body_terms TEXT NOT NULL,
    content_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS kb_passages_source ON kb_passages (source);
CREATE TABLE IF NOT EXISTS kb_embeddings (
    content_hash TEXT NOT NULL,
    model TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (content_hash, model)
);
CREATE TABLE IF NOT EXISTS kb_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class SearchSettings:
    """How :meth:`KnowledgeIndex.search` ranks and when it answers "not found"."""

    mode: SearchMode = "keyword"
    #: Share (0..1) of the question's IDF-weighted content words a passage must match.
    min_coverage: float = 0.5
    #: Cosine similarity a passage needs to be returned by the vector ranking.
    min_similarity: float = 0.4


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one :meth:`KnowledgeIndex.sync` did."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks: int = 0
    seconds: float = 0.0
    skipped: int = 0
    embedded: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


@dataclass(frozen=True, slots=True)
class _Prepared:
    sections: list[Section]
    analysed: list[tuple[list[str], list[str], list[str]]]


def document_files(folder: Path) -> dict[str, Path]:
    """Every indexable file under ``folder`` by its path relative to it (POSIX style);
    hidden files and the top-level ``synonyms.txt`` are not documents."""
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and path.suffix.lower() in SUFFIXES
        and not path.name.startswith(".")
        and path != folder / SYNONYMS_FILE
    }


def _digests(files: dict[str, Path]) -> dict[str, str]:
    """SHA-256 of every file that can be read."""
    out = {}
    for source, path in files.items():
        try:
            out[source] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            continue
    return out


def _prepare(path: Path, default_title: str, chunk_chars: int) -> _Prepared:
    """Read, split and analyse one document (CPU work: runs on a worker thread)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnreadableDocument(str(exc)) from exc
    source = read_document(path, raw)
    sections = split_sections(source.text, default_title, chunk_chars, title=source.title)
    analysed = [
        # A passage before any sub-heading is headed by the document's title itself.
        (
            terms(section.title),
            terms(" ".join(section.headings) or section.title),
            terms(section.text),
        )
        for section in sections
    ]
    return _Prepared(sections, analysed)


def _content_hash(section: Section) -> str:
    return hashlib.sha256(f"{section.label}\n{section.text}".encode()).hexdigest()


class KnowledgeIndex:
    """The knowledge base of a folder. Open it before use, close it after."""

    def __init__(
        self,
        db_path: Path,
        folder: Path,
        chunk_chars: int = DEFAULT_TARGET,
        *,
        search: SearchSettings | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.db_path = db_path
        self.folder = folder
        self.chunk_chars = chunk_chars
        self.settings = search or SearchSettings()
        self.embedder = embedder
        self._db: aiosqlite.Connection | None = None
        self._snapshot = Snapshot()
        self._lock = asyncio.Lock()
        self._embeddings_down = False

    @property
    def is_open(self) -> bool:
        return self._db is not None

    async def open(self) -> None:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.db_path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.executescript(_SCHEMA)
        await self._db.commit()
        await self._load()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None
        if self.embedder is not None:
            await self.embedder.close()

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the knowledge index is not open")
        return self._db

    # -- indexing -------------------------------------------------------------------------

    def _layout(self) -> str:
        return f"{ANALYZER_VERSION}:{self.chunk_chars}"

    async def _meta(self, key: str) -> str | None:
        async with self._conn().execute("SELECT value FROM kb_meta WHERE key = ?", (key,)) as c:
            row = await c.fetchone()
        return None if row is None else str(row[0])

    async def _set_meta(self, key: str, value: str) -> None:
        await self._conn().execute(
            "INSERT OR REPLACE INTO kb_meta (key, value) VALUES (?, ?)", (key, value)
        )

    def check_folder(self, indexed_documents: int) -> str | None:
        """Why syncing now would wrongly empty the index, or None when it is safe."""
        if not self.folder.is_dir():
            return (
                f"knowledge folder {self.folder} does not exist (KNOWLEDGE_DIR); "
                f"the index of {indexed_documents} documents is kept"
            )
        if indexed_documents and not document_files(self.folder):
            return (
                f"knowledge folder {self.folder} has no documents but the index has "
                f"{indexed_documents}; it is kept (run `eneca-bot kb reindex --allow-empty` "
                "to empty it)"
            )
        return None

    async def sync(self, *, full: bool = False, allow_empty: bool = False) -> SyncReport:
        """Bring the index in line with the folder; ``full`` re-reads every file.

        Raises :class:`UnsafeReindex` (and changes nothing) when the folder is missing, or
        empty while the index is not, unless ``allow_empty``.
        """
        async with self._lock:
            return await self._sync(full, allow_empty)

    async def _sync(self, full: bool, allow_empty: bool) -> SyncReport:
        started = time.perf_counter()
        db = self._conn()
        async with db.execute("SELECT source, sha256 FROM kb_documents") as cursor:
            known = {source: sha for source, sha in await cursor.fetchall()}
        problem = self.check_folder(len(known))
        if problem is not None and not allow_empty:
            raise UnsafeReindex(problem)
        full = full or await self._meta("layout") != self._layout()
        files = document_files(self.folder)
        synonyms_changed = await self._sync_synonyms()
        added = updated = unchanged = skipped = chunk_count = 0
        # One trip to a worker thread hashes every file: 1,000 unchanged files in ~0.1 s.
        digests = await asyncio.to_thread(_digests, files)
        try:
            for source, path in files.items():
                digest = digests.get(source)
                if digest is None:
                    logger.error("knowledge: skipped {}: cannot read the file", source)
                    skipped += 1
                    continue
                if not full and known.get(source) == digest:
                    unchanged += 1
                    continue
                default_title = path.stem.split(".")[0].replace("_", " ")
                try:
                    prepared = await asyncio.to_thread(
                        _prepare, path, default_title, self.chunk_chars
                    )
                except UnreadableDocument as exc:
                    logger.error("knowledge: skipped {}: {}", source, exc)
                    skipped += 1
                    continue
                await self._replace(source, digest, prepared)
                chunk_count += len(prepared.sections)
                if source in known:
                    updated += 1
                else:
                    added += 1
            gone = [source for source in known if source not in files]
            for source in gone:
                await db.execute("DELETE FROM kb_passages WHERE source = ?", (source,))
                await db.execute("DELETE FROM kb_documents WHERE source = ?", (source,))
            await self._set_meta("layout", self._layout())
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        embedded = await self._embed_missing()
        report = SyncReport(
            added,
            updated,
            len(gone),
            unchanged,
            chunk_count,
            time.perf_counter() - started,
            skipped,
            embedded,
        )
        if report.changed or embedded or synonyms_changed or self._snapshot.keyword.size == 0:
            await self._load()
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

    async def _sync_synonyms(self) -> bool:
        path = self.folder / SYNONYMS_FILE
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            digest = ""
        if await self._meta("synonyms") == digest:
            return False
        await self._set_meta("synonyms", digest)
        return True

    async def _replace(self, source: str, digest: str, prepared: _Prepared) -> None:
        db = self._conn()
        await db.execute("DELETE FROM kb_passages WHERE source = ?", (source,))
        await db.executemany(
            "INSERT INTO kb_passages (source, title, headings, body, title_terms, "
            "heading_terms, body_terms, content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    source,
                    section.title,
                    json.dumps(section.headings, ensure_ascii=False),
                    section.text,
                    " ".join(title_terms),
                    " ".join(heading_terms),
                    " ".join(body_terms),
                    _content_hash(section),
                )
                for section, (title_terms, heading_terms, body_terms) in zip(
                    prepared.sections, prepared.analysed, strict=True
                )
            ],
        )
        await db.execute(
            "INSERT OR REPLACE INTO kb_documents (source, sha256, passages, indexed_at) "
            "VALUES (?, ?, ?, ?)",
            (source, digest, len(prepared.sections), time.time()),
        )

    async def _embed_missing(self) -> int:
        """Embed the passages that have no vector for the model yet (changed ones only)."""
        if self.embedder is None:
            return 0
        db = self._conn()
        async with db.execute(
            "SELECT DISTINCT p.content_hash, p.title, p.headings, p.body FROM kb_passages p "
            "LEFT JOIN kb_embeddings e ON e.content_hash = p.content_hash AND e.model = ? "
            "WHERE e.content_hash IS NULL",
            (self.embedder.model,),
        ) as cursor:
            missing = await cursor.fetchall()
        if not missing:
            return 0
        texts = [
            " / ".join((title, *json.loads(headings))) + "\n" + body
            for _, title, headings, body in missing
        ]
        try:
            vectors = await self.embedder.embed(texts)
        except EmbeddingsUnavailable as exc:
            logger.warning(
                "knowledge: embeddings unavailable ({}); {} passages searched by keywords "
                "until the next reindex",
                exc,
                len(missing),
            )
            return 0
        await db.executemany(
            "INSERT OR REPLACE INTO kb_embeddings (content_hash, model, vector) VALUES (?, ?, ?)",
            [
                (row[0], self.embedder.model, vector.astype(np.float32).tobytes())
                for row, vector in zip(missing, vectors, strict=True)
            ],
        )
        await db.commit()
        return len(missing)

    async def _load(self) -> None:
        """Rebuild the in-memory snapshot from the database and swap it in."""
        db = self._conn()
        async with db.execute(
            "SELECT source, title, headings, body, title_terms, heading_terms, body_terms, "
            "content_hash FROM kb_passages ORDER BY source, id"
        ) as cursor:
            rows = await cursor.fetchall()
        vectors: dict[str, bytes] = {}
        if self.embedder is not None:
            async with db.execute(
                "SELECT content_hash, vector FROM kb_embeddings WHERE model = ?",
                (self.embedder.model,),
            ) as cursor:
                vectors = {digest: blob for digest, blob in await cursor.fetchall()}
        synonyms = await asyncio.to_thread(Synonyms.load, self.folder)
        self._snapshot = await asyncio.to_thread(_build_snapshot, rows, vectors, synonyms)

    # -- searching ------------------------------------------------------------------------

    async def search(self, text: str, limit: int = 5) -> list[Passage]:
        """The passages answering ``text`` best, or none when nothing is relevant enough."""
        if limit < 1 or not text.strip():
            return []
        snapshot = self._snapshot
        mode = self.settings.mode
        if mode != "keyword" and self.embedder is not None and snapshot.vectors is not None:
            query = await self._embed_query(text)
            if query is not None:
                vector = snapshot.vector_ranking(query, self.settings.min_similarity)
                if mode == "vector":
                    return snapshot.results(vector, limit)
                keyword = snapshot.keyword_ranking(text, self.settings.min_coverage)
                return snapshot.results(fuse(keyword, vector), limit)
        return snapshot.results(snapshot.keyword_ranking(text, self.settings.min_coverage), limit)

    async def _embed_query(self, text: str) -> np.ndarray | None:
        assert self.embedder is not None
        try:
            vector = (await self.embedder.embed([text]))[0]
        except EmbeddingsUnavailable as exc:
            if not self._embeddings_down:
                logger.warning("knowledge: embeddings unavailable, searching by keywords: {}", exc)
            self._embeddings_down = True
            return None
        if self._embeddings_down:
            logger.info("knowledge: embeddings available again")
            self._embeddings_down = False
        return vector

    def status(self) -> dict[str, object]:
        """For ``/health``: the search mode and whether embeddings answer."""
        status: dict[str, object] = {"knowledge_search": self.settings.mode}
        if self.embedder is not None:
            status["embeddings"] = "unavailable" if self._embeddings_down else "ok"
        return status

    async def counts(self) -> tuple[int, int]:
        """How many documents and passages are indexed."""
        async with self._conn().execute(
            "SELECT COUNT(*), COALESCE(SUM(passages), 0) FROM kb_documents"
        ) as cursor:
            row = await cursor.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def _build_snapshot(
    rows: list[tuple[str, ...]], vectors: dict[str, bytes], synonyms: Synonyms
) -> Snapshot:
    passages = tuple(
        StoredPassage(source, title, tuple(json.loads(headings)), body)
        for source, title, headings, body, *_ in rows
    )
    keyword = KeywordIndex([(t.split(), h.split(), b.split()) for *_, t, h, b, _digest in rows])
    matrix = None
    if vectors:
        sample = next(iter(vectors.values()))
        dimension = len(sample) // 4
        matrix = np.zeros((len(rows), dimension), dtype=np.float32)
        for number, row in enumerate(rows):
            blob = vectors.get(row[-1])
            if blob is not None and len(blob) == dimension * 4:
                matrix[number] = np.frombuffer(blob, dtype=np.float32)
    russian = np.array([is_mostly_cyrillic(p.text) for p in passages], dtype=bool)
    return Snapshot(passages, keyword, synonyms, matrix, russian)
