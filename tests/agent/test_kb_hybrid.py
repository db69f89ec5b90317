"""Semantic search against the fake server's deterministic ``/v1/embeddings``: hybrid and
vector modes end to end, changed passages only embedded, keyword fallback when it is down."""

# ruff: noqa: RUF001  (Russian queries)
from __future__ import annotations

from core.testing import ask, gateway_of
from plugins.agent_openai.kb.embeddings import Embedder
from plugins.agent_openai.knowledge import KnowledgeIndex, SearchSettings
from tests.support.openai_server import FakeResponse, FakeToolCall

#: Shares its first four letters with "доставка" but no stem: only the vectors find it.
VECTOR_ONLY = "доставлявшийся"


def _embedded(fake) -> int:
    return sum(len(body["input"]) for body in fake.embedding_requests)


async def test_hybrid_search_end_to_end(agent_app, fake_openai):
    client = await agent_app(
        knowledge_search="hybrid", embeddings_model="emb-test", knowledge_min_similarity=0.1
    )
    gateway = gateway_of(client)
    assert fake_openai.embedding_requests[0]["model"] == "emb-test"
    assert _embedded(fake_openai) == 4  # every passage, once, at start-up
    found = await gateway.knowledge_search(VECTOR_ONLY, 3)
    assert found and found[0].source == "delivery.ru.md"
    assert fake_openai.embedding_requests[-1]["input"] == [VECTOR_ONLY]
    refund = await gateway.knowledge_search("refund", 3)
    assert refund[0].source == "returns.en.md"

    # The model's tool call gets the passages with their citations.
    fake_openai.script(
        FakeResponse(
            text="", tool_calls=[FakeToolCall("search_knowledge_base", {"query": "самовывоз"})]
        ),
        FakeResponse(text="Самовывоз бесплатный (см. «Доставка › Самовывоз»)."),
    )
    reply = await ask(gateway, "можно забрать самому?")
    assert reply.success and "Самовывоз" in reply.text
    tool_message = fake_openai.requests[-1]["messages"][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["content"].startswith("[1] Доставка › Самовывоз (file: delivery.ru.md)\n")
    assert "name the document you used" in tool_message["content"]


async def test_vector_mode_ranks_by_embeddings_only(agent_app, fake_openai):
    client = await agent_app(
        knowledge_search="vector", embeddings_model="emb-test", knowledge_min_similarity=0.1
    )
    gateway = gateway_of(client)
    assert (await gateway.knowledge_search(VECTOR_ONLY, 1))[0].source == "delivery.ru.md"
    assert await gateway.knowledge_search("12 ??", 3) == []  # below the similarity


async def test_only_new_and_changed_passages_are_embedded(tmp_path, docs, fake_openai):
    embedder = Embedder(fake_openai.base_url, "emb-test")
    index = KnowledgeIndex(
        tmp_path / "k.db", docs, search=SearchSettings(mode="hybrid"), embedder=embedder
    )
    await index.open()
    try:
        assert (await index.sync()).embedded == 4
        assert (await index.sync()).embedded == 0
        (docs / "returns.en.md").write_text("# Returns\n\nGift cards are not refunded.\n")
        report = await index.sync()
        assert (report.updated, report.embedded) == (1, 1)
        assert _embedded(fake_openai) == 5
        # Unchanged text in a re-read document keeps its vector: nothing is recomputed.
        assert (await index.sync(full=True)).embedded == 0
    finally:
        await index.close()


async def test_embeddings_down_falls_back_to_keywords_with_one_warning(
    agent_app, fake_openai, tmp_path
):
    client = await agent_app(knowledge_search="hybrid", embeddings_model="emb-test")
    gateway = gateway_of(client)
    fake_openai.embeddings_status = 503
    for _ in range(3):
        passages = await gateway.knowledge_search("самовывоз", 2)
        assert passages[0].heading_path == ("Самовывоз",)  # keywords still answer
    health = (await (await client.get("/health")).json())["plugins"]["agent_openai"]
    assert (health["knowledge_search"], health["embeddings"]) == ("hybrid", "unavailable")
    reply = await ask(gateway, "hello")  # the model answers as usual meanwhile
    assert reply.success
    fake_openai.embeddings_status = 200
    assert (await gateway.knowledge_search("самовывоз", 2))[0].source == "delivery.ru.md"
    log = (tmp_path / "logs" / "app.log").read_text("utf-8")
    assert log.count("embeddings unavailable, searching by keywords") == 1
    assert log.count("embeddings available again") == 1


async def test_embeddings_down_while_indexing_leaves_keyword_search(
    agent_app, fake_openai, tmp_path
):
    fake_openai.embeddings_status = 503
    client = await agent_app(knowledge_search="hybrid", embeddings_model="emb-test")
    passages = await gateway_of(client).knowledge_search("самовывоз", 2)
    assert passages[0].heading_path == ("Самовывоз",)
    log = (tmp_path / "logs" / "app.log").read_text("utf-8")
    assert log.count("4 passages searched by keywords until the next reindex") == 1
