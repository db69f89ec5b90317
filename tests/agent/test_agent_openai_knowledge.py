"""The knowledge base: chunking, FTS5 search in Russian and English, changed-only
indexing, the knowledge-only mode with no model, and the ``eneca-bot kb`` commands."""

# ruff: noqa: RUF003  (Russian comments)
from __future__ import annotations

import pytest

from core.cli import main as cli_main
from core.contract.events import Message
from core.testing import ask, gateway_of
from plugins.agent_openai.chunking import split_document
from plugins.agent_openai.knowledge import KnowledgeIndex
from plugins.agent_openai.query import fts_query


@pytest.fixture
async def index(tmp_path, docs):
    idx = KnowledgeIndex(tmp_path / "data" / "knowledge.db", docs)
    await idx.open()
    await idx.sync()
    yield idx
    await idx.close()


async def top_source(index, query):
    passages = await index.search(query, 3)
    return passages[0].source if passages else None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("доставки", "delivery.ru.md"),  # inflected form of "доставка"
        ("ДОСТАВКОЙ в Москву", "delivery.ru.md"),  # case folding of Cyrillic
        ("Оплата", "payment.ru.md"),  # finds "оплатить"
        ("как оплачивать картой", "payment.ru.md"),
        ("самовывозом", "delivery.ru.md"),
        ("елочные игрушки", "payment.ru.md"),  # ё written as е
        ("returned items", "returns.en.md"),
        ("REFUND", "returns.en.md"),
    ],
)
async def test_russian_and_english_queries_find_their_document(index, query, expected):
    assert await top_source(index, query) == expected


async def test_unrelated_query_finds_nothing(index):
    assert await index.search("квантовая хромодинамика", 3) == []
    assert await index.search("   ", 3) == []


@pytest.mark.parametrize(
    "query",
    ['"', "AND(", 'доставка" OR', "NEAR(a b", "*", "col:value", "-x", "^start", "((", "'; DROP"],
)
async def test_fts_syntax_in_user_text_never_raises(index, query):
    await index.search(query, 3)


def test_query_terms_are_quoted_prefixes():
    assert fts_query('Где "доставка"?') == '"достав"*'
    assert fts_query("what is the shipping cost") == '"shipp"* OR "cost"*'
    assert fts_query("!!!") is None


def test_documents_split_by_headings_and_size():
    text = "# Guide\n\nIntro line.\n\n## Part A\n\n" + ("Sentence number one. " * 80) + "\n"
    chunks = split_document(text, "guide")
    assert chunks[0].title == "Guide" and chunks[0].text == "Intro line."
    assert all(chunk.title == "Guide / Part A" for chunk in chunks[1:])
    assert len(chunks) >= 3
    assert all(len(chunk.text) <= 800 for chunk in chunks)
    assert split_document("plain text, no heading", "notes")[0].title == "notes"


async def test_sync_reads_only_changed_files_and_drops_deleted_ones(index, docs):
    again = await index.sync()
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 3)
    (docs / "returns.en.md").write_text("# Returns\n\nNo refunds for gift cards.\n", "utf-8")
    (docs / "payment.ru.md").unlink()
    (docs / "contacts.txt").write_text("Phone: 8 800 555-01-23, support hotline", "utf-8")
    report = await index.sync()
    assert (report.added, report.updated, report.removed, report.unchanged) == (1, 1, 1, 1)
    assert await top_source(index, "hotline") == "contacts.txt"
    assert await top_source(index, "оплатить") is None
    assert "gift cards" in (await index.search("refund", 1))[0].text
    assert await index.counts() == (3, 4)
    full = await index.sync(full=True)
    assert full.updated == 3


async def test_knowledge_only_mode_answers_from_the_best_passage(eneca_app, docs, tmp_path):
    client = await eneca_app(
        plugins=["agent_openai"], settings={"agent_openai": {"knowledge_dir": str(docs)}}
    )
    gateway = gateway_of(client)
    reply = await ask(gateway, "Сколько стоит доставка курьером?")
    assert reply.success
    assert reply.metadata["source"] == "knowledge_base"
    assert reply.text.startswith("Из нашей базы знаний (Доставка):")
    assert "350 рублей" in reply.text
    english = await ask(gateway, "refund please")
    assert english.text.startswith("From our knowledge base (Returns):")
    nothing = await ask(gateway, "quantum chromodynamics")
    assert nothing.success
    assert "couldn't find this in our knowledge base" in nothing.text
    handle = await gateway.publish(Message("c9", "test", "самовывоз", stream=True))
    chunks = [chunk async for chunk in handle.chunks()]
    assert chunks == [(await handle.reply()).text]
    log = (tmp_path / "logs" / "app.log").read_text("utf-8")
    assert log.count("answering from the knowledge base only") == 1
    health = await (await client.get("/health")).json()
    assert health["plugins"]["agent_openai"]["configured"] is False
    assert health["plugins"]["agent_openai"]["knowledge_documents"] == 3


async def test_start_up_indexes_into_the_data_dir(eneca_app, docs, tmp_path):
    data = tmp_path / "data"
    await eneca_app(
        plugins=["agent_openai"], settings={"agent_openai": {"knowledge_dir": str(docs)}}
    )
    assert (data / "knowledge.db").is_file()


@pytest.fixture
def cli_env(monkeypatch, tmp_path, docs):
    monkeypatch.chdir(tmp_path)  # no .env or config/settings.toml of the checkout
    monkeypatch.setenv("PLUGINS", "agent_openai")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "cli-logs"))
    monkeypatch.setenv("KNOWLEDGE_DIR", str(docs))
    return tmp_path


def test_kb_reindex_and_search_commands(cli_env, docs, capsys):
    assert cli_main(["kb", "reindex"]) == 0
    out = capsys.readouterr().out
    assert "3 added" in out and "3 documents" in out
    assert (cli_env / "cli-data" / "knowledge.db").is_file()
    assert cli_main(["kb", "reindex"]) == 0
    assert "0 added, 0 updated, 0 removed, 3 unchanged" in capsys.readouterr().out
    assert cli_main(["kb", "search", "доставку", "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[1] Доставка") and "delivery.ru.md" in out
    assert "payment.ru.md" not in out
    assert cli_main(["kb", "search", 'nothing " AND( matches']) == 1
    assert "no matching passages" in capsys.readouterr().out
    (docs / "new.md").write_text("# Gift cards\n\nGift cards never expire.", "utf-8")
    assert cli_main(["kb", "search", "gift"]) == 0  # search picks up changed files
    assert "never expire" in capsys.readouterr().out


def test_shipped_example_documents_answer_russian_questions(monkeypatch, tmp_path, capsys):
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "knowledge"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLUGINS", "agent_openai")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "l"))
    monkeypatch.setenv("KNOWLEDGE_DIR", str(shipped))
    for query, expected in [
        ("Как вернуть товар?", "returns.ru.md"),
        ("сроки доставки", "delivery.ru.md"),
        ("телефон поддержки", "contacts.ru.md"),
        ("рассрочка", "payment.ru.md"),
        ("how long does shipping take", "shipping.en.md"),
    ]:
        assert cli_main(["kb", "search", query, "-n", "1"]) == 0
        assert f"({expected}," in capsys.readouterr().out, query


async def test_any_text_is_a_safe_query(tmp_path, docs):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    idx = KnowledgeIndex(tmp_path / "h" / "knowledge.db", docs)
    await idx.open()
    await idx.sync()
    queries: list[str] = []

    @settings(max_examples=300, suppress_health_check=list(HealthCheck), deadline=None)
    @given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
    def collect(text):
        queries.append(text)

    collect()
    try:
        for query in [*queries, '"' * 5, "AND OR NOT", "доставка*", "NEAR(", "a:b", "\x00"]:
            await idx.search(query, 2)
    finally:
        await idx.close()
