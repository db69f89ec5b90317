"""Knowledge-base search speed: keyword and hybrid search over 10,000 passages, and a
reindex of 1,000 unchanged documents.

    .venv/bin/python benchmarks/knowledge.py [--passages 10000] [--dimensions 1536]

Prints JSON: p50/p99 milliseconds (wall clock, and the thread's CPU time, which is what a
shared machine's load does not inflate) of a keyword search (question analysis included), of a
hybrid search without the embedding call (keyword ranking + cosine scan + fusion), of the
vector scan alone by numpy and, when the ``sqlite-vec`` package is installed, by sqlite-vec
(``vec0`` KNN) for comparison; the seconds a reindex of 1,000 unchanged documents takes.
The questions are those of ``knowledge/eval.jsonl``; passages are random sentences over a
Zipf-distributed vocabulary (the shipped documents' words plus synthetic ones).
"""

from __future__ import annotations

import os

# One BLAS thread: a search is single-threaded in the gateway, and thread CPU time (below)
# then counts all of its work.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plugins.agent_openai.evaluation import load_questions  # noqa: E402
from plugins.agent_openai.kb.bm25 import KeywordIndex  # noqa: E402
from plugins.agent_openai.kb.snapshot import Snapshot, StoredPassage, fuse  # noqa: E402
from plugins.agent_openai.kb.synonyms import Synonyms  # noqa: E402
from plugins.agent_openai.kb.text import terms  # noqa: E402
from plugins.agent_openai.knowledge import KnowledgeIndex  # noqa: E402


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 3),
    }


def _corpus(size: int, rng: random.Random) -> tuple[list[StoredPassage], list[tuple]]:
    real: list[str] = []
    for path in sorted((ROOT / "knowledge").glob("*.md")):
        real.extend(terms(path.read_text("utf-8")))
    vocabulary = sorted(set(real)) + [f"w{n}" for n in range(20_000)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]  # Zipf
    passages, fields = [], []
    for number in range(size):
        body = rng.choices(vocabulary, weights, k=rng.randint(40, 120))
        heading = rng.choices(vocabulary[:2000], k=3)
        passages.append(StoredPassage(f"doc{number // 10}.md", "T", tuple(heading), " ".join(body)))
        fields.append((["t"], heading, body))
    return passages, fields


def keyword_and_hybrid(size: int, dimensions: int, repeat: int) -> dict[str, object]:
    rng = random.Random(7)
    questions = [q.text for q in load_questions(ROOT / "knowledge" / "eval.jsonl")]
    synonyms = Synonyms.load(ROOT / "knowledge")
    passages, fields = _corpus(size, rng)
    started = time.perf_counter()
    keyword = KeywordIndex(fields)
    build_s = time.perf_counter() - started
    vectors = np.random.default_rng(7).standard_normal((size, dimensions)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    russian = np.array([rng.random() < 0.6 for _ in range(size)])
    snapshot = Snapshot(tuple(passages), keyword, synonyms, vectors, russian)
    for question in questions:  # warm the lemma cache, as a running gateway has
        snapshot.keyword_ranking(question, 0.5)
    query = vectors[0]
    keyword_times, hybrid_times, scan_times = [], [], []
    keyword_cpu, hybrid_cpu = [], []
    for _ in range(repeat):
        for question in questions:
            c0, t0 = time.thread_time(), time.perf_counter()
            ranked = snapshot.keyword_ranking(question, 0.5)
            c1, t1 = time.thread_time(), time.perf_counter()
            vector = snapshot.vector_ranking(query, 0.0)
            t2 = time.perf_counter()
            snapshot.results(fuse(ranked, vector), 4)
            c3, t3 = time.thread_time(), time.perf_counter()
            keyword_times.append(t1 - t0)
            scan_times.append(t2 - t1)
            hybrid_times.append(t3 - t0)
            keyword_cpu.append(c1 - c0)
            hybrid_cpu.append(c3 - c0)
    report: dict[str, object] = {
        "passages": size,
        "dimensions": dimensions,
        "searches": len(keyword_times),
        "index_build_s": round(build_s, 2),
        "load_average": os.getloadavg()[0],
        "keyword": _percentiles(keyword_times),
        "keyword_cpu": _percentiles(keyword_cpu),
        "hybrid_without_embedding_call": _percentiles(hybrid_times),
        "hybrid_cpu": _percentiles(hybrid_cpu),
        "vector_scan_numpy": _percentiles(scan_times),
        "vectors_mb": round(vectors.nbytes / 1e6, 1),
    }
    report["vector_scan_sqlite_vec"] = _sqlite_vec(vectors, repeat * len(questions) // 4)
    return report


def _sqlite_vec(vectors: np.ndarray, searches: int) -> dict[str, float] | str:
    try:
        import sqlite_vec
    except ImportError:
        return "not installed"
    db = sqlite3.connect(":memory:")
    if not hasattr(db, "enable_load_extension"):
        return "unavailable: this Python's sqlite3 cannot load extensions"
    db.enable_load_extension(True)
    sqlite_vec.load(db)
    db.execute(f"CREATE VIRTUAL TABLE v USING vec0(embedding float[{vectors.shape[1]}])")
    db.executemany(
        "INSERT INTO v (rowid, embedding) VALUES (?, ?)",
        ((n + 1, row.tobytes()) for n, row in enumerate(vectors)),
    )
    query = vectors[0].tobytes()
    times = []
    for _ in range(searches):
        t0 = time.perf_counter()
        db.execute(
            "SELECT rowid, distance FROM v WHERE embedding MATCH ? AND k = 50", (query,)
        ).fetchall()
        times.append(time.perf_counter() - t0)
    return _percentiles(times)


async def reindex_unchanged(documents: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        text = (ROOT / "knowledge" / "delivery.ru.md").read_text("utf-8")
        for number in range(documents):
            (folder / f"doc{number:04d}.md").write_text(f"{text}\n\nДокумент {number}.\n")  # noqa: RUF001
        index = KnowledgeIndex(Path(tmp) / "k.db", folder)
        await index.open()
        t0 = time.perf_counter()
        first = await index.sync()
        t1 = time.perf_counter()
        again = await index.sync()
        t2 = time.perf_counter()
        await index.close()
    assert again.unchanged == documents and not again.changed
    return {
        "documents": documents,
        "passages": first.chunks,
        "first_index_s": round(t1 - t0, 2),
        "reindex_unchanged_s": round(t2 - t1, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passages", type=int, default=10_000)
    parser.add_argument("--dimensions", type=int, default=1536)
    parser.add_argument("--repeat", type=int, default=10, help="rounds over the questions")
    parser.add_argument("--documents", type=int, default=1000)
    args = parser.parse_args()
    report = keyword_and_hybrid(args.passages, args.dimensions, args.repeat)
    report["reindex"] = asyncio.run(reindex_unchanged(args.documents))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
