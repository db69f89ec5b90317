"""The agent's settings. No env prefix: the field name is the env name (``OPENAI_MODEL``)."""

# ruff: noqa: RUF001  (Russian texts are intended)
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from core import PluginSettings

# Neutral texts: no shop's topics, no promise of an operator (added only on a channel that
# can hand over, see ``agent_handover_tools``).
DEFAULT_FALLBACK_TEXT_EN = "Sorry, I can't answer right now. Please try again a little later."
DEFAULT_FALLBACK_TEXT_RU = (
    "Извините, сейчас не получается ответить. Пожалуйста, попробуйте чуть позже."
)
DEFAULT_NOT_FOUND_TEXT_EN = (
    "I couldn't find an answer to this in the knowledge base. Please try asking in other words."
)
DEFAULT_NOT_FOUND_TEXT_RU = (
    "В базе знаний нет ответа на этот вопрос. Попробуйте, пожалуйста, сформулировать его иначе."
)
DEFAULT_HANDOVER_HINT_EN = "You can also ask to talk to an operator."
DEFAULT_HANDOVER_HINT_RU = "Также можно попросить соединить вас с оператором."


class OpenAIAgentSettings(PluginSettings):
    """``[agent_openai]`` in the TOML file; env names without a prefix."""

    section: ClassVar[str] = "agent_openai"

    #: Key for OpenAI or a compatible server; with neither this nor a base URL the agent
    #: answers from the knowledge base alone.
    openai_api_key: SecretStr | None = None
    #: An OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio), e.g.
    #: ``http://localhost:11434/v1``. Empty: OpenAI itself.
    openai_base_url: str | None = None
    #: Model name sent with each request (``gpt-4o-mini``, or the name a compatible server
    #: knows, e.g. ``llama3.1``).
    openai_model: str = "gpt-4o-mini"
    #: Sampling temperature, 0 (focused) to 2 (varied); empty: the server's default.
    openai_temperature: float | None = Field(None, ge=0, le=2)
    #: Seconds without a byte from the server before a request is abandoned (then retried).
    openai_timeout_s: float = Field(30.0, gt=0)
    #: Retries of the ``openai`` client itself on timeouts, 429 and 5xx (with backoff).
    openai_max_retries: int = Field(2, ge=0, le=10)
    #: HTTP transport of the ``openai`` client: ``aiohttp`` (the SDK's own
    #: ``DefaultAioHttpClient``, C-parsed, about half the CPU per streamed token) or
    #: ``httpx`` (the SDK's default).
    openai_http_client: Literal["aiohttp", "httpx"] = "aiohttp"
    #: Most connections open to the model server at once (requests beyond wait for one).
    openai_max_connections: int = Field(1000, ge=1)
    #: Model failures in a row after which ``/health`` reports the agent degraded (503,
    #: with the last error code), until the next success; 0 never does. Health never calls
    #: the model itself.
    agent_degraded_after: int = Field(3, ge=0)
    #: Most tokens the model may write in one reply; empty: the server's default.
    openai_max_tokens: int | None = Field(None, ge=1)
    #: The system prompt; empty: read from ``system_prompt_file``.
    system_prompt: str | None = None
    #: File the system prompt is read from when ``system_prompt`` is empty (Markdown or text).
    system_prompt_file: Path = Path("config/system_prompt.md")
    #: Folder of documents indexed for search: ``.md``, ``.txt``, ``.html``, ``.pdf``,
    #: ``.docx``, sub-folders included, plus an optional ``synonyms.txt``.
    knowledge_dir: Path = Path("knowledge")
    #: ``tool``: the model may call ``search_knowledge_base``; ``context``: the best passages
    #: go into the prompt (models without tool support); ``off``: no knowledge base.
    knowledge_mode: Literal["tool", "context", "off"] = "tool"
    #: Passages returned per search (tool call, context, no-LLM answer).
    knowledge_results: int = Field(4, ge=1, le=20)
    #: ``keyword`` (BM25 over lemmas), ``hybrid`` (keywords and embeddings fused by
    #: reciprocal rank) or ``vector`` (embeddings only); the last two need
    #: ``embeddings_model`` and fall back to keywords while the embeddings server is down.
    knowledge_search: Literal["keyword", "hybrid", "vector"] = "keyword"
    #: Share (0-1) of a question's content words, weighted by rarity, that a passage must
    #: contain to be returned; below it the answer is "not in the knowledge base".
    knowledge_min_score: float = Field(0.5, ge=0, le=1)
    #: Cosine similarity (-1..1) a passage needs in the vector ranking (model dependent).
    knowledge_min_similarity: float = Field(0.4, ge=-1, le=1)
    #: Embedding model on the same OpenAI-compatible server (``/v1/embeddings``), e.g.
    #: ``text-embedding-3-small`` or an Ollama model; empty: no semantic search.
    embeddings_model: str | None = None
    #: Rounds of tool calls the model may make for one message.
    agent_max_tool_rounds: int = Field(3, ge=0, le=10)
    #: Most recent turns of the conversation sent to the model (the new message included).
    agent_history_turns: int = Field(20, ge=1)
    #: One text for every language when the model fails and the knowledge base has nothing
    #: relevant; empty: the Russian or English text below, by the visitor's language.
    agent_fallback_text: str | None = None
    #: Sent (Russian-speaking visitor) when the model fails and nothing relevant is found.
    agent_fallback_text_ru: str = DEFAULT_FALLBACK_TEXT_RU
    #: Sent (other visitors) when the model fails and nothing relevant is found.
    agent_fallback_text_en: str = DEFAULT_FALLBACK_TEXT_EN
    #: Knowledge-only mode (no model), nothing found, Russian-speaking visitor.
    knowledge_not_found_text_ru: str = DEFAULT_NOT_FOUND_TEXT_RU
    #: Knowledge-only mode (no model), nothing found, other visitors.
    knowledge_not_found_text_en: str = DEFAULT_NOT_FOUND_TEXT_EN
    #: Added to the two texts above on a channel that can hand over to an operator (Russian).
    agent_handover_hint_ru: str = DEFAULT_HANDOVER_HINT_RU
    #: Added to the two texts above on a channel that can hand over to an operator (English).
    agent_handover_hint_en: str = DEFAULT_HANDOVER_HINT_EN
    #: Comma-separated tool names that hand a conversation over to an operator: a channel
    #: offering one of them (TalkMe's ``transfer_to_operator``) can hand over.
    agent_handover_tools: str = "transfer_to_operator"

    @property
    def llm_configured(self) -> bool:
        """True when a key or a server address is set."""
        key = self.openai_api_key.get_secret_value() if self.openai_api_key else ""
        return bool(key or self.openai_base_url)
