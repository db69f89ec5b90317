"""The knowledge base: sections, morphology in Russian and English, changed-only indexing,
the knowledge-only mode with no model, and the ``eneca-bot kb`` commands."""

# ruff: noqa: RUF001, RUF003  (Russian text and comments)
from __future__ import annotations

import pytest

from core.cli import main as cli_main
from core.contract.events import Message
from core.testing import ask, gateway_of
from plugins.agent_openai.kb.sections import split_sections
from plugins.agent_openai.kb.text import question_tokens, terms
from plugins.agent_openai.knowledge import KnowledgeIndex


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
        ("Оплата", "payment.ru.md"),  # the noun finds the verb "оплатить"
        ("как оплачивать картой", "payment.ru.md"),
        ("самовывозом", "delivery.ru.md"),
        ("елочные игрушки", "payment.ru.md"),  # ё written as е
        ("returned items", "returns.en.md"),
        ("REFUND", "returns.en.md"),
        ("Мой телефон +79991234567, как оплатить заказ?", "payment.ru.md"),  # no phone noise
    ],
)
async def test_russian_and_english_queries_find_their_document(index, query, expected):
    assert await top_source(index, query) == expected


async def test_unrelated_query_finds_nothing(index):
    assert await index.search("квантовая хромодинамика", 3) == []
    assert await index.search("Какая завтра погода в Москве?", 3) == []  # "Москве" alone
    assert await index.search("   ", 3) == []
    assert await index.search("+7 999 123-45-67", 3) == []  # a number is no question


@pytest.mark.parametrize(
    "query",
    ['"', "AND(", 'доставка" OR', "NEAR(a b", "*", "col:value", "-x", "^start", "((", "'; DROP"],
)
async def test_query_syntax_in_user_text_never_raises(index, query):
    await index.search(query, 3)


def test_words_become_the_same_terms_in_documents_and_questions():
    # Lemma first ("пришёл" -> "прийти"), then the stem joins verb and noun.
    assert terms("Оплата") == terms("оплатить") == terms("оплатите")
    assert terms("платёж") == terms("платежа") != terms("платит")
    assert terms("Ёлка") == terms("елки")
    assert terms("shipping") == terms("ships") == terms("shipped")
    assert terms("как и где в") == []  # stop words
    assert [t.term for t in question_tokens("мой телефон +7 999 123-45-67")] == ["79991234567"]
    assert [t.code for t in question_tokens("заказ №4512 support@x.example")] == [
        False,
        True,
        True,
    ]


def test_documents_split_by_headings_with_their_path_and_size():
    text = (
        "# Guide\n\nIntro line\nwrapped here.\n\n## Part A\n\n### Detail\n\n"
        + ("Sentence number one. " * 80)
        + "\n\n- item one\n- item two\n"
    )
    sections = split_sections(text, "guide")
    assert sections[0].title == "Guide" and sections[0].headings == ()
    assert sections[0].text == "Intro line wrapped here."  # soft line break joined
    assert all(s.headings == ("Part A", "Detail") for s in sections[1:])
    assert len(sections) >= 3
    assert all(len(s.text) <= 800 for s in sections)
    assert sections[-1].text.endswith("- item one\n- item two")  # list kept as lines
    # each further piece of a long section repeats the last sentence before the cut
    assert sections[2].text.startswith("Sentence number one.")
    assert split_sections("plain text, no heading", "notes")[0].title == "notes"


async def test_sync_reads_only_changed_files_and_drops_deleted_ones(index, docs):
    again = await index.sync()
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 3)
    (docs / "returns.en.md").write_text("# Returns\n\nNo refunds for gift cards.\n", "utf-8")
    (docs / "payment.ru.md").unlink()
    (docs / "contacts.txt").write_text("Phone: 8 800 555-01-23, support hotline", "utf-8")
    report = await index.sync()
    assert (report.added, report.updated, report.removed, report.unchanged) == (1, 1, 1, 1)
    assert await top_source(index, "hotline") == "contacts.txt"
    assert (await index.search("hotline", 1))[0].title == "contacts"  # from the file name
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
    assert reply.text.startswith("Из базы знаний (Доставка, delivery.ru.md):")
    assert "350 рублей" in reply.text
    assert reply.metadata["citation"] == "Доставка"
    english = await ask(gateway, "refund please")
    assert english.text.startswith("From the knowledge base (Returns, returns.en.md):")
    nothing = await ask(gateway, "quantum chromodynamics")
    assert nothing.success
    assert nothing.text == (
        "I couldn't find an answer to this in the knowledge base. Please try asking in other words."
    )
    ничего = await ask(gateway, "Какая завтра погода в Москве?")
    assert ничего.text.startswith("В базе знаний нет ответа на этот вопрос.")
    assert "оператор" not in ничего.text  # no operator on a channel that cannot hand over
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
        ("гарантия на утюг", "warranty.ru.docx"),
        ("warranty water damage", "warranty.en.pdf"),
        ("промокод", "bonuses.ru.html"),
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
